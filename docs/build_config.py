"""Write docs/config.md, the config reference, from the config dataclasses themselves.

    python docs/build_config.py           # rewrite docs/config.md
    python docs/build_config.py --check   # exit 1 if docs/config.md is out of date or a key has no meaning

Each key's type and default come from `dllm_lite.config`'s dataclasses; its meaning is the comment
written beside it (or on the lines just above it) in dllm_lite/config_keys.py. A key without a
comment is an error, so a new config key cannot reach the site undocumented (tests/test_docs.py
runs the check, and so does the site build).
"""
import argparse
import dataclasses
import inspect
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = ROOT / "docs" / "config.md"

HEADER = """# Config reference

A run is one YAML file with up to four sections, `model`, `data`, `train` and `sample`, and two
top-level keys. Every key has a default, so a file lists only what it changes; any key can be
changed on the command line in dotted form (`train.max_steps=200`, read as YAML). An unknown key,
a wrong type or an impossible value stops the run before anything is built, with a one-line
message naming the key. The [training guide](guides/training.md) shows them in use; the configs
that ship are in `configs/`.

Generated from `dllm_lite/config_keys.py` by `python docs/build_config.py`; a test fails when this
page and the code disagree, or when a key has no description.
"""


def comments(cls) -> dict[str, str]:
    """Each field's comment in `cls`'s source: the one after it on its line (and any comment-only
    lines that continue it, indented further), else the comment lines just above it."""
    source = inspect.getsource(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    meaning, above, current, indent = {}, [], None, None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        kind, text, (row, col), _, line = token
        stripped = line.strip()
        if kind == tokenize.COMMENT:
            words = text.lstrip("#").strip()
            if stripped.startswith("#"):  # a comment-only line
                if current is not None and col > indent:
                    meaning[current] += " " + words  # continues the comment of the field above
                else:
                    above.append(words)
                    current = None
            else:  # after a field on its line
                if current is not None:
                    meaning[current] = words
        elif kind == tokenize.NAME and text in fields and line[:col].strip() == "" and ":" in line:
            current, indent = text, col
            meaning[text] = " ".join(above)
            above = []
        elif kind == tokenize.NL and stripped == "":
            above = []
    return meaning


def _type(f) -> str:
    return str(f.type).replace("typing.", "")


def _default(f) -> str:
    """The default as YAML writes it."""
    if f.default is None or isinstance(f.default, bool):
        return {None: "null", True: "true", False: "false"}[f.default]
    return repr(f.default).replace("'", '"')


def rows(cls):
    """(key, type, default, meaning) for each plain field of `cls` (a nested section is not a key)."""
    meaning = comments(cls)
    return [(f.name, _type(f), _default(f), meaning.get(f.name, "")) for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING]


def sections():
    """The top level, then each section, as (title, prefix, dataclass)."""
    from dllm_lite import config
    top = [("Top level", "", config.Config)]
    return top + [(f"`{f.name}`", f"{f.name}.", f.default_factory) for f in dataclasses.fields(config.Config)
                  if f.default_factory is not dataclasses.MISSING]


def undocumented() -> list[str]:
    """Keys whose meaning is empty."""
    missing = []
    for _, prefix, cls in sections():
        missing += [prefix + key for key, _, _, meaning in rows(cls) if not meaning]
    return missing


def build() -> str:
    out = [HEADER]
    for title, prefix, cls in sections():
        out += [f"## {title}", "", inspect.getdoc(cls).split("\n\n")[0] if prefix else
                "Outside any section: the run's name and its size claim.", "",
                "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for key, kind, default, meaning in rows(cls):
            cells = [text.replace("|", "\\|") for text in (f"`{prefix}{key}`", f"`{kind}`", f"`{default}`", meaning)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/config.md is out of date")
    args = parser.parse_args(argv)
    missing = undocumented()
    if missing:
        print(f"config keys without a comment in dllm_lite/config_keys.py: {', '.join(missing)}; "
              f"write one beside each key", file=sys.stderr)
        return 1
    text = build()
    if args.check:
        if not CONFIG_FILE.exists() or CONFIG_FILE.read_text() != text:
            print("docs/config.md is out of date: run python docs/build_config.py", file=sys.stderr)
            return 1
        return 0
    CONFIG_FILE.write_text(text)
    print(f"wrote {CONFIG_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

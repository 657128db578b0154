"""Write docs/api.md, the API reference, from the package's own docstrings.

    python docs/build_api.py           # rewrite docs/api.md
    python docs/build_api.py --check   # exit 1 if docs/api.md is out of date (tests/test_docs.py does this)

Every module lists its public names in `__all__`; this script walks them in the order a
reader meets the concepts, prints each one's signature and docstring, and nothing else, so
the reference cannot say anything the code does not. A name that a module re-exports from
another (train.load_checkpoint is checkpoint.load_checkpoint) points to where it is defined.
"""

import argparse
import dataclasses
import importlib
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_FILE = ROOT / "docs" / "api.md"

# the concepts first, in teaching order, then the commands, then the helpers
MODULES = ("tokenize", "corrupt", "model", "loss", "sample", "draw", "decode", "fastcache", "block", "pairs", "tasks",
           "quality", "data", "sources", "token_cache", "loader", "data_checks", "config", "config_keys", "config_yaml", "load",
           "checkpoint", "muon", "train", "objective", "validation", "devices", "run_folder", "metrics", "generate",
           "evaluate", "export", "bench", "bench_suite", "bench_timing", "bench_reference", "bench_profile",
           "bench_report", "viz", "exercises", "exercises_loss", "exercises_sampling",
           "exercises_extensions", "notebook")
SIMPLE = (str, int, float, bool, type(None))
WIDTH = 100  # a longer signature is written one parameter per line

HEADER = """# API reference

Generated from the docstrings by `python docs/build_api.py`; a test fails when this file and
the code disagree. Each module's public names are its `__all__`, in the order the module
lists them. The math behind each module: [concepts.md](concepts.md); how the pieces fit:
the [course overview](index.md).
"""


def _annotation(ann) -> str:
    """An annotation as the source spells it, without the package's module prefixes."""
    text = ann if isinstance(ann, str) else inspect.formatannotation(ann)
    for name in MODULES:
        text = text.replace(f"dllm_lite.{name}.", "")
    return text.replace("torch.nn.modules.module.Module", "torch.nn.Module").replace("pathlib.Path", "Path")


def _default(value) -> str:
    """A default value as source code would write it (classes by name, never a memory address)."""
    if inspect.isclass(value) or inspect.isfunction(value):
        return value.__qualname__
    return repr(value)


def signature(obj, method: bool = False) -> str:
    """`name(params) -> return` for a function or a class's constructor (a method's without self)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # exceptions inherit a C constructor with no signature
        return f"{obj.__name__}(...)"
    parts, star_done = [], False
    params = list(sig.parameters.values())
    for p in params[1:] if method and params and params[0].name in ("self", "cls") else params:
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
        star_done = star_done or p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {_default(p.default)}" if p.annotation is not p.empty else f"={_default(p.default)}"
        parts.append(text)
    returns = "" if sig.return_annotation is sig.empty or inspect.isclass(obj) else \
        f" -> {_annotation(sig.return_annotation)}"
    one_line = f"{obj.__name__}({', '.join(parts)}){returns}"
    if method or len(one_line) <= WIDTH:
        return one_line
    return f"{obj.__name__}(\n" + "".join(f"    {part},\n" for part in parts) + f"){returns}"


def _is_simple(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_is_simple(v) for v in value)
    return isinstance(value, SIMPLE)


def constant(name: str, value) -> str:
    """A constant's line: `NAME = value` when the value is plain data, else what kind of thing it is."""
    text = repr(value)
    if isinstance(value, dict) and not all(isinstance(k, str) and _is_simple(v) for k, v in value.items()):
        return f"`{name}`: a dict with the keys {', '.join(repr(k) for k in value)}"
    if isinstance(value, Path):
        return f"`{name}`: a Path inside the installed package"
    if isinstance(value, dict) or _is_simple(value) or (len(text) < 80 and " at 0x" not in text):
        return f"`{name}` = {text}"
    return f"`{name}`: a {type(value).__name__}"


def own_doc(obj) -> str:
    """The docstring obj itself was written with ('' for none): not a base class's, and not the
    `Name(field, ...)` text that dataclasses make up for a class without one."""
    doc = inspect.cleandoc(obj.__doc__ or "")
    if dataclasses.is_dataclass(obj) and doc.startswith(obj.__name__ + "("):
        return ""
    return doc


def _members(cls):
    """The public methods and properties a class defines itself, in source order."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            yield name, value.fget, True
        elif isinstance(value, (staticmethod, classmethod)):
            yield name, value.__func__, False
        elif inspect.isfunction(value):
            yield name, value, False


def module_section(name: str) -> list[str]:
    """The Markdown for one module: its first docstring paragraph, then every public name."""
    mod = importlib.import_module(f"dllm_lite.{name}")
    summary = (mod.__doc__ or "").strip().split("\n\n")[0]
    lines = [f"## dllm_lite.{name}", "", f"[`dllm_lite/{name}.py`](../dllm_lite/{name}.py): {summary}", ""]
    for public in mod.__all__:
        obj = getattr(mod, public)
        lines.append(f"### {name}.{public}")
        lines.append("")
        home = getattr(obj, "__module__", None)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and home != mod.__name__:
            other = home.removeprefix("dllm_lite.")
            lines += [f"The same object as [`{other}.{public}`](#{other}{public.lower()}), imported here for "
                      "convenience.", ""]
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            kind = "class " if inspect.isclass(obj) else ""
            lines += ["```python", kind + signature(obj), "```", ""]
            if own_doc(obj):
                lines += [own_doc(obj), ""]
            if inspect.isclass(obj):
                for member, func, is_property in _members(obj):
                    head = f"`.{member}` (property)" if is_property else f"`.{signature(func, method=True)}`"
                    lines += [f"- {head}: " + own_doc(func).replace("\n", "\n  "), ""]
        else:
            lines += [constant(public, obj), ""]
    return lines


def build() -> str:
    """The whole of docs/api.md as a string."""
    lines = [HEADER, "Modules: " + " · ".join(f"[{m}](#dllm_lite{m})" for m in MODULES), ""]
    for name in MODULES:
        lines += module_section(name)
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    """Rewrite docs/api.md, or with --check say whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is out of date; write nothing")
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        current = API_FILE.read_text(encoding="utf-8") if API_FILE.exists() else ""
        if current != text:
            print(f"{API_FILE.relative_to(ROOT)} is out of date: run python docs/build_api.py", file=sys.stderr)
            return 1
        print(f"{API_FILE.relative_to(ROOT)} is up to date")
        return 0
    API_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {API_FILE.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

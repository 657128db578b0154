"""The public API is documented: every public name has a docstring, and docs/api.md matches the code."""

import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import pytest

import dllm_lite

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    """docs/<name>.py as a module (docs/ is not a package)."""
    from conftest import load_script

    return load_script(f"docs/{name}.py")


build_api = _load("build_api")
PUBLIC_MODULES = sorted(m.name for m in pkgutil.iter_modules(dllm_lite.__path__) if not m.name.startswith("_"))


def test_the_reference_covers_every_public_module():
    assert sorted(build_api.MODULES) == PUBLIC_MODULES, "add the new module to MODULES in docs/build_api.py"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(name):
    mod = importlib.import_module(f"dllm_lite.{name}")
    assert (mod.__doc__ or "").strip(), f"dllm_lite.{name} has no module docstring"
    assert hasattr(mod, "__all__"), f"dllm_lite.{name} does not list its public names in __all__"
    missing = []
    for public in mod.__all__:
        assert hasattr(mod, public), f"dllm_lite.{name}.__all__ names {public!r}, which does not exist"
        obj = getattr(mod, public)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not build_api.own_doc(obj):
            missing.append(public)
        if inspect.isclass(obj):
            missing += [f"{public}.{member}" for member, func, _ in build_api._members(obj) if not build_api.own_doc(func)]
    assert not missing, f"dllm_lite.{name}: no docstring on {', '.join(missing)}"


def test_docs_api_md_is_up_to_date(capsys):
    status = build_api.main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_the_reference_holds_no_machine_specific_text():
    text = build_api.build()
    assert " at 0x" not in text  # reprs of functions or objects change from run to run
    assert str(ROOT) not in text  # nor does the folder the package sits in


def test_long_signatures_are_written_one_parameter_per_line():
    def short(a, b=1):
        pass

    def long_one(first_parameter: int, second_parameter: str = "x" * 40, *, third_parameter: float = 1.0) -> int:
        pass

    assert build_api.signature(short) == "short(a, b=1)"
    lines = build_api.signature(long_one).splitlines()
    assert lines[0] == "long_one(" and lines[-1] == ") -> int"
    assert "    *," in lines and "    third_parameter: float = 1.0," in lines


def test_a_stale_reference_is_reported(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "api.md"
    stale.write_text("# an old reference\n", encoding="utf-8")
    monkeypatch.setattr(build_api, "API_FILE", stale)
    monkeypatch.setattr(build_api, "ROOT", tmp_path)
    assert build_api.main(["--check"]) == 1
    assert "out of date: run python docs/build_api.py" in capsys.readouterr().err
    assert build_api.main([]) == 0  # rewriting it makes it current
    assert build_api.main(["--check"]) == 0


build_config = _load("build_config")


def test_docs_config_md_is_up_to_date_and_every_key_documented(capsys):
    assert build_config.undocumented() == [], "write a comment beside each config key in dllm_lite/config_keys.py"
    status = build_config.main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_config_comments_are_read_from_beside_and_above_each_key():
    from dataclasses import dataclass

    @dataclass
    class Section:
        plain: int = 1  # beside the key
        # above the key,
        # on two lines
        above: int = 2
        long: int = 3  # beside,
                       #   and continued
        bare: int = 4

    assert build_config.comments(Section) == {"plain": "beside the key", "above": "above the key, on two lines",
                                               "long": "beside, and continued", "bare": ""}


def test_an_undocumented_config_key_fails_the_check(monkeypatch, capsys):
    monkeypatch.setattr(build_config, "undocumented", lambda: ["train.new_key"])
    assert build_config.main(["--check"]) == 1
    assert "train.new_key" in capsys.readouterr().err

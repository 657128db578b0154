"""The import rules of DESIGN.md hold: import-linter checks the contracts in pyproject.toml.

`lint-imports` reads [tool.importlinter] (a layers contract with a floor for every module, no import
circles, and the forbidden imports that matter) and checks them against the package's real imports,
those inside functions included. The tests below run it on the package as it is, and on copies with
one bad import planted, to show that each kind of breakage is caught and named.
"""

import importlib.util
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dllm_lite
from conftest import load_script

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def contracts() -> list[dict]:
    """The import-linter contracts of pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["tool"]["importlinter"]["contracts"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package and pyproject.toml found in `root` (a fresh Python, no cache)."""
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(contracts())} kept, 0 broken" in result.stdout


def test_every_module_of_the_package_has_a_floor():
    """A new module fails until pyproject.toml places it (the layers contract is also exhaustive)."""
    layers = next(c for c in contracts() if c["type"] == "layers")
    placed = {name.strip() for floor in layers["layers"] for name in floor.replace(":", "|").split("|")}
    modules = {m.name for m in pkgutil.iter_modules(dllm_lite.__path__)}
    assert not modules - placed, f"give {sorted(modules - placed)} a floor in [tool.importlinter] of pyproject.toml"
    assert not placed - modules, f"pyproject.toml places modules that do not exist: {sorted(placed - modules)}"
    assert layers.get("exhaustive") is True and layers.get("containers") == ["dllm_lite"]


# (what is planted, in which file, and what the report must then say)
BREAKAGES = {
    "an upward import": ("corrupt.py", "from . import train\n", "dllm_lite.corrupt -> dllm_lite.train"),
    "a circle": ("load.py", "def _later():\n    from . import export\n", "No import circles BROKEN"),
    "a module without a floor": ("newcomer.py", '"""A new module."""\n', "newcomer"),
    "two neighbours on one floor": ("loss.py", "from . import sample\n", "dllm_lite.loss -> dllm_lite.sample"),
    "the data files reaching the model": ("sources.py", "from . import model\n",
                                          "The data files import the tokenizer, never the model side BROKEN"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_bad_import_breaks_the_contracts(tmp_path, breakage):
    shutil.copytree(ROOT / "dllm_lite", tmp_path / "dllm_lite", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    file, code, report = BREAKAGES[breakage]
    with open(tmp_path / "dllm_lite" / file, "a", encoding="utf-8") as handle:
        handle.write(code)
    result = lint(tmp_path)
    assert result.returncode != 0 and report in " ".join(result.stdout.split()), result.stdout + result.stderr


def test_the_contracts_need_import_linter_from_the_dev_extra():
    assert importlib.util.find_spec("importlinter") is not None
    with open(ROOT / "pyproject.toml", "rb") as file:
        dev = tomllib.load(file)["project"]["optional-dependencies"]["dev"]
    assert any(requirement.startswith("import-linter") for requirement in dev)


build_architecture = load_script("docs/build_architecture.py")


def test_the_architecture_diagram_is_up_to_date():
    assert build_architecture.main(["--check"]) == 0, "run python docs/build_architecture.py"


@pytest.mark.parametrize("change", ["an edited page", "a new import in the code", "a module moved to another floor"])
def test_a_diagram_that_no_longer_matches_fails_the_check(tmp_path, monkeypatch, change):
    page = tmp_path / "architecture.md"
    page.write_text(build_architecture.PAGE.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(build_architecture, "PAGE", page)
    monkeypatch.setattr(build_architecture, "ROOT", tmp_path)
    assert build_architecture.main(["--check"]) == 0
    if change == "an edited page":
        text = page.read_text(encoding="utf-8")
        line = next(line for line in text.splitlines() if "→" in line)  # one file's imports in the diagram
        page.write_text(text.replace(line, line + " viz", 1))
    elif change == "a new import in the code":
        real = build_architecture.imports
        monkeypatch.setattr(build_architecture, "imports", lambda root=ROOT: {**real(root), "corrupt": ["tokenize"]})
    else:
        stack = build_architecture.floors()
        monkeypatch.setattr(build_architecture, "floors", lambda root=ROOT: [stack[0] + stack[1]] + stack[2:])
    assert build_architecture.main(["--check"]) == 1


def test_every_module_is_described_on_the_architecture_page():
    text = build_architecture.PAGE.read_text(encoding="utf-8").split(build_architecture.END)[1]
    missing = [m.name for m in pkgutil.iter_modules(dllm_lite.__path__) if f"`{m.name}.py`" not in text]
    assert not missing, f"docs/architecture.md: give {missing} a line in 'Each file in one line'"

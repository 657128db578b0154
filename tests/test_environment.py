"""environment.yml (conda) and pyproject.toml (pip) must name the same dependencies."""

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # in the standard library from Python 3.11

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}  # the same package under its conda-forge name


def requirement(spec: str) -> tuple[str, str]:
    """'torch>=2.4' -> ('torch', '>=2.4'), with the name normalised."""
    name, version = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec).groups()
    return name.lower().replace("_", "-"), version.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(requirement(s) for s in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"], "conda-forge only: the pytorch channel no longer exists"
    conda, pip_lines = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_lines += dep["pip"]
        else:
            name, version = requirement(dep)
            conda[name] = version.lstrip("=") if version.startswith("=") and not version.startswith("==") else version
    for name, version in wanted.items():
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda, f"environment.yml lacks {conda_name} (pyproject.toml asks for {name}{version})"
        assert conda[conda_name] == version, f"{conda_name}: environment.yml {conda[conda_name]!r} != pyproject {version!r}"
    extra = set(conda) - {CONDA_NAMES.get(n, n) for n in wanted} - {"python", "pip"}
    assert not extra, f"environment.yml names packages pyproject.toml does not: {sorted(extra)}"
    assert '-e ".[dev]"' in pip_lines, "environment.yml must install the package itself in editable mode"

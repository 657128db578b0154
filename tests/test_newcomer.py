"""The first commands a newcomer types: the README's test command is what CI runs, and building
the website without its extra says what to install."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


def load_build_site():
    """docs/build_site.py as a module (docs/ is not a package)."""
    return load_script("docs/build_site.py")


def readme_command(tag: str) -> str:
    """The command on README.md's `<!-- ci:TAG -->` line, read the way .ci/run reads it."""
    result = subprocess.run(["sed", "-n", rf"s/^<!-- ci:{tag} --> *`\(.*\)`$/\1/p", "README.md"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()[0]


def test_the_readme_test_command_sets_what_ci_sets():
    command = readme_command("test")
    ci = (ROOT / ".ci" / "run").read_text()
    exported = dict(re.findall(r"(\w+)=(\S+)", re.search(r"^export (.*)$", ci, re.M).group(1)))
    # run as written, the notebooks take their small setting and draw no windows, as in CI
    assert exported["DLLM_SMOKE"] == "1" and "DLLM_SMOKE=1 " in command, command
    assert exported["MPLBACKEND"] == "Agg" and "MPLBACKEND=Agg " in command, command
    assert command.endswith("pytest --nbval-lax --nbval-current-env tests notebooks exercises"), command
    # the line still works as .ci/run uses it: eval of `VAR=value ... pytest ...` in a shell
    assert re.fullmatch(r"(\w+=\S+ )+pytest .*", command), command
    probe = subprocess.run(["bash", "-c", f"pytest() {{ env | grep -E '^(DLLM_SMOKE|MPLBACKEND)='; }}; eval '{command}'"],
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert sorted(probe.stdout.split()) == ["DLLM_SMOKE=1", "MPLBACKEND=Agg"], probe.stdout + probe.stderr


def test_building_the_site_without_the_docs_extra_names_the_install_command(monkeypatch):
    build_site = load_build_site()
    monkeypatch.setattr(build_site, "DOCS_MODULES", ("sphinx", "a_docs_module_that_is_not_installed"))
    with pytest.raises(SystemExit) as stop:
        build_site.build(ROOT / "docs" / "_build" / "never")
    message = str(stop.value)
    assert "a_docs_module_that_is_not_installed" in message and 'pip install -e ".[docs]"' in message
    assert "\n" not in message


def test_with_the_docs_extra_installed_nothing_is_reported_missing():
    if importlib.util.find_spec("sphinx") is None:
        pytest.skip("the docs extra is not installed here")
    assert load_build_site().missing_docs_modules() == []


def test_the_site_command_prints_that_line_not_a_traceback():
    # the command line, in a Python where Sphinx cannot be found (as without the docs extra)
    result = subprocess.run([sys.executable, "-c", (
        "import runpy, sys; sys.modules['sphinx'] = None\n"  # `import sphinx` now fails, find_spec gives None
        "sys.argv = ['docs/build_site.py']; runpy.run_path('docs/build_site.py', run_name='__main__')")],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().endswith('pip install -e ".[docs]"'), result.stderr

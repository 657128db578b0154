"""The notebooks import dllm_lite instead of re-implementing it, and their numbering has no gaps.

(Running them is nbval's job: the README's test command passes `notebooks exercises` to pytest.)
"""

import ast
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import dllm_lite

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


def code_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def markdown(path):
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def library_functions():
    """Every public function and class defined in the package's modules."""
    names = set()
    for info in pkgutil.iter_modules(dllm_lite.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"dllm_lite.{info.name}")
        for name, obj in vars(module).items():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == module.__name__:
                if not name.startswith("_"):
                    names.add(name)
    return names


@pytest.mark.parametrize("folder", ["notebooks", "exercises"])
def test_numbering_has_no_gaps(folder):
    paths = sorted((ROOT / folder).glob("*.ipynb"))
    assert paths, f"no notebooks in {folder}/"
    numbers = []
    for path in paths:
        match = re.match(r"^(\d{2})_[a-z0-9_]+\.ipynb$", path.name)
        assert match, f"{path.name}: name notebooks NN_topic.ipynb"
        numbers.append(int(match.group(1)))
    assert numbers == list(range(1, len(paths) + 1)), f"{folder}/ numbering has gaps or repeats: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS + EXERCISES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_imports_the_library_and_redefines_none_of_it(path):
    cells = code_cells(path)
    source = "\n".join(cells)
    assert re.search(r"^\s*(from dllm_lite|import dllm_lite)", source, re.M), f"{path.name} does not import dllm_lite"
    if path.parent.name == "exercises":
        return  # students write their own versions of library functions there, on purpose
    ours = library_functions()
    defined = set()
    for cell in cells:
        tree = ast.parse("\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("%", "!"))))
        defined |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    clash = sorted(defined & ours)
    assert not clash, f"{path.name} redefines library functions {clash}: import them from dllm_lite instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_an_opening_a_summary_and_stored_outputs(path):
    text = markdown(path)
    assert text and re.search(r"learn", text[0], re.I), f"{path.name}: open with what the reader will learn"
    assert re.search(r"summary", "\n".join(text[-2:]), re.I), f"{path.name}: end with a summary"
    assert re.search(r"try", "\n".join(text[-2:]), re.I), f"{path.name}: end with something to try"
    cells = json.loads(path.read_text())["cells"]
    assert any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{path.name} is stored without outputs"
    assert "setup(" in code_cells(path)[0] or "setup(" in code_cells(path)[1], f"{path.name}: call notebook.setup() first"


def test_every_notebook_links_the_glossary_and_references_and_points_to_its_exercises():
    for path in NOTEBOOKS:
        cells = markdown(path)
        assert "](../docs/glossary.md)" in cells[0] and "](../docs/references.md)" in cells[0], path.name
    assert (ROOT / "docs" / "glossary.md").is_file() and (ROOT / "docs" / "references.md").is_file()
    pointed = set()
    for path in NOTEBOOKS:
        closing = markdown(path)[-1]
        named = set(re.findall(r"exercises/(\d\d_\w+)\.ipynb", closing))
        assert all((ROOT / "exercises" / f"{name}.ipynb").is_file() for name in named), path.name
        pointed |= named
    assert pointed == {path.stem for path in EXERCISES}  # every exercise belongs to a lesson


def test_show_table_displays_one_markdown_table(monkeypatch):
    """notebook.show_table, the tables of notebooks 13 and 14: a header, its rule, then one line per row."""
    import IPython.display

    from dllm_lite.notebook import show_table

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    show_table(["model", "loss"], [["ar", 1.5], ["mdlm", "2.0 ± 0.1"]])
    assert [type(s).__name__ for s in shown] == ["Markdown"]
    assert shown[0].data == "| model | loss |\n| --- | --- |\n| ar | 1.5 |\n| mdlm | 2.0 ± 0.1 |"

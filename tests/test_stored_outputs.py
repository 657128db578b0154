"""The outputs stored in the notebooks and exercises are the ones a student should see.

nbval (lax mode) runs every cell but compares almost no outputs, and the website renders the
stored ones; so these checks read the stored outputs themselves and fail when:

(a) an output is an error, a traceback or a KeyboardInterrupt;
(b) an output says the notebook ran in smoke mode (`DLLM_SMOKE=1`, the CI setting, whose
    numbers are meaningless), other than the setup line saying it was off;
(c) a code cell that prints has no output of that kind, where "prints" means: a `print(...)`
    call that runs when the cell runs (not inside a `def` or `class`) wants a text stream;
    `plt.show()` or `display(...)` run the same way want a figure or a display; a last line
    that is a bare expression (not a call of print/show/display, not ended by `;`) wants a
    result. The cells allowed to have none are listed in OUTPUT_ALLOWED, each with its reason;
(d) a GPU-track notebook (07, 08) stores CPU figures (the device `cpu`, `mfu None`) in a cell
    whose source and outputs never say, in words, that it is a CPU run.

Each check is also run on a small notebook broken on purpose, to show that it can fail.
"""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
GPU_TRACK = [ROOT / "notebooks" / "07_tiny_config.ipynb", ROOT / "notebooks" / "08_small_config.ipynb"]

# (notebook file name, code cell index) -> why that cell may store no output of the kind its
# source suggests. Keep it short and true: every entry is a cell that does not print when run.
OUTPUT_ALLOWED: dict[tuple[str, int], str] = {}

ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|KeyboardInterrupt")
SMOKE_TEXT = re.compile(r"smoke", re.I)
SMOKE_OFF = re.compile(r"smoke mode: False")
CPU_FIGURE = re.compile(r"^\s*device\s+cpu\s*$|^\s*mfu\s+None\s*$|device: cpu\b|\bon cpu\b", re.M)
SAYS_CPU = re.compile(r"\bCPU (run|stand-in|figures|numbers)\b|no GPU here|on this CPU|not (a )?GPU (run|figures)", re.I)


def load(path: Path) -> dict:
    """The notebook at `path` as a dict (nbformat 4 JSON)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def output_text(output: dict) -> str:
    """Every piece of text an output holds: stream text, text/plain or HTML data, an error's name and traceback."""
    parts = [output.get("text", "")]
    for kind in ("text/plain", "text/html", "text/markdown"):
        parts.append(output.get("data", {}).get(kind, ""))
    parts += [output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])]
    return "\n".join("".join(p) if isinstance(p, list) else str(p) for p in parts)


def code_cells(notebook: dict):
    """(index in the notebook, source text, outputs) for every code cell."""
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            yield index, "".join(cell["source"]), cell.get("outputs", [])


def error_outputs(notebook: dict) -> list[str]:
    """(a) one line per stored output that is an error, a traceback or a KeyboardInterrupt."""
    found = []
    for index, _, outputs in code_cells(notebook):
        for output in outputs:
            if output["output_type"] == "error":
                found.append(f"cell {index}: stored error {output.get('ename', '?')}: {output.get('evalue', '')}")
            elif ERROR_TEXT.search(output_text(output)):
                found.append(f"cell {index}: stored output holds {ERROR_TEXT.search(output_text(output)).group(0)!r}")
    return found


def smoke_outputs(notebook: dict) -> list[str]:
    """(b) one line per stored output that mentions smoke mode, other than to say it was off."""
    found = []
    for index, _, outputs in code_cells(notebook):
        for output in outputs:
            text = SMOKE_OFF.sub("", output_text(output))
            if SMOKE_TEXT.search(text):
                line = next(line for line in text.splitlines() if SMOKE_TEXT.search(line))
                found.append(f"cell {index}: stored output ran in smoke mode: {line.strip()[:100]!r}")
    return found


def _runs_at_top_level(tree: ast.Module):
    """Every node that runs when the cell runs: the whole tree less the bodies of def, lambda and class."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _called_name(node: ast.AST) -> str:
    """'print', 'plt.show', 'display', ... for a call node, else ''."""
    if not isinstance(node, ast.Call):
        return ""
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def expected_outputs(source: str) -> set[str]:
    """What the cell's source says it shows: 'text' (a print), 'figure' (plt.show / display), 'result' (a last expression)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    tree = ast.parse("\n".join(lines))
    names = {_called_name(node) for node in _runs_at_top_level(tree)}
    wanted = set()
    if "print" in names:
        wanted.add("text")
    if names & {"plt.show", "display"}:
        wanted.add("figure")
    last = tree.body[-1] if tree.body else None
    if (isinstance(last, ast.Expr) and _called_name(last.value) not in {"print", "plt.show", "display"}
            and not source.rstrip().endswith(";")):
        wanted.add("result")
    return wanted


def stored_kinds(outputs: list[dict]) -> set[str]:
    """The kinds of output stored: 'text' (stdout), 'figure' (a display), 'result' (any display or result)."""
    kinds = set()
    for output in outputs:
        if output["output_type"] == "stream" and output.get("name") == "stdout":
            kinds.add("text")
        if output["output_type"] in ("display_data", "execute_result"):
            kinds.add("result")
            if output["output_type"] == "display_data":
                kinds.add("figure")
    return kinds


def missing_outputs(notebook: dict, name: str, allowed=OUTPUT_ALLOWED) -> list[str]:
    """(c) one line per code cell that prints but stores no output of that kind (cells in `allowed` excepted)."""
    found = []
    for index, source, outputs in code_cells(notebook):
        if (name, index) in allowed:
            continue
        missing = expected_outputs(source) - stored_kinds(outputs)
        if missing:
            found.append(f"cell {index}: its source shows {sorted(missing)} but no such output is stored")
    return found


def unmarked_cpu_figures(notebook: dict) -> list[str]:
    """(d) one line per cell that stores CPU figures (device cpu, mfu None) without saying it is a CPU run."""
    found = []
    for index, source, outputs in code_cells(notebook):
        texts = [output_text(output) for output in outputs]
        figures = [m.group(0).strip() for text in texts for m in CPU_FIGURE.finditer(text)]
        if figures and not any(SAYS_CPU.search(text) for text in [source, *texts]):
            found.append(f"cell {index}: stores CPU figures {figures} without saying it is a CPU run")
    return found


def label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


# ----------------------------------------------------------------------------- the repository


@pytest.mark.parametrize("path", NOTEBOOKS + EXERCISES, ids=label)
def test_no_stored_error_or_traceback(path):
    found = error_outputs(load(path))
    assert not found, f"{label(path)}: run it again and store real outputs:\n" + "\n".join(found)


@pytest.mark.parametrize("path", NOTEBOOKS + EXERCISES, ids=label)
def test_no_stored_smoke_mode_output(path):
    found = smoke_outputs(load(path))
    assert not found, f"{label(path)}: stored from a DLLM_SMOKE=1 run; run it in full:\n" + "\n".join(found)


@pytest.mark.parametrize("path", NOTEBOOKS + EXERCISES, ids=label)
def test_every_cell_that_prints_stores_its_output(path):
    found = missing_outputs(load(path), path.name)
    assert not found, (f"{label(path)}: outputs missing (a figure needs the inline backend: run without "
                       "MPLBACKEND=Agg):\n" + "\n".join(found))


def test_the_allow_list_names_real_cells_that_would_otherwise_fail():
    for (name, index), reason in OUTPUT_ALLOWED.items():
        path = next(p for p in NOTEBOOKS + EXERCISES if p.name == name)
        assert reason and missing_outputs(load(path), name, allowed={}), f"{name} cell {index}: drop it from OUTPUT_ALLOWED"


@pytest.mark.parametrize("path", GPU_TRACK, ids=label)
def test_gpu_track_notebooks_say_so_where_they_store_cpu_figures(path):
    found = unmarked_cpu_figures(load(path))
    assert not found, f"{label(path)}:\n" + "\n".join(found)


# ----------------------------------------------------------------------------- broken on purpose


def notebook(*cells) -> dict:
    """A minimal nbformat-4 notebook of (source, outputs) code cells."""
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "source": source, "outputs": outputs, "metadata": {}, "execution_count": None}
                      for source, outputs in cells]}


def stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


FIGURE = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}, "metadata": {}}


def test_each_check_fails_on_a_notebook_broken_on_purpose(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(notebook(
        ("print('ok')", [stream("ok\n")]),
        ("for step in range(3):\n    train_one_step()",
         [{"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": ["KeyboardInterrupt"]}]),
        ("print(summary)", [stream("Traceback (most recent call last):\n  File ...\n")]),
        ("print(f'device: {device}; smoke mode: {is_smoke()}')", [stream("device: cuda; smoke mode: True\n")]),
        ("print(figures)", [stream("CPU RUN (cpu): ... (smoke mode: a few steps)\n")]),
        ("if True:\n    print('summary')", []),
        ("plt.plot([1, 2])\nplt.show()", [stream("\n")]),
        ("net.num_params()", []),
        ("for key, value in figures.items():\n    print(key, value)", [stream("device               cpu\nmfu                  None\n")]),
    )))
    broken = load(path)
    assert [line.split(":")[0] for line in error_outputs(broken)] == ["cell 1", "cell 2"]
    assert [line.split(":")[0] for line in smoke_outputs(broken)] == ["cell 3", "cell 4"]
    assert [line.split(":")[0] for line in missing_outputs(broken, "broken.ipynb")] == ["cell 5", "cell 6", "cell 7"]
    assert missing_outputs(broken, "broken.ipynb", allowed={("broken.ipynb", 5): "its branch does not run"})[:1] == [
        "cell 6: its source shows ['figure'] but no such output is stored"]
    assert [line.split(":")[0] for line in unmarked_cpu_figures(broken)] == ["cell 8"]


def test_each_check_passes_a_notebook_stored_as_it_should_be(tmp_path):
    path = tmp_path / "good.ipynb"
    path.write_text(json.dumps(notebook(
        ("print(f'device: {device}; smoke mode: {is_smoke()}')", [stream("device: cuda; smoke mode: False\n")]),
        ("def helper():\n    print('only when called')", []),
        ("plt.plot([1, 2])\nplt.show()", [FIGURE]),
        ("x = 1;", []),
        ("net.num_params()", [{"output_type": "execute_result", "data": {"text/plain": "410240"}, "metadata": {},
                               "execution_count": 1}]),
        ("print('CPU RUN: no GPU here')\nprint(figures)", [stream("CPU RUN: no GPU here\ndevice               cpu\nmfu                  None\n")]),
    )))
    good = load(path)
    assert error_outputs(good) == smoke_outputs(good) == missing_outputs(good, "good.ipynb") == []
    assert unmarked_cpu_figures(good) == []

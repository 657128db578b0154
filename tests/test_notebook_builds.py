"""Each notebook written by a script in notebooks/build/ is stored exactly as the script writes it.

The scripts are the source of the built notebooks' text; the stored notebooks add only the
outputs. A cell edited in one and not the other (prose fixed in the stored notebook but not in
its script, say) would come back the next time the script runs. The scripts' `main` is run with
`nbformat.write` captured (course.write_notebook calls it), so nothing on disk changes.
"""

import importlib.util
import inspect
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "notebooks" / "build"
SCRIPTS = sorted(path for path in BUILD_DIR.glob("build_*.py"))


def built_notebooks(script: Path, monkeypatch) -> dict:
    """{stored path: notebook} for every notebook `script` writes, without writing any."""
    monkeypatch.syspath_prepend(str(BUILD_DIR))
    spec = importlib.util.spec_from_file_location(f"_built_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = {}
    monkeypatch.setattr(nbformat, "write", lambda notebook, path, *a, **k: written.update({Path(path): notebook}))
    if hasattr(module, "main"):
        status = module.main([]) if inspect.signature(module.main).parameters else module.main()
        assert status == 0, f"{script.name} main() returned {status}"
    else:  # a script that writes one notebook per number with write(number)
        for number in module.NOTEBOOKS:
            module.write(number)
    return written


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_stored_notebooks_equal_what_their_build_script_writes(script, monkeypatch, capsys):
    written = built_notebooks(script, monkeypatch)
    assert written, f"{script.name} wrote no notebook"
    for path, notebook in written.items():
        stored = json.loads(path.read_text(encoding="utf-8"))["cells"]
        built = [(cell.cell_type, cell.source) for cell in notebook.cells]
        kept = [(cell["cell_type"], "".join(cell["source"])) for cell in stored]
        assert len(kept) == len(built), (f"{path.name}: {len(kept)} stored cells, {script.name} writes {len(built)}; "
                                         f"edit the script and the stored notebook together")
        differ = [index for index, (a, b) in enumerate(zip(kept, built)) if a != b]
        assert not differ, (f"{path.name}: cells {differ} differ from what {script.name} writes; "
                            f"edit the script and the stored notebook together")


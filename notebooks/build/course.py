"""The links every notebook of the course carries: the glossary and references in its first cell, and
at its end the exercises that practise it.

    python notebooks/build/course.py          # add them to the stored notebooks (once; a second run changes nothing)

The build scripts write their notebooks with `write_notebook`, which calls `finish(cells, number)`, so
a rebuilt notebook keeps them; this script adds them to stored notebooks without running anything
(outputs stay). `md`, `code` and `KERNEL` are the build scripts' shared cell makers and metadata.
"""

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
          "language_info": {"name": "python"}}

LINKS = ("New words are explained in the [glossary](../docs/glossary.md); the papers this notebook "
         "follows are listed in the [references](../docs/references.md).")

# notebook number -> the exercises (exercises/NN_name.ipynb) that practise it, with what each asks
EXERCISES = {
    "01": [("01_corrupt", "write the forward process")],
    "02": [("02_elbo_weight", "write the ELBO weight w(t) for any schedule")],
    "03": [("03_subs", "write the SUBS rules on the denoiser's logits")],
    "04": [("04_diffusion_loss", "write the weighted masked cross-entropy")],
    "05": [("05_ancestral_step", "write one step of MDLM's sampler"),
           ("06_confidence_select", "choose the tokens LLaDA's sampler keeps"),
           ("07_reveal_counts", "share the reveals among the steps")],
    "10": [("08_infill", "fill a gap with sample.generate")],
    "11": [("09_block_mask", "build block diffusion's attention mask")],
    "12": [("10_sft_loss", "write the SFT loss from per-position cross-entropies")],
    "14": [("11_threshold_reveal", "write threshold decoding's reveal rule")],
}
# Notebook 09 trains its two character models with these overrides, and notebook 10 asks for its
# checkpoints by the same ones: one text for both cells, so that the two cannot drift apart (a
# mismatch would make notebook 10 quietly train both models again).
NB09_OVERRIDES = '''common = ["train.eval_every=300", "train.eval_batches=4", "train.max_steps=20000"] + pick([], [
    "train.max_steps=4", "train.max_minutes=null", "train.eval_every=4", "train.warmup_steps=1",
    "train.eval_batches=1", "train.bound_samples=1", "train.batch_size=4", "train.compile=false",
    "model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.seq_len=64", "sample.length=32", "sample.steps=8"])'''

PRACTISE_TITLE = "## Practise it"


def practise_text(number: str) -> "str | None":
    """The closing cell's text for notebook `number`, or None if no exercise goes with it."""
    if number not in EXERCISES:
        return None
    items = "\n".join(f"- `exercises/{name}.ipynb`: {what}." for name, what in EXERCISES[number])
    one = len(EXERCISES[number]) == 1
    return (f"{PRACTISE_TITLE}\n\nNow do {'this exercise' if one else 'these exercises'}. "
            f"{'Its checker tests' if one else 'Each has a checker that tests'} your function and says what is "
            f"wrong, if anything:\n\n{items}")


def finish(cells: list, number: str) -> list:
    """The cells with the links added to the first (markdown) cell and the exercise cell appended; idempotent."""
    first = cells[0]
    if first.cell_type == "markdown" and LINKS not in first.source:
        first.source = first.source.rstrip() + "\n\n" + LINKS
    text = practise_text(number)
    if text is not None and not any(c.cell_type == "markdown" and c.source.startswith(PRACTISE_TITLE) for c in cells):
        cells.append(new_markdown_cell(text))
    return cells


def md(text: str):
    """A markdown cell of the text, without its surrounding blank lines."""
    return new_markdown_cell(text.strip())


def code(text: str):
    """A code cell of the text, without its surrounding blank lines."""
    return new_code_cell(text.strip())


def write_notebook(name: str, cells: list, number: str) -> Path:
    """Write notebooks/`name` (without outputs) from the cells, `finish`ed for notebook `number`; say so and
    return its path. Every build script writes its notebooks through here."""
    path = NOTEBOOKS_DIR / name
    nbformat.write(new_notebook(cells=finish(cells, number), metadata=KERNEL), path)
    print(f"wrote {path}")
    return path


def main() -> int:
    """Add the links to every stored notebook that lacks them."""
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        before = nbformat.writes(notebook)
        finish(notebook.cells, path.name[:2])
        if nbformat.writes(notebook) != before:
            nbformat.write(notebook, path)
            print(f"updated {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

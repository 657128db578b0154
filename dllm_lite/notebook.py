"""Helpers shared by the notebooks: one switch that shrinks them, quiet output, the device.

Every notebook calls `setup()` in its first code cell and wraps each size that costs
time in `pick(full, smoke)`. Setting the environment variable `DLLM_SMOKE=1` (CI does)
makes every notebook take its small setting, so the whole series runs on a 2-core CPU
in minutes; unset, a reader gets the full-size run.
"""

import os
import random
import warnings

import torch

__all__ = ["is_smoke", "pick", "setup", "device", "show_table"]


def is_smoke() -> bool:
    """True when DLLM_SMOKE is set to anything but '' or '0': the notebooks' small setting."""
    return os.environ.get("DLLM_SMOKE", "") not in ("", "0")


def pick(full, smoke):
    """`smoke` under DLLM_SMOKE=1, else `full` (for steps, batch sizes, sequence lengths)."""
    return smoke if is_smoke() else full


def device() -> str:
    """The best device here: 'cuda', then 'mps', then 'cpu'."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def show_table(header, rows) -> None:
    """Show a markdown table in the notebook: `header` the column names, `rows` lists of cells (each shown with str)."""
    from IPython.display import Markdown, display  # here, not at the top: only a notebook has IPython

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))


def setup(seed: int = 0, quiet: bool = True) -> str:
    """Seed every generator, silence library warnings, and return the device to use.

    Under DLLM_SMOKE=1 progress bars are turned off too (TQDM_DISABLE), so that stored
    notebook outputs do not change from run to run.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    if quiet:
        warnings.filterwarnings("ignore")
    if is_smoke():
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:  # crisp, readable figures inline
        import matplotlib.pyplot as plt

        plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})
    except ImportError:
        pass
    return device()

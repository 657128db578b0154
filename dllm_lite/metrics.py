"""A run's metrics read back and drawn: the records of <out_dir>/metrics.jsonl and the loss plot.

The training loop writes one JSON object per log line (step, loss, lr, grad_norm, tokens_per_s,
elapsed) and one per evaluation (step, val_loss, val_bound, val_ppl, sample) through
`_run.MetricsFile`; `read_metrics` reads them back in order, skipping a line a killed run cut
short, and `plot_metrics` draws the training and validation curves (loss.png at the end of a run,
inline in a notebook).

References: karpathy/nanoGPT's logging; matplotlib's object-oriented `Figure` (no pyplot state).
"""

import json
import math
from pathlib import Path

__all__ = ["read_metrics", "plot_metrics"]


def read_metrics(out_dir) -> list[dict]:
    """The records of <out_dir>/metrics.jsonl (a training log line or an evaluation each), in order."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics at {path}; train first with dllm_lite.train.train(cfg)")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a killed run
            continue
    return records


def plot_metrics(source, path=None):
    """Plot training loss, validation loss and validation bound against the step, the best validation point marked.

    source: a run directory or a list of metric records. Writes a PNG to `path` if given.
    The y axis is scaled to what follows the first tenth of the run (`_y_range`), so that
    the first losses (14 nats for a character model's first step) do not squeeze the curve
    that matters into the bottom of the plot. Returns the matplotlib Figure (displayed inline
    by Jupyter).
    """
    from matplotlib.figure import Figure

    records = read_metrics(source) if isinstance(source, (str, Path)) else list(source)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    curves = {}
    for key, label, style in [("loss", "train loss", "-"), ("val_loss", "validation loss", "o-"),
                              ("val_bound", "validation NLL bound", "s-")]:
        points = [(r["step"], r[key]) for r in records if key in r and math.isfinite(r[key])]
        if points:
            curves[key] = points
            ax.plot(*zip(*points), style, label=label, markersize=4)
    best_key = "val_bound" if "val_bound" in curves else "val_loss"
    if best_key in curves:
        step, value = min(curves[best_key], key=lambda point: point[1])
        ax.plot([step], [value], "*", color="black", markersize=12, label=f"best: {value:.4f} at step {step:,}")
    y_range = _y_range(curves)
    if y_range is not None:
        ax.set_ylim(*y_range)
    ax.set_xlabel("step")
    ax.set_ylabel("nats per token")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _y_range(curves: dict) -> "tuple[float, float] | None":
    """(bottom, top) for the loss plot: every value fits except the first tenth of the run's steps, which
    may run off the top; None when that leaves nothing to scale to."""
    last = max((step for points in curves.values() for step, _ in points), default=0)
    later = [value for points in curves.values() for step, value in points if step > last / 10]
    if not later:
        return None
    low = min(value for points in curves.values() for _, value in points)
    high = max(later)
    margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
    return low - margin, high + margin

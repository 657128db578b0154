"""The run folder (`train.out_dir`): starting fresh over an old run, resuming from a checkpoint, the files.

A run folder holds:

    config.yaml      the resolved config of the latest invocation
    metrics.jsonl    one JSON object per log line and per evaluation
    loss.png         the loss curves, drawn at the end
    step_000500.pt   checkpoints, the last `train.keep_last` of them
    latest.pt        the newest checkpoint (a hard link to, or a copy of, the step file)
    .run.lock        held by the run that uses the folder (`_run.RunLock`): one run per folder

A fresh start refuses a folder that holds checkpoints unless asked to overwrite them; a resumed
run reads its checkpoint, checks it against the config, and forgets the metrics logged after it.

References: karpathy/nanoGPT's out_dir and init_from="resume".
"""

from pathlib import Path

import yaml

from ._run import MetricsFile, Ranks
from .checkpoint import CheckpointError, check_compatible, read_checkpoint, set_rng_state, step_files
from .config import config_to_dict
from .metrics import read_metrics

__all__ = ["resume_state", "old_run_files", "clear_old_run", "open_run_dir", "restore", "diverged_message"]


def resume_state(out_dir: Path, resume, cfg) -> "dict | None":
    """The checkpoint a run resumes from, read and checked against `cfg`; None when `resume` is False.

    resume: True for <out_dir>/latest.pt, or a checkpoint path. A missing file, or a folder (an
    exported model, which holds no optimiser or data position), is a CheckpointError.
    """
    if not resume:
        return None
    path = out_dir / "latest.pt" if resume is True else Path(resume)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, and a run resumes from a checkpoint file (an exported folder "
                              f"holds weights only, no optimiser or data position); pass e.g. {path}/latest.pt")
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: no checkpoint at {path}; run without --resume to start fresh")
    state = read_checkpoint(path)
    check_compatible(state, cfg, path)
    return state


def old_run_files(out_dir: Path, overwrite: bool) -> list[Path]:
    """The files of an earlier run in out_dir; starting fresh over its checkpoints needs overwrite=True."""
    old = step_files(out_dir) + [p for p in [out_dir / "latest.pt"] if p.exists()]
    if old and not overwrite:
        raise CheckpointError(f"{out_dir} already holds checkpoints ({old[-1].name}); pass --resume to continue, "
                              f"--overwrite to start again, or set train.out_dir to a new folder")
    return old + [p for p in (out_dir / "metrics.jsonl", out_dir / "loss.png") if p.exists()]


def clear_old_run(out_dir: Path, old_files: list) -> None:
    """Make out_dir; delete `old_files` (an earlier run's, see old_run_files) and the halves of checkpoint
    writes that a kill -9 cut short. Rank 0 only."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in old_files + sorted(out_dir.glob(".*.pt.tmp*")):  # + halves of a write a kill -9 cut short
        path.unlink(missing_ok=True)


def open_run_dir(out_dir: Path, cfg, state, step: int, ranks: Ranks) -> MetricsFile:
    """Write config.yaml; on resume forget the metrics past the checkpoint; return the metrics file."""
    metrics = MetricsFile(out_dir, ranks.main)
    if ranks.main:
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
        if state is not None:
            metrics.forget_after(step, read_metrics)
    return metrics


def restore(state, tokenizer, net, optimizer, loader, ranks: Ranks, device):
    """Load a checkpoint into the run; return (step, elapsed seconds, (unlogged loss sum, unlogged steps))."""
    if state["tokenizer"] != tokenizer.state_dict():
        raise CheckpointError(f"the checkpoint's tokenizer differs from the one built from data ({tokenizer.name}, "
                              f"vocab {tokenizer.vocab_size}); resume with the checkpoint's data settings")
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    loader.load_state_dict(state["data"])
    saved = state.get("rng_ranks") or [state["rng"]]  # older checkpoints hold rank 0's generators only
    if ranks.rank < len(saved):  # a rank the checkpoint has no state for keeps its (seed + rank) generators
        set_rng_state(saved[ranks.rank], device)
    return state["step"], state["elapsed"], (state["interval_loss_sum"], state["interval_steps"])


def diverged_message(step: int, lr: float, out_dir: Path) -> str:
    """The one-line error of a run whose loss became NaN or infinite: the step, the lr, the fix, the checkpoint kept."""
    latest = out_dir / "latest.pt"
    kept = f"; the last good checkpoint, {latest}, is untouched" if latest.exists() else ""
    return (f"the loss became NaN or infinite by step {step} (lr {lr:.3g}); lower train.lr or raise "
            f"train.warmup_steps{kept}")

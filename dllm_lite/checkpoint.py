"""Checkpoints: what a training run saves, how it is written safely, and how a model comes back from it.

A checkpoint is one dict saved with `torch.save`:

    format      "dllm_lite-checkpoint-1", so a stranger's .pt file is refused clearly
    step        optimiser steps taken
    model       the network's state_dict
    optimizer   the optimiser's state (AdamW's moments and step counts; Muon's momenta too)
    rng         every random generator the run touches (torch, CUDA, numpy, Python), on rank 0
    rng_ranks   the same for every rank of a torchrun group (rank 0's first), so dropout resumes exactly
    data        where the block loader stands in its epoch
    config      the resolved config, as plain data (see config.config_to_dict)
    tokenizer   enough to rebuild the tokenizer (see tokenize.tokenizer_from_state)
    ...         plus the wall time so far and the loss of the unfinished log interval

Two rules keep a run safe. Writing is atomic: a temporary file in the same folder is
written, flushed to disk (fsync) and renamed over the target, so a crash mid-write leaves
the old file whole. Reading uses `torch.load(weights_only=True)`, which unpickles tensors
and plain containers only: opening a checkpoint can never run code from it.

Reading a checkpoint back (`read_checkpoint`, `load_checkpoint`, which also takes a folder
written by dllm_lite.export) lives in load.py, below this file and export.py; its names are
imported here too, so `checkpoint.load_checkpoint` keeps working.
"""

import errno
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from .config import config_to_dict
from .load import CHECKPOINT_FORMAT, CheckpointError, build_model, load_checkpoint, read_checkpoint
from .tokenize import Tokenizer

__all__ = ["build_model", "save_checkpoint", "step_files", "read_checkpoint", "load_checkpoint", "check_compatible",
           "initial_weights", "rng_state", "set_rng_state", "CheckpointError", "CHECKPOINT_FORMAT"]

STEP_FILE = re.compile(r"step_(\d+)\.pt")
# keys a resumed run must share with its checkpoint (the rest, e.g. max_steps or lr, may change)
MUST_MATCH = [("model", key) for key in ("n_layer", "n_head", "n_embd", "seq_len", "position", "mlp_ratio", "conv",
                                         "block_size")] + [
    ("train", "objective"), ("train", "optimizer"), ("data", "tokenizer")]


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same folder, flush and fsync it, then rename over `path`."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(state: dict, out_dir: Path, keep_last: int) -> Path:
    """Write step_XXXXXX.pt atomically, point latest.pt at it, and delete all but the last keep_last.

    A write that fails (a full disk, an I/O error) raises a one-line CheckpointError that says why
    and which checkpoint is still intact; nothing half-written is left behind.
    """
    path = out_dir / f"step_{state['step']:06d}.pt"
    try:
        atomic_save(state, path)
        tmp = out_dir / f".latest.pt.tmp{os.getpid()}"
        try:
            os.link(path, tmp)  # a hard link: no second copy on disk, and os.replace keeps it atomic
        except OSError:
            atomic_save(state, tmp)
        os.replace(tmp, out_dir / "latest.pt")
    except (OSError, RuntimeError) as error:
        raise CheckpointError(f"could not write the checkpoint {path.name}: {_why(error)}; "
                              f"{_intact(out_dir, path)}") from None
    for old in step_files(out_dir)[:-keep_last]:
        old.unlink()
    return path


def _why(error: BaseException) -> str:
    """The operating system's reason behind a failed write. torch.save reports a full disk as a
    RuntimeError ("unexpected pos ..."), with the OSError it met as its context."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    if error is None:
        return "the write failed"
    if error.errno == errno.ENOSPC:
        return "no space left on device (free some, or set train.out_dir to a disk with room)"
    return (error.strerror or str(error)).lower()


def _intact(out_dir: Path, failed: Path) -> str:
    """Which checkpoint survives a failed save: latest.pt and the step it holds."""
    latest = out_dir / "latest.pt"
    if not latest.exists():
        return "no earlier checkpoint exists"
    for path in reversed(step_files(out_dir)):
        if path != failed and path.exists() and os.path.samefile(path, latest):
            return f"latest.pt (step {int(STEP_FILE.fullmatch(path.name).group(1))}) is intact"
    return "latest.pt is intact"


def step_files(out_dir: Path) -> list[Path]:
    """The step_<N>.pt files of out_dir, oldest first: ordered by N as a number, since past step
    999,999 the names grow a seventh digit and text order would put the newest first."""
    found = [(int(match.group(1)), path) for path in Path(out_dir).glob("step_*.pt")
             if (match := STEP_FILE.fullmatch(path.name))]
    return [path for _, path in sorted(found)]


def check_compatible(state: dict, cfg, path: Path) -> None:
    """Refuse to resume a checkpoint whose model (or objective, or tokenizer) differs from cfg."""
    asked, defaults = config_to_dict(cfg), config_to_dict(type(cfg)())
    for section, key in MUST_MATCH:  # a key newer than the checkpoint had its default then
        saved, wanted = state["config"][section].get(key, defaults[section][key]), asked[section][key]
        if saved != wanted:
            raise CheckpointError(f"checkpoint {path} was trained with {section}.{key}={saved} but the config asks "
                                  f"for {wanted}; use the checkpoint's value or a new train.out_dir")


ATTENDS = {"diffusion": "attends both ways over the whole row and fills masked tokens",
           "autoregressive": "attends left to right and predicts the next token",
           "block_diffusion": "fills masked tokens block by block, each block seeing itself and the clean blocks "
                              "before it"}


def initial_weights(path, cfg, log=print) -> tuple[dict, Tokenizer]:
    """(weights, tokenizer) of a checkpoint file or exported folder for a new run of `cfg` to start from
    (train.init_from): fine-tuning keeps the network and its vocabulary and starts a fresh optimiser.

    The network's shape must match cfg.model (model.seq_len may differ under rotary positions,
    which have no learned table), and the tokenizer kind data.tokenizer; each mismatch is one line.
    A checkpoint trained with another train.objective (an AR or block-diffusion model starting a
    diffusion run) is accepted, and `log` says in one line what is reused and what changes.
    """
    net, tokenizer, saved, _ = load_checkpoint(path)
    was, now = saved.train.objective, cfg.train.objective
    if was != now:
        log(f"train.init_from: {path} was trained with objective {was}; all its weights (embedding, "
            f"{saved.model.n_layer} blocks, final norm) and its tokenizer are reused, the optimiser starts fresh, "
            f"and the network now {ATTENDS.get(now, now)} instead of the way it learned ({ATTENDS.get(was, was)})")
    if tokenizer.name != cfg.data.tokenizer:
        raise CheckpointError(f"train.init_from={path} holds a {tokenizer.name} tokenizer but data.tokenizer is "
                              f"{cfg.data.tokenizer}; set data.tokenizer: {tokenizer.name}")
    keys = ["n_layer", "n_head", "n_embd", "position", "mlp_ratio", "conv"]
    keys += ["seq_len"] if cfg.model.position == "learned" else []
    for key in keys:
        have, want = getattr(saved.model, key), getattr(cfg.model, key)
        if have != want:
            raise CheckpointError(f"train.init_from={path} has model.{key}={have} but the config asks for {want}; "
                                  f"give model.{key}: {have} (a fine-tuned network keeps the shape it was trained with)")
    return net.state_dict(), tokenizer


def rng_state(device: torch.device) -> dict:
    """Every random generator the run touches, as tensors and plain Python values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [name, keys.tolist(), pos, has_gauss, cached],
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def set_rng_state(rng: dict, device: torch.device) -> None:
    """Put back the generators saved by `rng_state`."""
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if device.type == "cuda" and rng["cuda"] is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)

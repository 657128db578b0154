r"""The training loop and its command line: one loop for the diffusion, block diffusion and autoregressive objectives.

    python -m dllm_lite.train --config configs/tiny.yaml [train.max_steps=200 ...] [--resume]
    torchrun --nproc_per_node 8 -m dllm_lite.train --config configs/small.yaml

One optimiser step draws `grad_accum` micro-batches of `batch_size` blocks, computes the
objective on each (diffusion: the negative ELBO of `loss.py`, or its "mean" variant; block
diffusion: the same per block of `model.block_size` tokens, block.py; autoregressive:
next-token cross-entropy), clips the gradient norm and takes an optimiser step
(`train.optimizer`: AdamW, or Muon for the blocks' matrices with AdamW for the rest; see muon.py).
The learning rate warms up linearly, then follows a cosine down to `min_lr`:

$$ \eta(s) = \eta_{min} + \tfrac12 (\eta - \eta_{min}) \big(1 + \cos(\pi \tfrac{s - s_w}{S - s_w})\big) $$

Prompt/response pairs (`data.prompt_field` set, pairs.py): each batch is rows of
[prompt, response, eot, padding], the objective is the SFT loss (`loss.sft_loss`: the prompt
never masked; the AR twin `loss.ar_sft_loss`), the bound is per answer token given the prompt,
and the evaluation's sample answers a validation prompt. `train.init_from` starts a run from a
trained checkpoint's weights and tokenizer with a fresh optimiser: fine-tuning.

Evaluation always reports true quantities on the validation split: for (block) diffusion the
NLL bound (`loss.nll_bound`, nats per token) and its perplexity $e^{bound}$, for the AR
baseline the exact cross-entropy and its perplexity, plus one short sample.

A run directory (`train.out_dir`) holds:

    config.yaml      the resolved config of the latest invocation
    metrics.jsonl    one JSON object per log line and per evaluation
    loss.png         the loss curves, drawn at the end
    step_000500.pt   checkpoints, the last `train.keep_last` of them
    latest.pt        the newest checkpoint (a hard link to, or a copy of, the step file)

Distributed data parallel through `torchrun` (RANK / WORLD_SIZE / LOCAL_RANK): each rank
reads its slice of the global batch, and the diffusion noise of the *global* batch is
drawn from a generator seeded by (seed, step) on every rank, each keeping its rows, so
the loss curve is the one a single process gets with the same global batch.

References: karpathy/nanoGPT train.py (loop, weight-decay groups, cosine schedule);
PyTorch DDP and torchrun documentation; Sahoo et al. 2024 (MDLM); Nie et al. 2025 (LLaDA).
"""

import argparse
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from tqdm.auto import tqdm

from ._run import (Aborted, Clock, FolderInUseError, Interval, MetricsFile, Ranks, RunLock, StopSignals, count,
                   quiet_progress)
from .checkpoint import (CHECKPOINT_FORMAT, CheckpointError, build_model, check_compatible, initial_weights,
                         load_checkpoint, read_checkpoint, rng_state, save_checkpoint, set_rng_state, step_files)
from .config import ConfigError, config_to_dict, load_config
from .block import block_times
from .corrupt import corrupt, get_schedule, sample_times
from .data import BlockLoader, DataError, build_tokenizer, load_tokens, usable_folder
from .loss import ar_loss, ar_sft_loss, masked_cross_entropy, nll_bound, response_mask, weigh
from .pairs import PairBatch, PairLoader, Pairs, load_pairs
from .muon import build_optimizer
from .sample import generate, until_eot
from .tokenize import EncodingDownloadError

__all__ = [
    "train", "main", "build_model", "lr_at", "diffusion_step_loss", "evaluate", "load_checkpoint",
    "read_checkpoint", "read_metrics", "plot_metrics", "CheckpointError", "DivergedError", "FolderInUseError",
]

class DivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def available_devices() -> list[str]:
    """The devices this machine can train on: "cpu", then "cuda:0" ... and "mps" where present."""
    mps = getattr(torch.backends, "mps", None)
    return (["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
            + (["mps"] if mps is not None and mps.is_available() else []))


def resolve_device(name: str, local_rank: int = 0, key: str = "train.device") -> torch.device:
    """"auto" -> cuda (this rank's GPU), else mps, else cpu; any other name must be a device this machine has
    (a ConfigError naming `key` and the devices there are, otherwise)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    device = torch.device(name)
    present = available_devices()
    wanted = f"{device.type}:{device.index or 0}" if device.type == "cuda" else device.type
    if wanted not in present:
        raise ConfigError(f"{key}={name} is not available: this machine has {', '.join(present)}; "
                          f"use {key}=auto (or one of those)")
    return device


def lr_at(step: int, train_cfg, time_fraction: float = 0.0) -> float:
    """The learning rate of optimiser step `step` (0-based): linear warm-up, then cosine to min_lr.

    The cosine's progress is the larger of the steps done (of max_steps) and `time_fraction`,
    the share of train.max_minutes already spent (0 without a time cap). So a run stopped by
    its time cap still ends at min_lr, on a fast machine or a slow one.
    """
    t = train_cfg
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = min(1.0, max((step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps), time_fraction))
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * progress))


def diffusion_step_loss(net, x0, schedule, mask_id, weighting="elbo", generator=None, rank=0, world_size=1,
                        block_size=None, prompt_len=None):
    r"""The diffusion loss of this rank's rows x0 (B, L) of a global batch of W*B rows.

    Times and masks are drawn for the whole global batch from `generator` (seeded alike on
    every rank) and each rank keeps rows rank*B .. (rank+1)*B, so W processes make exactly
    the masks of one process with W*B rows. With W = 1 the draws, and so the value, are
    those of `loss.diffusion_loss`.
    elbo: $\frac{1}{BL} \sum_b w(t_b) \sum_{i\,masked} -\log p_\theta(x_0^{b,i} \mid x_t^b)$; DDP's
    average over ranks makes it the global mean.
    mean: this rank's masked cross-entropy summed, times W over the global masked count, which
    DDP's average turns into the global mean over masked tokens.
    block_size: the block diffusion objective (block.py): a time per block, the [x_t, x_0] pass.
    prompt_len (B,): pair rows, the SFT loss of `loss.sft_loss` (the prompt never masked, each row
    divided by its response region's length); with "mean", each rank averages its own masked tokens.
    """
    B, L = x0.shape
    schedule = get_schedule(schedule)
    if block_size is None:
        t_all = sample_times(B * world_size, antithetic=True, generator=generator, device=x0.device)  # (W B,)
    else:
        t_all = block_times(B * world_size, L, block_size, generator=generator, device=x0.device)  # (W B, L)
    _, masked_all = corrupt(torch.zeros(B * world_size, L, dtype=x0.dtype, device=x0.device), t_all,
                            mask_id, schedule, generator=generator)  # (W B, L): the draws depend on shape only
    rows = slice(rank * B, (rank + 1) * B)
    t, is_masked = t_all[rows], masked_all[rows]  # (B,), (B, L)
    if prompt_len is not None:
        is_masked = is_masked & response_mask(prompt_len, L)  # the prompt stays clean
        ce = masked_cross_entropy(net, x0, is_masked, mask_id)  # (N,)
        return weigh(ce, is_masked, t, schedule, weighting, lengths=L - prompt_len)
    ce = masked_cross_entropy(net, x0, is_masked, mask_id, block_size)  # (N,)
    return weigh(ce, is_masked, t, schedule, weighting, n_masked=masked_all.sum() / world_size)


def _batch_loss(net, batch, cfg, mask_id, generator, rank=0, world_size=1):
    """The training objective of cfg.train on a batch, (B, L) ids or a PairBatch of pairs, in nats per token."""
    if isinstance(batch, PairBatch):
        if cfg.train.objective == "autoregressive":
            return ar_sft_loss(net, batch.ids, batch.prompt_len, batch.answer_len, mask_id)
        return diffusion_step_loss(net, batch.ids, cfg.train.schedule, mask_id, cfg.train.weighting, generator, rank,
                                   world_size, prompt_len=batch.prompt_len)
    if cfg.train.objective == "autoregressive":
        return ar_loss(net, batch, mask_id)
    return diffusion_step_loss(net, batch, cfg.train.schedule, mask_id, cfg.train.weighting, generator, rank,
                               world_size, cfg.model.block_size)


def _loader(data, cfg, seed, rank=0, world_size=1, device="cpu", validation=False):
    """The batches of `data`: a PairLoader over packed pairs, a BlockLoader over a flat token array.
    Validation pairs fewer than a batch make one smaller batch."""
    if isinstance(data, Pairs):
        batch_size = min(cfg.train.batch_size, len(data)) if validation else cfg.train.batch_size
        return PairLoader(data, batch_size, seed, rank, world_size, device)
    return BlockLoader(data, cfg.model.seq_len, cfg.train.batch_size, seed, rank, world_size, device)


@torch.no_grad()
def evaluate(net, cfg, val_tokens, tokenizer, device, autocast=nullcontext, stop=None) -> "dict | None":
    """Validation loss, NLL bound (diffusion), perplexity and one short sample, all seeded by train.seed.

    The same validation batches (`eval_batches` of them, at most the whole split once) and the
    same noise are used at every evaluation, so successive values differ only because the model
    changed. `stop`, if given, is asked before every batch; when it returns True the evaluation
    is abandoned and None returned (a signal asked the run to stop).
    """
    t = cfg.train
    loader = _loader(val_tokens, cfg, seed=t.seed, device=device, validation=True)
    generator = torch.Generator(device=device).manual_seed(t.seed)
    was_training = net.training
    net.eval()
    losses, bounds = [], []
    for _ in range(min(t.eval_batches, loader.steps_per_epoch)):
        if stop is not None and stop():
            net.train(was_training)
            return None
        batch = loader.next_batch()  # (B, L) ids, or a PairBatch
        pairs = isinstance(batch, PairBatch)
        with autocast():
            losses.append(_batch_loss(net, batch, cfg, tokenizer.mask_id, generator).item())
            if t.objective != "autoregressive":
                bounds.append(nll_bound(net, batch.ids if pairs else batch, t.schedule, tokenizer.mask_id,
                                        n_samples=t.bound_samples, generator=generator, batch_size=t.batch_size,
                                        block_size=cfg.model.block_size, prompt_len=batch.prompt_len if pairs else None,
                                        answer_len=batch.answer_len if pairs else None))
    record = {"val_loss": sum(losses) / len(losses)}
    if bounds:
        record["val_bound"] = sum(bounds) / len(bounds)
    record["val_ppl"] = math.exp(min(record.get("val_bound", record["val_loss"]), 700.0))
    s = cfg.sample
    if isinstance(val_tokens, Pairs):  # pairs: answer the first validation prompt
        with autocast():
            record["sample"] = _answer_first(net, val_tokens, tokenizer, cfg, generator)
        net.train(was_training)
        return record
    # one short unconditional sample (an AR model starts from its beginning-of-sequence token)
    length = min(s.length, 64)
    with autocast():
        ids = generate(net, mask_id=tokenizer.mask_id, length=length, steps=min(s.steps, length),
                       strategy=s.strategy, schedule=t.schedule, temperature=s.temperature, top_k=s.top_k,
                       top_p=s.top_p, block_size=s.block_size if s.block_size and s.block_size <= length else None,
                       threshold=s.threshold, generator=generator, eot_id=tokenizer.eot_id)  # (1, <= length)
    record["sample"] = tokenizer.decode(ids[0])
    net.train(was_training)
    return record


def _answer_first(net, pairs, tokenizer, cfg, generator) -> str:
    """"prompt -> answer" for the first pair of `pairs`, decoded with cfg.sample's strategy (one step per token)."""
    prompt = pairs.ids[0, : pairs.prompt_len[0]]
    length = cfg.model.seq_len - len(prompt)
    ids = generate(net, mask_id=tokenizer.mask_id, length=length, steps=length, prompt=prompt.to(generator.device),
                   strategy=cfg.sample.strategy, schedule=cfg.train.schedule, temperature=cfg.sample.temperature,
                   top_k=cfg.sample.top_k, top_p=cfg.sample.top_p, threshold=cfg.sample.threshold,
                   generator=generator)  # (1, L)
    return f"{tokenizer.decode(prompt)} -> {tokenizer.decode(until_eot(ids[0, len(prompt):], tokenizer.eot_id))}"


# ----------------------------------------------------------------------------- run directory

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


# ----------------------------------------------------------------------------- the loop

def train(cfg, resume=False, overwrite: bool = False) -> dict:
    """Train the model of `cfg`; return a summary dict (step, loss, val_loss, val_bound, val_ppl, wall_time_s, ...).

    resume: False to start fresh, True to continue from <out_dir>/latest.pt, or a checkpoint path.
    overwrite: start fresh even if out_dir holds an earlier run's checkpoints (they are deleted).
    The run holds an exclusive lock on out_dir (`_run.RunLock`) until it returns: a second run on the
    same folder raises FolderInUseError naming the first one's PID.
    Raises ConfigError / DataError / CheckpointError for bad input and DivergedError on a NaN loss.
    """
    out_dir = Path(cfg.train.out_dir)
    usable_folder(out_dir, "train.out_dir")  # a file, a path under a file, /proc ...: one line, before any work
    with RunLock(out_dir, main=int(os.environ.get("RANK", "0")) == 0):  # held until the run ends: one run per folder
        return _start(cfg, out_dir, resume, overwrite)


def _start(cfg, out_dir: Path, resume, overwrite: bool) -> dict:
    """train() under the run folder's lock: read the checkpoint to resume or clear an old run, then train."""
    t = cfg.train
    state = None
    if resume:
        path = out_dir / "latest.pt" if resume is True else Path(resume)
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder, and a run resumes from a checkpoint file (an exported folder "
                                  f"holds weights only, no optimiser or data position); pass e.g. {path}/latest.pt")
        if not path.is_file():
            raise CheckpointError(f"nothing to resume: no checkpoint at {path}; run without --resume to start fresh")
        state = read_checkpoint(path)
        check_compatible(state, cfg, path)
    old_files = [] if state is not None else _old_run_files(out_dir, overwrite)
    rank, world_size, device, started_group = _init_distributed(t.device)
    try:
        if rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            for path in old_files + sorted(out_dir.glob(".*.pt.tmp*")):  # + halves of a write a kill -9 cut short
                path.unlink(missing_ok=True)
        return _train(cfg, state, out_dir, Ranks(rank, world_size, device), device)
    finally:
        if started_group:
            dist.destroy_process_group()


def _train(cfg, state, out_dir: Path, ranks: Ranks, device: torch.device) -> dict:
    t = cfg.train
    torch.manual_seed(t.seed + ranks.rank)
    random.seed(t.seed)
    np.random.seed(t.seed)
    weights, tokenizer = None, None
    if state is None and t.init_from:  # fine-tuning: a trained network and its tokenizer
        weights, tokenizer = initial_weights(t.init_from, cfg, ranks.log)
    tokenizer, train_tokens, val_tokens = _load_data(cfg, ranks, tokenizer)
    mask_id = tokenizer.mask_id
    net = build_model(cfg, tokenizer.vocab_size).to(device)
    if weights is not None:  # fine-tuning: the checkpoint's network, a fresh optimiser
        net.load_state_dict(weights)
    use_bf16, autocast = _precision(t.dtype, device)
    optimizer = build_optimizer(net, t.optimizer, t.lr, t.weight_decay, betas=(t.beta1, t.beta2),
                                fused=device.type == "cuda", muon_lr=t.muon_lr)
    loader = _loader(train_tokens, cfg, t.seed, ranks.rank, ranks.world_size, device)
    step, elapsed_before, unlogged = 0, 0.0, (0.0, 0)
    if state is not None:
        step, elapsed_before, unlogged = _restore(state, tokenizer, net, optimizer, loader, ranks, device)
    compile_start = time.time()
    model = _wrap(net, cfg, mask_id, autocast, device, ranks)
    clock = Clock(t.max_minutes, elapsed_before, started=compile_start)  # compiling counts against the cap
    metrics = _open_run_dir(out_dir, cfg, state, step, ranks)
    tokens_per_step = t.batch_size * t.grad_accum * ranks.world_size * cfg.model.seq_len
    _log_start(net, cfg, use_bf16, device, ranks, tokens_per_step, state, step, out_dir)

    noise = torch.Generator(device=device)  # re-seeded for every micro-batch (see _accumulate_gradients)
    interval = Interval(device, *unlogged, step=step)
    last_eval, last_loss, stopped, start_step, loop_start = {}, None, None, step, time.time()
    with StopSignals() as signals, tqdm(total=t.max_steps, initial=step, unit="step", dynamic_ncols=True,
                                        disable=quiet_progress(ranks.rank)) as bar:
        while step < t.max_steps:
            lr = _set_lr(optimizer, lr_at(step, t, clock.share))
            step_loss = _accumulate_gradients(model, loader, noise, cfg, mask_id, step, autocast, ranks)
            grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip if t.grad_clip > 0 else math.inf)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            interval.add(step_loss, grad_norm)
            bar.update(1)
            stopped = _stop_reason(step, t, signals, clock, ranks)  # None: go on

            if step % t.log_every == 0 or stopped:  # the only host read of the loss
                if interval.diverged(ranks):
                    raise DivergedError(_diverged_message(step, lr, out_dir))
                last_loss, tokens_per_s = interval.close(step, ranks, tokens_per_step)
                metrics.write({"step": step, "loss": last_loss, "lr": lr, "grad_norm": grad_norm.item(),
                               "tokens_per_s": tokens_per_s, "elapsed": clock.elapsed()})
                bar.set_postfix(loss=f"{last_loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
            if step == start_step + 3 and device.type == "cpu" and not stopped:
                _log_estimate((time.time() - loop_start) / 3, step, t, ranks)
            if step % t.eval_every == 0 or stopped in ("max_steps", "max_minutes"):
                with clock.aside("eval", interval):
                    if ranks.main:
                        last_eval = _evaluate_and_log(net, cfg, val_tokens, tokenizer, device, autocast, step,
                                                      clock, metrics, ranks, signals) or last_eval
                    stopped = "signal" if ranks.agree(torch.tensor([float(signals.requested)]))[0] > 0 else stopped
            if step % t.save_every == 0 or stopped:
                with clock.aside("save", interval):
                    if interval.diverged(ranks):
                        raise DivergedError(_diverged_message(step, lr, out_dir))
                    interval.average_over(ranks)  # a resumed run then logs the ranks' mean
                    rngs = ranks.gather(rng_state(device))  # every rank's generators (dropout differs by rank)
                    if ranks.main:
                        save_checkpoint(_checkpoint(step, net, optimizer, loader, cfg, tokenizer, rngs, clock,
                                                    interval), out_dir, t.keep_last)
            if stopped:
                break

    wall = time.time() - loop_start
    stopped = stopped or "max_steps"
    if ranks.main:
        plot_metrics(out_dir, out_dir / "loss.png")
        why = {"signal": "interrupted; continue with --resume", "max_minutes": "stopped at train.max_minutes",
               "max_steps": "done"}[stopped]
        ranks.log(f"{why}: step {step}, {wall / 60:.1f} min; checkpoint {out_dir / 'latest.pt'}, "
                  f"metrics {metrics.path}, plot {out_dir / 'loss.png'}")
    return {"step": step, "loss": last_loss, "val_loss": last_eval.get("val_loss"),
            "val_bound": last_eval.get("val_bound"), "val_ppl": last_eval.get("val_ppl"),
            "wall_time_s": wall, "stopped": stopped, "signal": signals.signum, "out_dir": str(out_dir),
            "checkpoint": str(out_dir / "latest.pt"), "parameters": net.num_params()}


# ----------------------------------------------------------------------------- the loop's steps

def _accumulate_gradients(model, loader, noise, cfg, mask_id, step, autocast, ranks) -> torch.Tensor:
    """Forward and backward over train.grad_accum micro-batches; return the step's loss (on the device).

    Each micro-batch's diffusion noise comes from `noise` seeded by (seed, step, micro-batch), the
    same on every rank, so a resumed or a data-parallel run draws the masks that one uninterrupted
    process draws.
    """
    t = cfg.train
    step_loss = torch.zeros((), device=loader.device)
    for micro in range(t.grad_accum):
        x = loader.next_batch()  # (B, L) this rank's rows
        noise.manual_seed((t.seed * 2**32 + step * t.grad_accum + micro) % 2**63)
        sync = not ranks.distributed or micro == t.grad_accum - 1  # all-reduce the gradients once per step
        with (nullcontext() if sync else model.no_sync()), autocast():
            loss = _batch_loss(model, x, cfg, mask_id, noise, ranks.rank, ranks.world_size) / t.grad_accum
        loss.backward()
        step_loss += loss.detach()
    return step_loss


def _set_lr(optimizer, lr: float) -> float:
    """Give every parameter group the learning rate `lr` (times its lr_scale: Muon's own peak, train.muon_lr)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


def _stop_reason(step: int, t, signals: StopSignals, clock: Clock, ranks: Ranks) -> "str | None":
    """Why the loop stops after this step ("signal", "max_minutes", "max_steps"), or None to go on.

    Under a time cap the run stops early enough that the closing evaluation and checkpoint (timed
    when they last ran) fit, also after a periodic one due at this step. Every rank must agree to
    stop at the same step, and on the share of the cap the learning rate follows (clock.share,
    updated here).
    """
    elapsed = clock.elapsed()
    out_of_time = clock.out_of_time(elapsed, step % t.eval_every == 0, step % t.save_every == 0)
    flags = ranks.agree(torch.tensor([float(signals.requested), float(out_of_time), clock.share_of_cap(elapsed)]))
    clock.share = flags[2].item()
    if flags[0] > 0:
        return "signal"
    if flags[1] > 0:
        return "max_minutes"
    return "max_steps" if step == t.max_steps else None


def _evaluate_and_log(net, cfg, val_tokens, tokenizer, device, autocast, step, clock, metrics, ranks,
                      signals) -> "dict | None":
    """Run `evaluate` on rank 0, write its record and print one line with the bound and the sample;
    None if a signal stopped it half way (nothing is written then)."""
    with torch.no_grad():
        result = evaluate(net, cfg, val_tokens, tokenizer, device, autocast, stop=lambda: signals.requested)
    if result is None:
        return None
    metrics.write({"step": step, **result, "elapsed": clock.elapsed()})
    bound = f"bound {result['val_bound']:.4f}, " if "val_bound" in result else ""
    ranks.log(f"step {step}: val loss {result['val_loss']:.4f}, {bound}ppl {result['val_ppl']:.2f} | "
              f"{json.dumps(result['sample'][:120], ensure_ascii=False)}")
    return result


def _checkpoint(step, net, optimizer, loader, cfg, tokenizer, rngs, clock: Clock, interval: Interval) -> dict:
    """Everything a resumed run needs to continue exactly (see checkpoint.py); rngs: every rank's generators."""
    return {"format": CHECKPOINT_FORMAT, "step": step, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "lr": lr_at(step, cfg.train, clock.share), "rng": rngs[0], "rng_ranks": rngs, "data": loader.state_dict(),
            "config": config_to_dict(cfg), "tokenizer": tokenizer.state_dict(), "elapsed": clock.elapsed(),
            "interval_loss_sum": interval.loss_sum.item(), "interval_steps": interval.steps}


# ----------------------------------------------------------------------------- setting up

def _init_distributed(device_name: str):
    """(rank, world_size, device, started_here): joins the torchrun group when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size == 1:
        return 0, 1, device, False
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world_size, device, started


def _load_data(cfg, ranks: Ranks, tokenizer=None):
    """(tokenizer, training data, validation data or None on ranks > 0): flat token arrays, or packed
    `Pairs` when data.prompt_field is set. Rank 0 reads (and caches) the data first, the other ranks
    then find it cached. `tokenizer`: one to use instead of building it (train.init_from's)."""
    if ranks.distributed and not ranks.main:
        dist.barrier()
    tokenizer = tokenizer or build_tokenizer(cfg.data)
    if cfg.data.prompt_field is None:
        load = lambda split: load_tokens(cfg.data, tokenizer, split)  # noqa: E731
    else:
        load = lambda split: load_pairs(cfg.data, tokenizer, split, cfg.model.seq_len, ranks.log)  # noqa: E731
    train_tokens = load("train")
    val_tokens = None
    if ranks.main:
        val_tokens = load("validation")
        batches = _loader(val_tokens, cfg, seed=0, validation=True).steps_per_epoch  # fails if < 1
        if cfg.train.eval_batches > batches:
            ranks.log(f"train.eval_batches={cfg.train.eval_batches} is more than the validation split holds: each "
                      f"evaluation reads all of it once ({batches} batches)")
    if ranks.distributed and ranks.main:
        dist.barrier()
    return tokenizer, train_tokens, val_tokens


def _precision(dtype: str, device: torch.device):
    """(use_bf16, autocast): bf16 autocast when train.dtype asks for it, or on "auto" on a GPU that has it."""
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return use_bf16, (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext


def _restore(state, tokenizer, net, optimizer, loader, ranks: Ranks, device):
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


def _wrap(net, cfg, mask_id, autocast, device, ranks: Ranks):
    """The module the loop calls: `net`, inside DDP when there are several ranks, compiled if train.compile."""
    model = net
    if ranks.distributed:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.train.compile:
        dummy = torch.zeros(cfg.train.batch_size, cfg.model.seq_len, dtype=torch.long, device=device)  # (B, L)
        if cfg.data.prompt_field is not None:  # pairs: a prompt of 1 token and an answer of 1
            ones = torch.ones(cfg.train.batch_size, dtype=torch.long, device=device)
            dummy = PairBatch(dummy, ones, ones)
        trial = lambda m: _batch_loss(m, dummy, cfg, mask_id, torch.Generator(device=device).manual_seed(0))  # noqa: E731
        model = _try_compile(model, net, trial, autocast, device, ranks)
    return model


def _try_compile(model, net, trial_loss, autocast, device: torch.device, ranks: Ranks):
    """torch.compile(model), then one trial step on a throwaway batch under the run's own autocast, so
    that the compile time is paid before the clock starts and the first real step finds its graph
    ready (the masked head runs outside the graph, so later steps do not recompile either). If the
    compiler fails (on a CPU, torch.compile needs a working C++ toolchain), say so and return the
    eager model. The trial leaves no gradient and no trace in the random generators."""
    compiled = torch.compile(model)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            with autocast():
                trial = trial_loss(compiled)
            trial.backward()
    except Exception as error:  # the compiler's own errors have many types (inductor, dynamo, C++ build)
        first_line = (str(error).strip().splitlines() or [""])[0][:160]
        ranks.log(f"torch.compile failed ({type(error).__name__}: {first_line}); training without it "
                  f"(set train.compile=false to skip the attempt)")
        compiled = model
    finally:
        net.zero_grad(set_to_none=True)
    return compiled


def _open_run_dir(out_dir: Path, cfg, state, step: int, ranks: Ranks) -> MetricsFile:
    """Write config.yaml; on resume forget the metrics past the checkpoint; return the metrics file."""
    metrics = MetricsFile(out_dir, ranks.main)
    if ranks.main:
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
        if state is not None:
            metrics.forget_after(step, read_metrics)
    return metrics


def _old_run_files(out_dir: Path, overwrite: bool) -> list[Path]:
    """The files of an earlier run in out_dir; starting fresh over its checkpoints needs overwrite=True."""
    old = step_files(out_dir) + [p for p in [out_dir / "latest.pt"] if p.exists()]
    if old and not overwrite:
        raise CheckpointError(f"{out_dir} already holds checkpoints ({old[-1].name}); pass --resume to continue, "
                              f"--overwrite to start again, or set train.out_dir to a new folder")
    return old + [p for p in (out_dir / "metrics.jsonl", out_dir / "loss.png") if p.exists()]


def _diverged_message(step: int, lr: float, out_dir: Path) -> str:
    latest = out_dir / "latest.pt"
    kept = f"; the last good checkpoint, {latest}, is untouched" if latest.exists() else ""
    return (f"the loss became NaN or infinite by step {step} (lr {lr:.3g}); lower train.lr or raise "
            f"train.warmup_steps{kept}")


def _log_start(net, cfg, use_bf16, device, ranks: Ranks, tokens_per_step, state, step, out_dir) -> None:
    """The run's first lines: the model's size, objective, precision and device; where a resume starts."""
    n = net.num_params()
    ranks.log(f"model: {count(n)} parameters ({count(n - net.num_params(non_embedding=True))} in the embedding), "
              f"{cfg.train.objective} objective, {'bfloat16' if use_bf16 else 'float32'} on {device}"
              f"{f' x {ranks.world_size} processes' if ranks.distributed else ''}; {tokens_per_step:,} tokens per step")
    if state is not None:
        ranks.log(f"resumed from step {step} in {out_dir}")


def _log_estimate(seconds_per_step: float, step: int, t, ranks: Ranks) -> None:
    """On a CPU, say how long the rest of the run will take; point a long run to the quick config."""
    minutes = seconds_per_step * (t.max_steps - step) / 60
    if minutes < 1:
        return
    cap = f" (train.max_minutes stops it at {t.max_minutes:g})" if t.max_minutes else ""
    hint = ("; for a quick CPU run try python -m dllm_lite.train --config configs/shakespeare_char.yaml"
            if minutes > 30 and not (t.max_minutes and t.max_minutes <= 30) else "")
    ranks.log(f"on this CPU: {seconds_per_step:.2f} s/step, about {minutes:.0f} min for the {t.max_steps - step} "
              f"steps left{cap}{hint}")


def main(argv=None) -> int:
    """Command line: python -m dllm_lite.train --config FILE [section.key=value ...] [--resume]."""
    parser = argparse.ArgumentParser(prog="python -m dllm_lite.train", description="Train a masked diffusion "
                                     "(or autoregressive) language model from a YAML config.")
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/tiny.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_steps=200 train.lr=1e-3")
    parser.add_argument("--resume", action="store_true", help="continue from <train.out_dir>/latest.pt")
    parser.add_argument("--resume-from", metavar="CHECKPOINT", help="continue from this checkpoint file")
    parser.add_argument("--overwrite", action="store_true", help="start fresh, deleting out_dir's old checkpoints")
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after the flags
    rank = int(os.environ.get("RANK", "0"))
    warnings.formatwarning = lambda message, category, *rest, **kw: f"warning: {message}\n"  # one line each
    cfg = None
    try:
        cfg = load_config(args.config, args.overrides)
        summary = train(cfg, resume=args.resume_from or args.resume, overwrite=args.overwrite)
    except (ConfigError, DataError, CheckpointError, EncodingDownloadError, FolderInUseError) as error:
        if rank == 0:
            print(f"error: {error}", file=sys.stderr)
        return 2
    except DivergedError as error:
        if rank == 0:
            print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:  # a second signal (Aborted), or Ctrl-C before the loop took over signals
        signum = error.signum if isinstance(error, Aborted) else signal.SIGINT
        where = f"the checkpoints in {cfg.train.out_dir} are as the last save left them" if cfg else "nothing was written"
        if rank == 0:
            print(f"error: stopped at once by {signal.Signals(signum).name}; {where}", file=sys.stderr)
        return 128 + signum
    if summary["stopped"] == "signal":  # saved, but stopped early: tell the shell, as an interrupted program does
        return 128 + summary["signal"]
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

The run folder (`train.out_dir`: config.yaml, metrics.jsonl, loss.png, the checkpoints) is
run_folder.py's; the side concerns of the loop each have their own file:

    objective.py    the loss of one batch (diffusion, block diffusion, autoregressive, pairs)
    validation.py   `evaluate`: the validation pass, its bound and its sample
    devices.py      the device, bf16 autocast, the torchrun group, torch.compile
    run_folder.py   resuming, clearing an old run, config.yaml, restoring a checkpoint
    metrics.py      `read_metrics` and `plot_metrics`: metrics.jsonl read back and drawn
    _run.py         the clock, stop signals, the metrics file, the ranks, the folder lock

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
from tqdm.auto import tqdm

from ._run import Aborted, Clock, FolderInUseError, Interval, Ranks, RunLock, StopSignals, count, quiet_progress
from .checkpoint import (CHECKPOINT_FORMAT, CheckpointError, build_model, initial_weights, load_checkpoint,
                         read_checkpoint, rng_state, save_checkpoint)
from .config import ConfigError, config_to_dict, load_config
from .data import DataError, build_tokenizer, load_tokens, usable_folder
from .devices import init_distributed, precision, try_compile
from .devices import available_devices, resolve_device  # noqa: F401 (train.resolve_device, as before the split)
from .metrics import plot_metrics, read_metrics
from .muon import build_optimizer
from .objective import batch_loader, batch_loss, diffusion_step_loss
from .pairs import PairBatch, load_pairs
from .run_folder import clear_old_run, diverged_message, old_run_files, open_run_dir, restore, resume_state
from .tokenize import EncodingDownloadError
from .validation import evaluate

__all__ = [
    "train", "main", "build_model", "lr_at", "diffusion_step_loss", "evaluate", "load_checkpoint",
    "read_checkpoint", "read_metrics", "plot_metrics", "CheckpointError", "DivergedError",
]


class DivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


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
    state = resume_state(out_dir, resume, cfg)
    old_files = [] if state is not None else old_run_files(out_dir, overwrite)
    rank, world_size, device, started_group = init_distributed(t.device)
    try:
        if rank == 0:
            clear_old_run(out_dir, old_files)
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
    use_bf16, autocast = precision(t.dtype, device)
    optimizer = build_optimizer(net, t.optimizer, t.lr, t.weight_decay, betas=(t.beta1, t.beta2),
                                fused=device.type == "cuda", muon_lr=t.muon_lr)
    loader = batch_loader(train_tokens, cfg, t.seed, ranks.rank, ranks.world_size, device)
    step, elapsed_before, unlogged = 0, 0.0, (0.0, 0)
    if state is not None:
        step, elapsed_before, unlogged = restore(state, tokenizer, net, optimizer, loader, ranks, device)
    compile_start = time.time()
    model = _wrap(net, cfg, mask_id, autocast, device, ranks)
    clock = Clock(t.max_minutes, elapsed_before, started=compile_start)  # compiling counts against the cap
    metrics = open_run_dir(out_dir, cfg, state, step, ranks)
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
                    raise DivergedError(diverged_message(step, lr, out_dir))
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
                        raise DivergedError(diverged_message(step, lr, out_dir))
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
            loss = batch_loss(model, x, cfg, mask_id, noise, ranks.rank, ranks.world_size) / t.grad_accum
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
        batches = batch_loader(val_tokens, cfg, seed=0, validation=True).steps_per_epoch  # fails if < 1
        if cfg.train.eval_batches > batches:
            ranks.log(f"train.eval_batches={cfg.train.eval_batches} is more than the validation split holds: each "
                      f"evaluation reads all of it once ({batches} batches)")
    if ranks.distributed and ranks.main:
        dist.barrier()
    return tokenizer, train_tokens, val_tokens


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
        trial = lambda m: batch_loss(m, dummy, cfg, mask_id, torch.Generator(device=device).manual_seed(0))  # noqa: E731
        model = try_compile(model, net, trial, autocast, device, ranks)
    return model


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

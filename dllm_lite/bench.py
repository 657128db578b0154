r"""Benchmark: training throughput, MFU and memory, and sampling speed, diffusion next to autoregressive.

**Training.** One function, `time_training`, times full optimiser steps of one configuration
(forward, backward, gradient clipping, AdamW, zero_grad) on random token ids that already
live on the device; the only host synchronisation it adds is one after the warm-up and one
after the timed steps. (The diffusion loss itself reads the number of masked positions to
run the output head only there, a data-dependent shape, so each of its steps syncs once.)
The diffusion objective (`loss.diffusion_loss`) and the autoregressive one (`loss.ar_loss`
on a `causal=True` twin of the same shape) are timed in the same run, and so is each lever
(`torch.compile`, bf16 autocast vs float32, masked vs full output head, batch size,
activation checkpointing), each a variant that differs from the base in one setting.

MFU, model FLOPs utilisation (PaLM, Chowdhery et al. 2022, appendix B), is the model FLOP/s
achieved over the hardware peak:

$$ \mathrm{MFU} = \frac{\text{tokens/s} \cdot F}{\text{peak FLOP/s}}, \qquad
   F = 6N + 12 \cdot L \cdot H \cdot Q \cdot T $$

with F from `Transformer.flops_per_token`: $6N$ for the N weights (a multiply-add per token
forward, two backward; Kaplan et al. 2020) and $12 L H Q T$ for the attention scores and
their weighted sum (L layers, H heads of size Q, T positions). The output head (the tied
embedding) is counted where the objective needs it: at every position for the
autoregressive loss, at the masked half for the diffusion loss (linear schedule,
$E[1 - \alpha(t)] = 1/2$), so F is smaller for diffusion, and a variant that computes the
head everywhere (`full-head`) keeps the diffusion F: its extra work shows as lower MFU. The
peak is the dense bf16 tensor-core peak (989 TFLOP/s for an H100 or H200 SXM) for every row.

**Sampling.** `time_sampling` times `sample.generate` for one strategy, number of steps and
batch size and counts the network calls; the autoregressive twin generates the same number
of tokens with its key/value cache (and without, at a short length, for the ratio).

References: karpathy/nanoGPT (`estimate_mfu`); Chowdhery et al. 2022 (PaLM, MFU);
Kaplan et al. 2020 (6N); Sahoo et al. 2024 (MDLM, the cached ancestral sampler);
Wu et al. 2025 (Fast-dLLM, threshold decoding).
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from .config import load_config
from .corrupt import get_schedule
from .loss import ar_loss, diffusion_loss
from .model import ModelConfig, Transformer
from .muon import build_optimizer
from .sample import STRATEGIES, generate

__all__ = ["BenchOptions", "TrainSpec", "run_bench", "time_training", "time_sampling", "check_targets",
           "format_table", "merge_results", "main"]

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bf16 tensor-core peak of the SXM cards
GPT2_VOCAB = 50258  # GPT-2's 50257 tokens and [MASK]
MEDIUM = dict(n_layer=24, n_head=16, n_embd=1024, activation_checkpointing=True)
TINY = dict(n_layer=2, n_head=2, n_embd=64, seq_len=32, batch_size=4, vocab_size=256, steps=3, warmup=1,
            sample_length=16, sample_steps=(4, 8, 16), sample_batch_sizes=(1, 2), ar_nocache_length=8,
            medium=dict(n_layer=4, n_head=4, n_embd=64, activation_checkpointing=True))
LEVERS = ("compile", "dtype", "full-head", "checkpointing")
THRESHOLD_NOTE = ("threshold decoding on an untrained net: its confidences sit near 1/V, far below the "
                  "threshold, so it reveals one token per step and the rest at the last step; a trained net "
                  "commits many tokens per step and needs fewer calls")


@dataclass
class BenchOptions:
    """Everything `run_bench` measures; the defaults are the small (GPT-2-small shaped) config."""

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    seq_len: int = 1024
    batch_size: int = 16
    vocab_size: int = GPT2_VOCAB
    activation_checkpointing: bool = False
    steps: int = 10  # timed optimiser steps per variant
    warmup: int = 3  # untimed steps first (at least 3 for compiled variants)
    compile: bool = False
    dtype: str = "auto"  # "auto" (bf16 on CUDA, float32 elsewhere), "bfloat16", "float32"
    device: str = "auto"
    compare: tuple = ()  # levers from LEVERS, each a variant next to the base
    batch_sizes: tuple = ()  # extra batch sizes to time
    training: bool = True
    sampling: bool = True
    sample_length: int = 1024
    sample_steps: tuple = (64, 256, 1024)
    sample_batch_sizes: tuple = (1, 16)
    strategies: tuple = ("ancestral", "confidence", "threshold")  # left_to_right and random cost what confidence does
    threshold: float = 0.9
    sample_block_size: int | None = None  # adds a semi-autoregressive "confidence" variant
    block_size: int | None = None  # adds block diffusion rows: a training step, and sampling with its cache
    ar_nocache_length: int = 128  # the AR model without its cache, at this (short) length
    compile_sampling: bool = False
    sample_limit_s: float | None = None  # stop a diffusion row at batch > 1 after this many seconds
    medium_memory: bool = False
    medium: dict = field(default_factory=lambda: dict(MEDIUM))  # shape of the memory check
    peak_tflops: float | None = None
    json_path: str | None = None
    progress: bool = True
    verbose: bool = True
    seed: int = 0

    def __post_init__(self):
        for lever in self.compare:
            if lever not in LEVERS:
                raise ValueError(f"unknown lever {lever!r} in compare: choose from {', '.join(LEVERS)}")
        for strategy in self.strategies:
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}: choose from {', '.join(STRATEGIES)}")
        if self.dtype not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"dtype must be auto, bfloat16 or float32, got {self.dtype!r}")
        if self.steps < 1 or self.warmup < 0:
            raise ValueError(f"need steps >= 1 and warmup >= 0, got steps={self.steps}, warmup={self.warmup}")


@dataclass
class TrainSpec:
    """One training configuration to time; `lever` names the one setting that differs from the base."""

    name: str
    objective: str  # "diffusion", "autoregressive" or "block_diffusion"
    n_layer: int
    n_head: int
    n_embd: int
    seq_len: int
    batch_size: int
    vocab_size: int
    dtype: str  # "bfloat16" (autocast) or "float32"
    compile: bool = False
    full_head: bool = False
    activation_checkpointing: bool = False
    block_size: int | None = None  # block diffusion's K
    steps: int = 10
    warmup: int = 3
    lever: str | None = None


class FullHead(nn.Module):
    """A net whose output head runs at all T positions before `only_at` picks rows: the cost the masked head saves."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, idx, only_at=None):
        logits = self.net(idx)  # (B, T, V)
        return logits if only_at is None else logits[only_at]  # (N, V)


class _OverTime(Exception):
    """A sampling row ran past its time limit."""


class _Metered(nn.Module):
    """Counts network calls and stops a generation that runs past `deadline` (perf_counter seconds)."""

    def __init__(self, net, deadline):
        super().__init__()
        self.net, self.cfg, self.deadline, self.calls = net, net.cfg, deadline, 0

    def forward(self, *args, **kwargs):
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OverTime()
        self.calls += 1
        return self.net(*args, **kwargs)

    def new_cache(self, batch_size):
        return self.net.new_cache(batch_size)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device, dtype):
    return torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()


def _reset_memory(device, collect=False):
    """Start a new peak-memory count; with collect=True first free what earlier variants left (slow: gc)."""
    if collect:
        gc.collect()
    if device.type == "cuda":
        if collect:
            torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device):
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def peak_tflops_of(device, override=None):
    """The peak dense bf16 TFLOP/s: `override` if given, else looked up from the CUDA device name (None if unknown)."""
    if override is not None:
        return float(override)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)
    return None


def time_training(spec: TrainSpec, device, peak_tflops=None) -> dict:
    """Time `spec.steps` optimiser steps after `spec.warmup`; return its row (tokens/s, ms/step, GiB, MFU)."""
    torch.manual_seed(0)
    causal = spec.objective == "autoregressive"
    cfg = ModelConfig(vocab_size=spec.vocab_size, n_layer=spec.n_layer, n_head=spec.n_head, n_embd=spec.n_embd,
                      seq_len=spec.seq_len, causal=causal, activation_checkpointing=spec.activation_checkpointing,
                      block_size=spec.block_size)
    net = Transformer(cfg).to(device)
    optimizer = build_optimizer(net, "adamw", lr=3e-4, weight_decay=0.1, betas=(0.9, 0.999), fused=device.type == "cuda")
    if spec.compile:
        torch._dynamo.reset()
    model = torch.compile(net) if spec.compile else net
    if spec.full_head:
        model = FullHead(model)
    generator = torch.Generator(device=device).manual_seed(0)
    # real tokens only; both objectives score all T positions (the AR loss after its BOS)
    data = torch.randint(0, cfg.mask_id, (spec.batch_size, spec.seq_len), device=device, generator=generator)

    def step():
        with _autocast(device, spec.dtype):
            loss = (ar_loss(model, data, cfg.mask_id) if causal
                    else diffusion_loss(model, data, "linear", cfg.mask_id, generator, block_size=spec.block_size))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(spec.warmup):
        step()
    _sync(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(spec.steps):
        step()
    _sync(device)
    elapsed = time.perf_counter() - start
    tokens_per_s = spec.batch_size * spec.seq_len * spec.steps / elapsed
    # the diffusion loss needs the head only at masked positions (half of them, linear schedule), also
    # in the full-head variant, whose extra head work is waste: it shows as a lower MFU
    flops = net.flops_per_token(head_share=1.0 if causal else get_schedule("linear").mean_mask_prob(),
                                streams=2 if spec.block_size else 1)  # block diffusion: one pass over [x_t, x_0]
    mfu = tokens_per_s * flops / (peak_tflops * 1e12) if peak_tflops else None
    return dict(kind="train", **asdict(spec), params=net.num_params(), flops_per_token=flops, warmup_s=warmup_s,
                step_ms=1000 * elapsed / spec.steps, tokens_per_s=tokens_per_s, peak_gib=_peak_gib(device),
                mfu=mfu, error=None)


def _sampling_row(net, name, length, steps=1, batch_size=1, strategy="confidence", block_size=None, threshold=None,
                  use_cache=True) -> dict:
    """The settings part of a sampling row (the numbers are filled in by `time_sampling`)."""
    causal, model_blocks = net.cfg.causal, getattr(net.cfg, "block_size", None)
    objective = "autoregressive" if causal else "block_diffusion" if model_blocks else "diffusion"
    return dict(kind="sample", name=name, objective=objective,
                strategy="autoregressive" if causal else strategy, steps=length if causal else steps,
                batch_size=batch_size, length=length, block_size=model_blocks or block_size, threshold=threshold,
                use_cache=use_cache if causal or model_blocks else None, network_calls=None, steps_taken=None, seconds=None,
                tokens_per_s=None, ms_per_call=None, peak_gib=None, error=None)


def time_sampling(net, device, dtype, *, name, length, steps=1, batch_size=1, strategy="confidence", block_size=None,
                  threshold=None, use_cache=True, limit_s=None, seed=0) -> dict:
    """Time one `generate` call of `net` (a causal net: KV-cached AR from its BOS, no prompt); return its row.

    tokens/s counts the generated tokens, batch_size * length. With `limit_s`, a call still
    running after that many seconds is stopped and recorded as an error with its calls so far.
    """
    row = _sampling_row(net, name, length, steps, batch_size, strategy, block_size, threshold, use_cache)
    stats = {}
    kwargs = dict(use_cache=use_cache) if net.cfg.causal else dict(
        strategy=strategy, block_size=block_size, threshold=threshold, use_cache=use_cache)  # (the cache: block nets)
    _reset_memory(device)
    start = time.perf_counter()
    metered = _Metered(net, None if limit_s is None else start + limit_s)
    try:
        with _autocast(device, dtype):
            generate(metered, mask_id=net.cfg.mask_id, length=length, steps=row["steps"], batch_size=batch_size,
                     generator=torch.Generator(device=device).manual_seed(seed), stats=stats, **kwargs)
    except _OverTime:
        _sync(device)
        elapsed = time.perf_counter() - start
        return dict(row, network_calls=metered.calls, seconds=elapsed, ms_per_call=1000 * elapsed / max(metered.calls, 1),
                    error=f"stopped by the {limit_s:g} s row limit after {metered.calls} network calls")
    _sync(device)
    elapsed = time.perf_counter() - start
    calls = stats["network_calls"]
    return dict(row, network_calls=calls, steps_taken=stats["steps"], seconds=elapsed,
                tokens_per_s=batch_size * length / elapsed, ms_per_call=1000 * elapsed / max(calls, 1),
                peak_gib=_peak_gib(device))


def _guarded(run, error_row, device):
    """run() -> row; an exception (OOM, compile error, ...) becomes `error_row` with the message, and the run goes on."""
    try:
        return run()
    except Exception as error:  # noqa: BLE001 - any failure of one variant is recorded, not raised
        lines = str(error).strip().splitlines()
        message = f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]
    _reset_memory(device, collect=True)  # outside the except block, so the traceback's tensors are freed
    return dict(error_row, error=message)


def training_specs(o: BenchOptions, dtype: str) -> list[TrainSpec]:
    """The base row of each objective, then one row per lever (cheapest first, compile last), then the memory check."""
    base = dict(n_layer=o.n_layer, n_head=o.n_head, n_embd=o.n_embd, seq_len=o.seq_len, batch_size=o.batch_size,
                vocab_size=o.vocab_size, dtype=dtype, compile=o.compile, activation_checkpointing=o.activation_checkpointing,
                steps=o.steps, warmup=max(o.warmup, 3) if o.compile else o.warmup)
    specs = []

    def add(objectives, suffix="", lever=None, **change):
        for objective in objectives:
            specs.append(TrainSpec(name=objective + suffix, objective=objective, lever=lever, **{**base, **change}))

    both = ("diffusion", "autoregressive")
    add(both)
    if o.block_size:
        add(("block_diffusion",), f" K={o.block_size}", "block", block_size=o.block_size)
    if "dtype" in o.compare:
        other = "float32" if dtype == "bfloat16" else "bfloat16"
        add(both, f" {other}", "dtype", dtype=other)
    if "full-head" in o.compare:
        add(("diffusion",), " full-head", "full-head", full_head=True)
    if "checkpointing" in o.compare:
        flip = not o.activation_checkpointing
        add(both, " +ckpt" if flip else " no-ckpt", "checkpointing", activation_checkpointing=flip)
    for b in o.batch_sizes:
        if b != o.batch_size:
            add(both, f" B={b}", "batch", batch_size=b)
    if "compile" in o.compare:
        add(both, " eager" if o.compile else " +compile", "compile", compile=not o.compile, warmup=max(o.warmup, 3))
    if o.medium_memory:
        m = {"seq_len": o.seq_len, "batch_size": o.batch_size, **o.medium}
        shape = f"{m['n_layer']}L/{m['n_head']}H/{m['n_embd']} T={m['seq_len']}{' ckpt' if m['activation_checkpointing'] else ''}"
        specs.append(TrainSpec(**{**base, **m, "name": f"medium {shape}", "objective": "diffusion",
                                  "lever": "medium", "compile": False, "steps": 2, "warmup": 1}))
    return specs


def _sampling_plan(o: BenchOptions):
    """[(name, net kind, kwargs)] in the order they run: batch by batch, each with its AR reference first."""
    variants = [(s, s, None, "diffusion") for s in o.strategies]
    if o.sample_block_size:
        variants.append((f"confidence block={o.sample_block_size}", "confidence", o.sample_block_size, "diffusion"))
    if o.block_size:  # the block diffusion model, with its key/value cache; at least one step per block
        variants.append((f"block K={o.block_size} confidence", "confidence", None, "block"))
    plan = []
    for i, b in enumerate(o.sample_batch_sizes):
        plan.append(("warm-up", "both", dict(batch_size=b)))
        plan.append(("AR kv-cache", "ar", dict(length=o.sample_length, batch_size=b)))
        for label, strategy, block, kind in variants:
            for steps in o.sample_steps:
                if kind == "block" and steps < -(-o.sample_length // o.block_size):
                    continue
                plan.append((f"{label} s={steps}", kind, dict(length=o.sample_length, steps=steps, batch_size=b,
                             strategy=strategy, block_size=block, threshold=o.threshold if strategy == "threshold" else None)))
        if i == 0 and o.ar_nocache_length:  # cheap, so before the larger batches that a time limit may cut
            n = min(o.ar_nocache_length, o.sample_length)
            plan.append((f"AR kv-cache L={n}", "ar", dict(length=n, batch_size=b)))
            plan.append((f"AR no-cache L={n}", "ar", dict(length=n, batch_size=b, use_cache=False)))
    return plan


def _sampling_nets(o: BenchOptions, device):
    """A diffusion net, its causal twin of the same shape and, with block_size, a block diffusion twin; random weights."""
    nets = {}
    kinds = [("diffusion", False, None), ("ar", True, None)] + ([("block", False, o.block_size)] if o.block_size else [])
    for kind, causal, block_size in kinds:
        torch.manual_seed(o.seed)
        cfg = ModelConfig(vocab_size=o.vocab_size, n_layer=o.n_layer, n_head=o.n_head, n_embd=o.n_embd,
                          seq_len=max(o.seq_len, o.sample_length), causal=causal, block_size=block_size)
        net = Transformer(cfg).to(device).eval()
        nets[kind] = torch.compile(net) if o.compile_sampling else net
    return nets


def _add_ratios(results):
    """vs_base: a lever row's tokens/s over its base; vs_ar: diffusion over the matching AR row (same batch, length)."""
    train = {r["name"]: r for r in results["training"] if r["error"] is None}
    for r in results["training"]:
        if r["error"] is not None:
            continue
        base = train.get(r["objective"]) if r["lever"] not in (None, "medium") else None
        r["vs_base"] = r["tokens_per_s"] / base["tokens_per_s"] if base else None
        twin = train.get(r["name"].replace("diffusion", "autoregressive", 1))
        usable = r["objective"] == "diffusion" and twin is not None and twin["objective"] == "autoregressive"
        r["vs_ar"] = r["tokens_per_s"] / twin["tokens_per_s"] if usable else None
    cached = {(r["batch_size"], r["length"]): r for r in results["sampling"]
              if r["objective"] == "autoregressive" and r["use_cache"] and r["error"] is None}
    for r in results["sampling"]:
        ref = cached.get((r["batch_size"], r["length"]))
        usable = ref is not None and r is not ref and r["error"] is None
        r["vs_ar"] = r["tokens_per_s"] / ref["tokens_per_s"] if usable else None


def _git_commit():
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, timeout=10)
        return done.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _write_json(results, path):
    """Write atomically (temporary file, then rename), so a run stopped mid-way leaves the rows it finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def run_bench(**options) -> dict:
    """Run the benchmark described by `BenchOptions(**options)`; return {meta, training, sampling, targets, notes}.

    Each row is a dict; a variant that fails has `error` set and no numbers. With
    json_path set, the results are rewritten after every row.
    """
    o = BenchOptions(**options)
    device = torch.device("cuda" if o.device == "auto" and torch.cuda.is_available() else
                          "cpu" if o.device == "auto" else o.device)
    dtype = o.dtype if o.dtype != "auto" else "bfloat16" if device.type == "cuda" else "float32"
    peak = peak_tflops_of(device, o.peak_tflops)
    results = {"meta": dict(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), commit=_git_commit(),
                            device=str(device), device_type=device.type,
                            device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                            torch=torch.__version__, dtype=dtype, peak_tflops=peak, options=asdict(o)),
               "training": [], "sampling": [], "targets": [], "notes": []}

    def record(section, row):
        results[section].append(row)
        if o.verbose:
            print(_row_line(row), flush=True)
        if o.json_path:
            _add_ratios(results)
            _write_json(results, o.json_path)

    if o.training:
        for spec in tqdm(training_specs(o, dtype), desc="training", file=sys.stderr, disable=not o.progress):
            _reset_memory(device, collect=device.type == "cuda")
            row = dict(kind="train", **asdict(spec), error=None)
            record("training", _guarded(lambda: time_training(spec, device, peak), row, device))
    if o.sampling:
        if "threshold" in o.strategies:
            results["notes"].append(THRESHOLD_NOTE)
        nets = _sampling_nets(o, device)
        for name, kind, kw in tqdm(_sampling_plan(o), desc="sampling", file=sys.stderr, disable=not o.progress):
            if kind == "both":  # untimed: the first calls of each net at this batch size (allocator, kernels, compile)
                b = kw["batch_size"]
                warm = dict(diffusion=dict(length=o.sample_length, steps=2), ar=dict(length=min(8, o.sample_length)),
                            block=dict(length=min(2 * (o.block_size or 1), o.sample_length), steps=2))
                for net_kind, net in nets.items():
                    done = _guarded(lambda: time_sampling(net, device, dtype, name=name, batch_size=b, **warm[net_kind]),
                                    {"name": f"{name} {net_kind}"}, device)
                    if done["error"] and o.verbose:
                        print(f"sample {done['name']} B={b}: error: {done['error']}", flush=True)
                continue
            net = nets[kind]
            row = _sampling_row(net, name, **kw)
            # the AR references and the batch-1 rows (which the targets read) always run to the end
            limit = o.sample_limit_s if kind != "ar" and kw["batch_size"] > 1 else None
            record("sampling", _guarded(lambda: time_sampling(net, device, dtype, name=name, limit_s=limit, seed=o.seed,
                                                              **kw), row, device))
    _add_ratios(results)
    results["targets"] = check_targets(results)
    if o.json_path:
        _write_json(results, o.json_path)
    return results


def check_targets(results) -> list[dict]:
    """The issue's targets as [{name, value, shown, goal, passed, row}]; checked on CUDA only (else [])."""
    if results["meta"]["device_type"] != "cuda":
        return []
    targets = []

    def add(name, value, shown, goal, passed, row):
        targets.append(dict(name=name, value=value, shown=shown if value is not None else "no result",
                            goal=goal, passed=bool(value is not None and passed), row=row))

    eligible = [r for r in results["training"] if r["objective"] == "diffusion" and r["lever"] in (None, "compile")]
    if eligible:  # the fastest of the config's default settings, eager or compiled
        best = max((r for r in eligible if r["error"] is None), key=lambda r: r["tokens_per_s"], default={})
        mfu, tps, gib, ratio = (best.get(k) for k in ("mfu", "tokens_per_s", "peak_gib", "vs_ar"))
        row = best.get("name")
        add("diffusion training MFU", mfu, f"{100 * (mfu or 0):.1f}%", ">= 45%", (mfu or 0) >= 0.45, row)
        goal = 0.45 * (results["meta"]["peak_tflops"] or 0) * 1e12 / best["flops_per_token"] if best else 0.0
        add("diffusion training tokens/s", tps, f"{tps or 0:,.0f}", f">= {goal:,.0f} (45% MFU)", (tps or 0) >= goal > 0,
            row)
        add("diffusion / AR training tokens/s", ratio, f"{ratio or 0:.2f}x", ">= 1.05x", (ratio or 0) >= 1.05, row)
        add("small config training peak memory", gib, f"{gib or 0:.2f} GiB", "<= 22 GiB", (gib or 99) <= 22, row)
    for r in results["training"]:
        if r["lever"] == "medium":
            gib = r.get("peak_gib")
            add("medium config training peak memory", gib, f"{gib or 0:.2f} GiB", "<= 22 GiB", (gib or 99) <= 22, r["name"])
    for r in results["sampling"]:
        if r["objective"] == "diffusion" and r["steps"] == 256 and r["batch_size"] == 1:
            ratio = r.get("vs_ar")
            add(f"{r['name']} sampling vs AR kv-cache, batch 1, L={r['length']}", ratio, f"{ratio or 0:.2f}x", "> 1x",
                (ratio or 0) > 1, r["name"])
        if r["strategy"] == "ancestral" and r["steps"] == 1024 and r["batch_size"] == 1 and r["block_size"] is None:
            fewer = r["steps"] / r["network_calls"] if r["error"] is None and r["network_calls"] else None
            add(f"cached ancestral: steps / network calls at 1024 steps, L={r['length']}", fewer, f"{fewer or 0:.2f}x",
                ">= 2.5x", (fewer or 0) >= 2.5, r["name"])
    return targets


def _cell(value, spec):
    return "-" if value is None else format(value, spec)


COLUMNS = (("kind", "<6"), ("variant", "<32"), ("B", ">3"), ("tokens/s", ">11"), ("ms", ">8"), ("calls", ">6"),
           ("GiB", ">6"), ("MFU", ">6"), ("vs base", ">8"), ("vs AR", ">7"))


def format_table(results) -> str:
    """One compact table: training rows, then sampling rows (ms: per optimiser step / per network call)."""
    lines = [" ".join(format(title, spec) for title, spec in COLUMNS)]
    lines.append("-" * len(lines[0]))
    for r in results["training"] + results["sampling"]:
        head = [format(r["kind"], "<6"), format(r["name"][:32], "<32"), format(r["batch_size"], ">3")]
        if r["error"] is not None:
            lines.append(" ".join(head + [f"error: {r['error']}"[:60]]))
            continue
        train = r["kind"] == "train"
        mfu = None if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"
        ratios = [None if r.get(k) is None else f"{r[k]:.2f}x" for k in ("vs_base", "vs_ar")]
        cells = [_cell(r["tokens_per_s"], ",.0f"), _cell(r["step_ms"] if train else r["ms_per_call"], ".1f"),
                 _cell(None if train else r["network_calls"], "d"), _cell(r["peak_gib"], ".2f"), _cell(mfu, "s"),
                 _cell(ratios[0], "s"), _cell(ratios[1], "s")]
        lines.append(" ".join(head + [format(c, spec) for c, (_, spec) in zip(cells, COLUMNS[3:])]))
    return "\n".join(lines)


def _row_line(row) -> str:
    """A one-line progress report of a finished row."""
    where = f"{row['kind']} {row['name']}" + ("" if "B=" in row["name"] else f" B={row['batch_size']}")
    if row["error"] is not None:
        return f"{where}: error: {row['error']}"
    if row["kind"] == "train":
        mfu = "" if row["mfu"] is None else f", MFU {100 * row['mfu']:.1f}%"
        gib = "" if row["peak_gib"] is None else f", {row['peak_gib']:.2f} GiB"
        return f"{where}: {row['tokens_per_s']:,.0f} tokens/s, {row['step_ms']:.1f} ms/step{gib}{mfu}"
    return (f"{where}: {row['tokens_per_s']:,.0f} tokens/s, {row['network_calls']} network calls, "
            f"{row['ms_per_call']:.2f} ms/call, {row['seconds']:.2f} s")


def merge_results(parts: list[dict]) -> dict:
    """One result from several runs (the sections of benchmarks/gpu_bench.sh): rows joined, targets checked again."""
    if not parts:
        raise ValueError("nothing to merge: pass one or more JSON files written by `python -m dllm_lite.bench --json`")
    merged = {"meta": dict(parts[0]["meta"], merged_from=[p["meta"] for p in parts]), "training": [], "sampling": [],
              "notes": []}
    for part in parts:
        _add_ratios(part)  # again: a run stopped by a time limit wrote its rows before the ratios
        merged["training"] += part["training"]
        merged["sampling"] += part["sampling"]
        merged["notes"] += [n for n in part["notes"] if n not in merged["notes"]]
    merged["targets"] = check_targets(merged)
    return merged


def _int_list(text):
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 16,32, got {text!r}") from None


def _name_list(text):
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dllm_lite.bench", description=__doc__.split("\n\n")[0],
                                epilog="Defaults: the small config's shape (12 layers, 12 heads, 768 wide, seq 1024, "
                                       "batch 16), 10 timed steps after 3, sampling length 1024 at 64/256/1024 steps, "
                                       "batch 1 and 16. See benchmarks/README.md.")
    p.add_argument("--tiny", action="store_true", help="a CPU-sized preset that runs in seconds")
    p.add_argument("--config", help="read the model shape, train.batch_size and train.compile from this YAML config")
    for flag in ("n-layer", "n-head", "n-embd", "seq-len", "batch-size", "vocab-size", "steps", "warmup"):
        p.add_argument(f"--{flag}", type=int, help="overrides --tiny and --config")
    p.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the base rows")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), help="auto: bf16 autocast on CUDA, else float32")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--compare", type=_name_list, help=f"levers timed next to the base: {','.join(LEVERS)}")
    p.add_argument("--batch-sizes", type=_int_list, help="extra training batch sizes, e.g. 16,32")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-sampling", action="store_true")
    p.add_argument("--sample-length", type=int)
    p.add_argument("--sample-steps", type=_int_list, help="e.g. 64,256,1024")
    p.add_argument("--sample-batch-sizes", type=_int_list, help="e.g. 1,16")
    p.add_argument("--strategies", type=_name_list, help=f"from {','.join(STRATEGIES)}")
    p.add_argument("--threshold", type=float, help="confidence threshold of the threshold strategy (0.9)")
    p.add_argument("--sample-block-size", type=int, help="adds a semi-autoregressive confidence variant")
    p.add_argument("--block-size", type=int, help="adds block diffusion rows with this K (training and cached sampling)")
    p.add_argument("--ar-nocache-length", type=int, help="length of the AR-without-cache comparison (0: skip)")
    p.add_argument("--compile-sampling", action="store_true", default=None)
    p.add_argument("--sample-limit-s", type=float, help="stop a diffusion sampling row at batch > 1 after this long")
    p.add_argument("--medium-memory", action="store_true", default=None, help="peak memory of a few medium steps")
    p.add_argument("--medium-config", help="the medium shape, batch size and checkpointing from this config")
    p.add_argument("--peak-tflops", type=float, help="peak TFLOP/s for MFU (default: 989 on H100/H200, else none)")
    p.add_argument("--json", help="where to write the results (default: bench.json in --out or the current folder)")
    p.add_argument("--out", help="folder for bench.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="print one table from earlier runs' JSON files")
    return p


def _options(args) -> dict:
    """Preset, then config file, then explicit flags, each overriding the one before."""
    options = {k: v for k, v in TINY.items()} if args.tiny else {}
    if args.config:
        cfg = load_config(args.config)
        options.update({k: getattr(cfg.model, k) for k in ("n_layer", "n_head", "n_embd", "seq_len",
                                                         "activation_checkpointing")},
                       batch_size=cfg.train.batch_size, compile=cfg.train.compile)
    if args.medium_config:
        m = load_config(args.medium_config)
        options["medium"] = dict({k: getattr(m.model, k) for k in ("n_layer", "n_head", "n_embd", "seq_len",
                                                                   "activation_checkpointing")},
                                 batch_size=m.train.batch_size)
    for key in ("n_layer", "n_head", "n_embd", "seq_len", "batch_size", "vocab_size", "steps", "warmup",
                "activation_checkpointing", "compile", "dtype", "device", "compare", "batch_sizes", "sample_length",
                "sample_steps", "sample_batch_sizes", "strategies", "threshold", "sample_block_size", "block_size",
                "ar_nocache_length", "compile_sampling", "sample_limit_s", "medium_memory", "peak_tflops"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    options.update(training=not args.skip_training, sampling=not args.skip_sampling, progress=not args.no_progress)
    return options


def _json_path(args) -> str:
    return args.json or str(Path(args.out or ".") / "bench.json")


def main(argv=None) -> int:
    """The command line: run (or --merge) the benchmark, print notes, targets and, last, the table."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.merge:
        missing = [path for path in args.merge if not Path(path).is_file()]
        for path in missing:
            print(f"skipping {path}: no such file (did that section fail or time out?)")
        try:
            results = merge_results([json.loads(Path(path).read_text(encoding="utf-8"))
                                     for path in args.merge if path not in missing])
        except ValueError as error:
            parser.error(str(error))
        _write_json(results, _json_path(args))
    else:
        try:
            results = run_bench(**_options(args), json_path=_json_path(args))
        except ValueError as error:
            parser.error(str(error))
    meta = results["meta"]
    for note in results["notes"]:
        print(f"note: {note}")
    if meta["device_type"] != "cuda":
        print("targets: checked on CUDA only")
    for t in results["targets"]:
        print(f"{'PASS' if t['passed'] else 'MISS'}  {t['name']}: {t['shown']} (goal {t['goal']}; row: {t['row']})")
    print(f"\n{meta['device_name']}, {meta['dtype']}, torch {meta['torch']}, commit {(meta['commit'] or '?')[:10]}, "
          f"written to {_json_path(args)}")
    print(format_table(results), flush=True)
    rows = results["training"] + results["sampling"]
    return 1 if rows and all(r["error"] is not None for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

r"""The benchmark's plan: which rows one run times, in what order, and the loop that times them.

`BenchOptions` holds everything a run measures (the small config's shape by default);
`training_specs` turns it into training rows (the base of each objective, the plain GPT-2
reference, one row per lever, the medium memory check) and `sampling_plan` into sampling
rows (batch by batch: a warm-up, AR with its cache, every strategy at every step count, block
diffusion with its cache, AR without its cache at a short length). `run_bench` times them
with `bench_timing`, one row at a time, writing the JSON after each, and leaves the ratios
and the targets to `bench_report`.
"""

import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import torch
from tqdm import tqdm

from .bench_report import add_ratios, check_targets, package_commit, row_line, write_json
from .bench_timing import (TrainSpec, forward_activation_gib, guarded, peak_tflops_of, sampling_row, time_sampling,
                           time_training, _reset_memory)
from .model import ModelConfig, Transformer
from .sample import STRATEGIES

__all__ = ["BenchOptions", "training_specs", "sampling_plan", "run_bench", "TINY", "LEVERS"]

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
    objectives: tuple = ("diffusion", "autoregressive")  # the training rows' objectives (levers included)
    reference: bool = True  # time the plain GPT-2 of the same shape (bench_reference) next to the base rows
    training: bool = True
    sampling: bool = True
    sample_length: int = 1024
    sample_steps: tuple = (64, 256, 1024)
    sample_batch_sizes: tuple = (1, 16)
    strategies: tuple = ("ancestral", "confidence", "threshold")  # left_to_right and random cost what confidence does
    threshold: float = 0.9
    sample_block_size: int | None = None  # adds a semi-autoregressive "confidence" variant
    block_caches: tuple = ()  # with sample_block_size: that variant with Fast-dLLM's "prefix" / "dual" cache
    block_size: int | None = None  # adds block diffusion rows: a training step, and sampling with its cache
    ar_nocache_length: int = 128  # the AR model without its cache, at this (short) length
    compile_sampling: bool = False
    compile_decode: tuple = ()  # batch sizes at which AR and block diffusion also decode compiled (decode.py)
    sample_limit_s: float = 30.0  # every sampling row (AR, warm-ups included) stops after this many seconds
    medium_memory: bool = False
    medium: dict = field(default_factory=lambda: dict(MEDIUM))  # shape of the memory check
    config_name: str | None = None  # the --config's name (tiny.yaml adds its 3,000-step target)
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
        for objective in self.objectives:
            if objective not in ("diffusion", "autoregressive"):
                raise ValueError(f"unknown objective {objective!r}: choose diffusion, autoregressive or both")
        if self.steps < 1 or self.warmup < 0:
            raise ValueError(f"need steps >= 1 and warmup >= 0, got steps={self.steps}, warmup={self.warmup}")
        if self.block_caches and not self.sample_block_size:
            raise ValueError("block_caches time the semi-autoregressive variant with a cache: give sample_block_size")
        for mode in self.block_caches:
            if mode not in ("prefix", "dual"):
                raise ValueError(f"unknown block cache {mode!r}: choose prefix or dual")
        if not self.sample_limit_s or self.sample_limit_s <= 0:
            raise ValueError(f"sample_limit_s must be a positive number of seconds, got {self.sample_limit_s!r}")


def training_specs(o: BenchOptions, dtype: str) -> list[TrainSpec]:
    """The base row of each objective and the reference, then one row per lever (cheapest first, compile last),
    then the memory check."""
    base = dict(n_layer=o.n_layer, n_head=o.n_head, n_embd=o.n_embd, seq_len=o.seq_len, batch_size=o.batch_size,
                vocab_size=o.vocab_size, dtype=dtype, compile=o.compile, activation_checkpointing=o.activation_checkpointing,
                steps=o.steps, warmup=max(o.warmup, 3) if o.compile else o.warmup)
    specs = []

    def add(kinds, suffix="", lever=None, **change):
        for objective in kinds:
            specs.append(TrainSpec(name=objective + suffix, objective=objective, lever=lever, **{**base, **change}))

    objectives = tuple(o.objectives)
    add(objectives)
    if o.reference:  # eager, whatever the base does: the target compares the eager diffusion step with it
        add(("reference",), compile=False, activation_checkpointing=False, warmup=o.warmup)
    if o.block_size:
        add(("block_diffusion",), f" K={o.block_size}", "block", block_size=o.block_size)
    if "dtype" in o.compare:
        other = "float32" if dtype == "bfloat16" else "bfloat16"
        add(objectives, f" {other}", "dtype", dtype=other)
    if "full-head" in o.compare and "diffusion" in objectives:
        add(("diffusion",), " full-head", "full-head", full_head=True)
    if "checkpointing" in o.compare:
        flip = not o.activation_checkpointing
        add(objectives, " +ckpt" if flip else " no-ckpt", "checkpointing", activation_checkpointing=flip)
    for b in o.batch_sizes:
        if b != o.batch_size:
            add(objectives, f" B={b}", "batch", batch_size=b)
    if "compile" in o.compare:
        add(objectives, " eager" if o.compile else " +compile", "compile", compile=not o.compile, warmup=max(o.warmup, 3))
    if o.medium_memory:
        m = {"seq_len": o.seq_len, "batch_size": o.batch_size, **o.medium}
        shape = f"{m['n_layer']}L/{m['n_head']}H/{m['n_embd']} T={m['seq_len']}{' ckpt' if m['activation_checkpointing'] else ''}"
        specs.append(TrainSpec(**{**base, **m, "name": f"medium {shape}", "objective": "diffusion",
                                  "lever": "medium", "compile": False, "steps": 2, "warmup": 1}))
    return specs


def sampling_plan(o: BenchOptions) -> list[tuple]:
    """[(name, net kind, kwargs)] in the order they run: the compiled decode rows, then batch by batch, each
    with a warm-up and its AR reference first (net kind "both": the untimed warm-up of every net at that batch
    size; a compiled row is warmed up by an untimed run of itself, see run_bench)."""
    variants = [(s, s, None, "diffusion", None) for s in o.strategies]
    if o.sample_block_size:
        variants.append((f"confidence block={o.sample_block_size}", "confidence", o.sample_block_size, "diffusion", None))
        for mode in o.block_caches:  # Fast-dLLM: the same blocks, the keys and values outside the block reused
            variants.append((f"confidence block={o.sample_block_size} {mode}", "confidence", o.sample_block_size,
                             "diffusion", mode))
    if o.block_size:  # the block diffusion model, with its key/value cache; at least one step per block
        variants.append((f"block K={o.block_size} confidence", "confidence", None, "block", None))
    plan = []
    for b in o.compile_decode:  # first, so that a slow compile cannot crowd out the eager rows' time
        length = dict(length=o.sample_length, batch_size=b, compile=True)
        plan.append(("AR kv-cache compiled", "ar", length))
        if o.block_size:
            steps = max((s for s in o.sample_steps if s >= -(-o.sample_length // o.block_size)), default=None)
            if steps:
                plan.append((f"block K={o.block_size} s={steps} compiled", "block",
                             dict(length, steps=steps, strategy="confidence")))
    for i, b in enumerate(o.sample_batch_sizes):
        plan.append(("warm-up", "both", dict(batch_size=b)))
        plan.append(("AR kv-cache", "ar", dict(length=o.sample_length, batch_size=b)))
        for label, strategy, block, kind, cache in variants:
            for steps in o.sample_steps:
                if kind == "block" and steps < -(-o.sample_length // o.block_size):
                    continue
                kw = dict(length=o.sample_length, steps=steps, batch_size=b, strategy=strategy, block_size=block,
                          threshold=o.threshold if strategy == "threshold" else None)
                plan.append((f"{label} s={steps}", kind, dict(kw, block_cache=cache) if cache else kw))
        if i == 0 and o.ar_nocache_length:  # cheap, so before the larger batches
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


def _warm_up(o, nets, device, dtype, batch_size, forward):
    """Untimed first calls of every net at this batch size (allocator, kernels), and the memory one forward of
    each takes, into forward[(net kind, batch_size)]."""
    warm = dict(diffusion=dict(length=o.sample_length, steps=2), ar=dict(length=min(8, o.sample_length)),
                block=dict(length=min(2 * (o.block_size or 1), o.sample_length), steps=2))
    for kind, net in nets.items():
        done = guarded(lambda: time_sampling(net, device, dtype, name="warm-up", batch_size=batch_size,
                                             limit_s=o.sample_limit_s, **warm[kind]), {"name": f"warm-up {kind}"}, device)
        if done["error"] and o.verbose:
            print(f"sample warm-up {kind} B={batch_size}: {done['error']}", flush=True)
        gib = guarded(lambda: dict(value=forward_activation_gib(net, device, dtype, batch_size, o.sample_length),
                                   error=None), {}, device)
        forward[(kind, batch_size)] = gib.get("value")


def compile_counts() -> dict:
    """torch.compile's running counts in this process: graphs compiled, and compiled graphs that were meant to run
    as CUDA graphs but could not (the reason goes to the log under TORCH_LOGS=cudagraphs)."""
    from torch._dynamo.utils import counters

    return {"graphs_compiled": counters["stats"]["unique_graphs"],
            "cudagraph_skips": counters["inductor"]["cudagraph_skips"]}


def run_bench(**options) -> dict:
    """Run the benchmark described by `BenchOptions(**options)`; return {meta, training, sampling, targets, notes}.

    Each row is a dict; a variant that fails has `error` set and no numbers, and a sampling row
    stopped by its time limit has stopped_at_limit set. With json_path set, the results are
    rewritten after every row.
    """
    o = BenchOptions(**options)
    device = torch.device("cuda" if o.device == "auto" and torch.cuda.is_available() else
                          "cpu" if o.device == "auto" else o.device)
    dtype = o.dtype if o.dtype != "auto" else "bfloat16" if device.type == "cuda" else "float32"
    peak = peak_tflops_of(device, o.peak_tflops)
    commit, commit_note = package_commit()
    results = {"meta": dict(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), commit=commit,
                            commit_note=commit_note, device=str(device), device_type=device.type,
                            device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                            torch=torch.__version__, dtype=dtype, peak_tflops=peak, options=asdict(o)),
               "training": [], "sampling": [], "targets": [], "notes": []}

    def record(section, row):
        results[section].append(row)
        if o.verbose:
            print(row_line(row), flush=True)
        if o.json_path:
            add_ratios(results)
            write_json(results, o.json_path)

    if o.training:
        for spec in tqdm(training_specs(o, dtype), desc="training", file=sys.stderr, disable=not o.progress):
            _reset_memory(device, collect=device.type == "cuda")
            row = dict(kind="train", **asdict(spec), error=None)
            record("training", guarded(lambda: time_training(spec, device, peak), row, device))
    if o.sampling:
        if "threshold" in o.strategies:
            results["notes"].append(THRESHOLD_NOTE)
        nets, forward = _sampling_nets(o, device), {}
        for name, kind, kw in tqdm(sampling_plan(o), desc="sampling", file=sys.stderr, disable=not o.progress):
            if kind == "both":
                _warm_up(o, nets, device, dtype, kw["batch_size"], forward)
                continue
            net, gib = nets[kind], forward.get((kind, kw["batch_size"])) if kw["length"] == o.sample_length else None
            if kw.get("compile"):  # the same call untimed first: it compiles (a new batch size or width recompiles)
                warm = guarded(lambda: time_sampling(net, device, dtype, name=name, limit_s=o.sample_limit_s, **kw),
                               {"name": name}, device)
                if o.verbose:
                    print(f"sample warm-up (compiles) {name} B={kw['batch_size']}: {warm.get('seconds') or 0:.1f} s"
                          + (f", {warm['error']}" if warm["error"] else ""), flush=True)
            row = dict(sampling_row(net, name, **kw), limit_s=o.sample_limit_s, forward_gib=gib)
            before = compile_counts()
            row = guarded(lambda: time_sampling(net, device, dtype, name=name, limit_s=o.sample_limit_s,
                                                forward_gib=gib, seed=o.seed, **kw), row, device)
            if kw.get("compile"):  # what the timed run compiled again or ran without CUDA graphs: should be 0, 0
                row.update({k: v - before[k] for k, v in compile_counts().items()})
            record("sampling", row)
    add_ratios(results)
    results["targets"] = check_targets(results)
    if o.json_path:
        write_json(results, o.json_path)
    return results

r"""Benchmark measuring: one training configuration's steps, one sampling call, and their memory.

**Training.** `time_training` times full optimiser steps of one configuration (forward,
backward, gradient clipping, AdamW, zero_grad) on random token ids that already live on the
device; the only host synchronisation it adds is one after the warm-up and one after the
timed steps. (The diffusion loss itself reads the number of masked positions to run the
output head only there, a data-dependent shape, so each of its steps syncs once.) The
objectives: the diffusion loss (`loss.diffusion_loss`), the autoregressive loss
(`loss.ar_loss` on a `causal=True` twin of the same shape), block diffusion, and the plain
GPT-2 reference (`bench_reference.PlainGPT`).

MFU, model FLOPs utilisation (PaLM, Chowdhery et al. 2022, appendix B), is the model FLOP/s
achieved over the hardware peak:

$$ \mathrm{MFU} = \frac{\text{tokens/s} \cdot F}{\text{peak FLOP/s}}, \qquad
   F = 6N + 12 \cdot L \cdot H \cdot Q \cdot T $$

with F from `Transformer.flops_per_token`: $6N$ for the N weights (a multiply-add per token
forward, two backward; Kaplan et al. 2020) and $12 L H Q T$ for the attention scores and
their weighted sum (L layers, H heads of size Q, T positions). The output head (the tied
embedding) is counted where the objective needs it: at every position for the
autoregressive loss, at the masked half for the diffusion loss (linear schedule,
$E[1 - \alpha(t)] = 1/2$). The peak is the dense bf16 tensor-core peak (989 TFLOP/s for an
H100 or H200 SXM) for every row.

**Sampling.** `time_sampling` times one `sample.generate` call and counts the network calls.
Every call has a time limit: a row still running after `limit_s` seconds is stopped between
two network calls and reported as stopped, with the calls, seconds, ms per call and memory it
measured so far. On CUDA a row records its peak memory (`torch.cuda.max_memory_allocated`)
and its working set (that peak over what was allocated before it: the sampler's own
tensors), to hold against `forward_activation_gib`, the memory one forward pass of the same
net at the same batch and length takes beyond its weights.

References: karpathy/nanoGPT (`estimate_mfu`); Chowdhery et al. 2022 (PaLM, MFU);
Kaplan et al. 2020 (6N); Sahoo et al. 2024 (MDLM, the cached ancestral sampler).
"""

import gc
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .bench_reference import PlainGPT, reference_loss
from .corrupt import get_schedule
from .loss import ar_loss, diffusion_loss
from .model import ModelConfig, Transformer
from .muon import build_optimizer
from .sample import generate

__all__ = ["PEAK_TFLOPS", "peak_tflops_of", "TrainSpec", "FullHead", "time_training", "time_sampling",
           "sampling_row", "training_net", "forward_activation_gib", "guarded"]

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bf16 tensor-core peak of the SXM cards
OBJECTIVES = ("diffusion", "autoregressive", "block_diffusion", "reference")


@dataclass
class TrainSpec:
    """One training configuration to time; `lever` names the one setting that differs from the base."""

    name: str
    objective: str  # one of OBJECTIVES; "reference" is the plain GPT-2 of bench_reference
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

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}: choose from {', '.join(OBJECTIVES)}")


class FullHead(nn.Module):
    """A net whose output head runs at all T positions before `only_at` picks rows: the cost the masked head saves."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, idx, only_at=None):
        """Logits at every position (B, T, V), or the rows where only_at (B, T) is True (N, V)."""
        logits = self.net(idx)  # (B, T, V)
        return logits if only_at is None else logits[only_at]  # (N, V)


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


def _gib(n_bytes):
    return n_bytes / 2**30


def _peak_gib(device):
    return _gib(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def peak_tflops_of(device, override=None):
    """The peak dense bf16 TFLOP/s: `override` if given, else looked up from the CUDA device name (None if unknown)."""
    if override is not None:
        return float(override)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)
    return None


def training_net(spec: TrainSpec, device):
    """(net, its FLOPs per token) for the spec's objective and shape, on the device, random weights."""
    if spec.objective == "reference":
        net = PlainGPT(spec.vocab_size, spec.n_layer, spec.n_head, spec.n_embd, spec.seq_len).to(device)
        return net, net.flops_per_token()
    causal = spec.objective == "autoregressive"
    cfg = ModelConfig(vocab_size=spec.vocab_size, n_layer=spec.n_layer, n_head=spec.n_head, n_embd=spec.n_embd,
                      seq_len=spec.seq_len, causal=causal, activation_checkpointing=spec.activation_checkpointing,
                      block_size=spec.block_size)
    net = Transformer(cfg).to(device)
    # the diffusion loss needs the head only at masked positions (half of them, linear schedule), also
    # in the full-head variant, whose extra head work is waste: it shows as a lower MFU
    flops = net.flops_per_token(head_share=1.0 if causal else get_schedule("linear").mean_mask_prob(),
                                streams=2 if spec.block_size else 1)  # block diffusion: one pass over [x_t, x_0]
    return net, flops


def time_training(spec: TrainSpec, device, peak_tflops=None) -> dict:
    """Time `spec.steps` optimiser steps after `spec.warmup`; return its row (tokens/s, ms/step, GiB, MFU)."""
    torch.manual_seed(0)
    net, flops = training_net(spec, device)
    optimizer = build_optimizer(net, "adamw", lr=3e-4, weight_decay=0.1, betas=(0.9, 0.999), fused=device.type == "cuda")
    if spec.compile:
        torch._dynamo.reset()
    model = torch.compile(net) if spec.compile else net
    if spec.full_head:
        model = FullHead(model)
    generator = torch.Generator(device=device).manual_seed(0)
    mask_id = spec.vocab_size - 1
    # real tokens only; every objective scores all T positions (the AR loss after its BOS)
    data = torch.randint(0, mask_id, (spec.batch_size, spec.seq_len), device=device, generator=generator)

    def loss_of_batch():
        if spec.objective == "reference":
            return reference_loss(model, data)
        if spec.objective == "autoregressive":
            return ar_loss(model, data, mask_id)
        return diffusion_loss(model, data, "linear", mask_id, generator, block_size=spec.block_size)

    def step():
        with _autocast(device, spec.dtype):
            loss = loss_of_batch()
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
    mfu = tokens_per_s * flops / (peak_tflops * 1e12) if peak_tflops else None
    return dict(kind="train", **asdict(spec), params=net.num_params(), flops_per_token=flops, warmup_s=warmup_s,
                step_ms=1000 * elapsed / spec.steps, tokens_per_s=tokens_per_s, peak_gib=_peak_gib(device),
                mfu=mfu, error=None)


def sampling_row(net, name, length, steps=1, batch_size=1, strategy="confidence", block_size=None, threshold=None,
                 use_cache=True, compile=False, block_cache=None) -> dict:
    """The settings part of a sampling row, its numbers still None (`time_sampling` fills them in)."""
    causal, model_blocks = net.cfg.causal, getattr(net.cfg, "block_size", None)
    objective = "autoregressive" if causal else "block_diffusion" if model_blocks else "diffusion"
    return dict(kind="sample", name=name, objective=objective,
                strategy="autoregressive" if causal else strategy, steps=length if causal else steps,
                batch_size=batch_size, length=length, block_size=model_blocks or block_size, threshold=threshold,
                use_cache=use_cache if causal or model_blocks else None, compiled=compile, block_cache=block_cache,
                network_calls=None,
                steps_taken=None, seconds=None, tokens_per_s=None, ms_per_call=None, peak_gib=None, extra_gib=None,
                forward_gib=None, limit_s=None, stopped_at_limit=False, error=None)


class _OverTime(BaseException):
    """A sampling row ran past its time limit (a BaseException, so that no `except Exception` on the way,
    such as the compiled decoder's fallback, mistakes it for a failure of its own)."""


class _Metered(nn.Module):
    """Counts network calls and stops a generation that runs past `deadline` (perf_counter seconds).

    One meter per net for the whole run (`_meter`), so that a compiled decoder, which keeps its
    cache and its compiled step per module, finds them ready from the warm-up."""

    def __init__(self, net):
        super().__init__()
        self.net, self.cfg, self.deadline, self.calls = net, net.cfg, None, 0

    @torch.compiler.disable
    def _tick(self):  # outside any compiled graph: the clock is read on the host at every call
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OverTime()
        self.calls += 1

    def forward(self, *args, **kwargs):
        self._tick()
        return self.net(*args, **kwargs)

    def features(self, *args, **kwargs):  # the sampler's own path: hidden states, then the head in chunks
        self._tick()
        return self.net.features(*args, **kwargs)

    def head(self, h):
        return self.net.head(h)

    @property
    def embed(self):  # the padded width of the head (draw.head_of)
        return self.net.embed

    def new_cache(self, batch_size, **kwargs):
        return self.net.new_cache(batch_size, **kwargs)


def _meter(net) -> _Metered:
    """The net's own meter, made on first use and kept on the net (outside its modules: not a child)."""
    if "_bench_meter" not in net.__dict__:
        object.__setattr__(net, "_bench_meter", _Metered(net))
    return net.__dict__["_bench_meter"]


def time_sampling(net, device, dtype, *, name, length, steps=1, batch_size=1, strategy="confidence", block_size=None,
                  threshold=None, use_cache=True, compile=False, block_cache=None, limit_s=None, forward_gib=None,
                  seed=0) -> dict:
    """Time one `generate` call of `net` (a causal net: KV-cached AR from its BOS, no prompt); return its row.

    tokens/s counts the generated tokens, batch_size * length. With `limit_s`, a call still
    running after that many seconds is stopped between two network calls: its row has
    stopped_at_limit=True, no tokens/s, and the network calls, seconds, ms per call and memory
    measured until then. compile=True (causal and block diffusion nets) decodes with
    `generate(compile=True)`, the static cache and compiled step of decode.py; the first such call
    for a net and batch size compiles, so warm it up first. block_cache ("prefix" or "dual", with
    block_size, a bidirectional net): Fast-dLLM's approximate cache (fastcache.py). forward_gib (from
    `forward_activation_gib`) is copied into the row.
    """
    row = dict(sampling_row(net, name, length, steps, batch_size, strategy, block_size, threshold, use_cache, compile,
                            block_cache),
               limit_s=limit_s, forward_gib=forward_gib)
    stats = {}
    kwargs = dict(use_cache=use_cache) if net.cfg.causal else dict(
        strategy=strategy, block_size=block_size, threshold=threshold, use_cache=use_cache)  # (the cache: block nets)
    if compile:
        kwargs["compile"] = True
    if block_cache is not None:
        kwargs["block_cache"] = block_cache
    _reset_memory(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    metered = _meter(net)
    start = time.perf_counter()
    metered.calls, metered.deadline = 0, None if limit_s is None else start + limit_s
    try:
        with _autocast(device, dtype):
            generate(metered, mask_id=net.cfg.mask_id, length=length, steps=row["steps"], batch_size=batch_size,
                     generator=torch.Generator(device=device).manual_seed(seed), stats=stats, **kwargs)
        calls = stats["network_calls"]
    except _OverTime:
        calls = metered.calls
        row.update(stopped_at_limit=True, error=f"stopped by its {limit_s:g} s limit after {calls} network calls")
    finally:
        metered.deadline = None
    _sync(device)
    elapsed = time.perf_counter() - start
    peak = _peak_gib(device)
    row.update(network_calls=calls, seconds=elapsed, ms_per_call=1000 * elapsed / calls if calls else None, peak_gib=peak,
               extra_gib=None if peak is None else peak - _gib(before))
    if not row["stopped_at_limit"]:
        row.update(steps_taken=stats["steps"], tokens_per_s=batch_size * length / elapsed)
    return row


def forward_activation_gib(net, device, dtype, batch_size, length):
    """GiB one no-grad forward of `net` on (batch_size, length) ids takes beyond what was allocated before it
    (the activations and the logits); None off CUDA, where the allocator keeps no statistics."""
    if device.type != "cuda":
        return None
    ids = torch.zeros(batch_size, length, dtype=torch.long, device=device)  # (B, L)
    _sync(device)
    _reset_memory(device)
    before = torch.cuda.memory_allocated(device)
    with torch.no_grad(), _autocast(device, dtype):
        logits = net(ids)  # (B, L, V)
    _sync(device)
    del logits
    return _gib(torch.cuda.max_memory_allocated(device) - before)


def guarded(run, error_row, device):
    """run() -> row; an exception (OOM, compile error, ...) becomes `error_row` with the message, and the run goes on."""
    try:
        return run()
    except Exception as error:  # noqa: BLE001 - any failure of one variant is recorded, not raised
        lines = str(error).strip().splitlines()
        message = f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]
    _reset_memory(device, collect=True)  # outside the except block, so the traceback's tensors are freed
    return dict(error_row, error=message)

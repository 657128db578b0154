r"""Where the time goes: `torch.profiler` tables of one diffusion training step and one AR decode step.

Before changing anything for speed, look at what the profiler says the step spends its time
on. `profile_tables` builds the benchmark's model at a given shape (random weights, random
token ids), runs each piece once untimed (the allocator, the kernels' first launches), then
once under `torch.profiler.profile` and returns the top rows of `key_averages().table`:
sorted by self device time on CUDA (the kernels the GPU ran) and by self CPU time on a CPU.

- **Training step**: `loss.diffusion_loss` forward, backward, AdamW step and zero_grad, the
  same step `bench_timing.time_training` times.
- **AR decode step**: a causal twin of the same shape with its key/value cache filled by a
  prompt of half the sequence, then one single-token call against the cache, the call that
  `sample.generate` makes once per generated token.

References: PyTorch profiler recipe (torch.profiler.profile, key_averages).
"""

import torch
from torch.profiler import ProfilerActivity, profile

from .bench_timing import TrainSpec, _autocast, _sync, training_net
from .loss import diffusion_loss
from .model import ModelConfig, Transformer
from .muon import build_optimizer

__all__ = ["profile_tables"]


def _table(prof, device, rows) -> str:
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort_by, row_limit=rows)


def _profiled(work, device, warm=True):
    """Run work() once untimed (unless warm=False: the caller did), then once under the profiler; return the profile."""
    if warm:
        work()
        _sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        work()
        _sync(device)
    return prof


def profile_tables(*, n_layer, n_head, n_embd, seq_len, batch_size, vocab_size, device, dtype, rows=15) -> dict:
    """{"train_step": table, "decode_step": table, "decode_cache_length": int}: the top `rows` ops of one
    diffusion training step (batch_size x seq_len) and of one cached single-token AR decode call at batch 1
    (against a cache of decode_cache_length positions), as printed text."""
    spec = TrainSpec(name="profile", objective="diffusion", n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                     seq_len=seq_len, batch_size=batch_size, vocab_size=vocab_size, dtype=dtype)
    torch.manual_seed(0)
    net, _ = training_net(spec, device)
    optimizer = build_optimizer(net, "adamw", lr=3e-4, weight_decay=0.1, betas=(0.9, 0.999), fused=device.type == "cuda")
    generator = torch.Generator(device=device).manual_seed(0)
    mask_id = vocab_size - 1
    data = torch.randint(0, mask_id, (batch_size, seq_len), device=device, generator=generator)  # (B, L)

    def train_step():
        with _autocast(device, dtype):
            loss = diffusion_loss(net, data, "linear", mask_id, generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    tables = {"train_step": _table(_profiled(train_step, device), device, rows)}
    net = optimizer = None  # the training step's memory is freed before the decode profile

    cfg = ModelConfig(vocab_size=vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd, seq_len=seq_len, causal=True)
    ar = Transformer(cfg).to(device).eval()
    prompt = max(min(seq_len // 2, seq_len - 2), 1)
    ids = torch.randint(0, mask_id, (1, prompt + 2), device=device, generator=generator)  # (1, P + 2)
    cache = ar.new_cache(1)
    with torch.no_grad(), _autocast(device, dtype):
        ar(ids[:, :prompt], cache=cache)  # the prompt's keys and values

    def decode_step():  # the next token against the cache, which it extends by one position
        with torch.no_grad(), _autocast(device, dtype):
            ar(ids[:, cache.length : cache.length + 1], cache=cache)  # (1, 1, V)

    decode_step()  # the untimed call: the cache now holds P + 1 positions
    _sync(device)
    tables["decode_cache_length"] = cache.length
    tables["decode_step"] = _table(_profiled(decode_step, device, warm=False), device, rows)
    return tables

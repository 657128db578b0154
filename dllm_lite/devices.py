"""Where a run computes and how: the device, its precision, the torchrun group and torch.compile.

- `resolve_device`: "auto" is this rank's GPU, else Apple's mps, else the CPU; a named device
  must be one this machine has (`available_devices`), or the error lists those it has.
- `precision`: bf16 autocast where train.dtype asks for it (or "auto" on a GPU with bf16).
- `init_distributed`: joins the torchrun group (RANK / WORLD_SIZE / LOCAL_RANK) when there is
  one; nccl on GPUs, gloo on CPUs.
- `try_compile`: torch.compile with one trial step, falling back to eager if the compiler fails.

The commands that load a model (generate, evaluate) pick their device with `resolve_device` too.

References: PyTorch's torchrun, DistributedDataParallel, torch.autocast and torch.compile docs.
"""

import os
from contextlib import nullcontext

import torch
import torch.distributed as dist

from ._run import Ranks
from .config import ConfigError

__all__ = ["available_devices", "resolve_device", "init_distributed", "precision", "try_compile"]


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


def init_distributed(device_name: str):
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


def precision(dtype: str, device: torch.device):
    """(use_bf16, autocast): bf16 autocast when train.dtype asks for it, or on "auto" on a GPU that has it."""
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return use_bf16, (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext


def try_compile(model, net, trial_loss, autocast, device: torch.device, ranks: Ranks):
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

"""Time-boxed tuning probes for configs/shakespeare_char.yaml: train for a fixed wall time, report the bound.

    python benchmarks/char_probe.py minutes=3 batch=16 seq_len=128 estd=0.3 name=e03
    python benchmarks/char_probe.py minutes=3 obj=ar batch=8 seq_len=256 name=ar   # the AR reference

Each probe trains a character-level model on the bundled Tiny Shakespeare for `minutes` of
wall time. The learning rate warms up for `warmup` steps, then follows a cosine over the
*time* budget (not a step count), so probes with different step costs each end fully
decayed. Batches are random windows of the training text (data=windows). At the end, one fixed evaluation:
64 validation blocks of 256 characters (cut to seq_len), 8 noise samples each, the same noise
for every probe; diffusion reports `loss.nll_bound`, AR its cross-entropy, both in nats/char.
One JSON line is printed last. Probes compare only when run one at a time on an otherwise idle
machine: they are wall-clock bound. Run to run, the same settings moved by about 0.05-0.07.

Keys (key=value): n_layer n_head n_embd seq_len batch lr min_lr warmup beta2 wd weighting
(mean | rowmean | elbo) minutes istd estd (model init_std / embed_init_std) obj (diff | ar)
tpow (times t = u^tpow; 1 is uniform) seed name, and:
  steps    train this many steps instead of `minutes` (the cosine then runs over steps): such
           probes do not depend on the machine's speed, so two can run side by side
  threads  torch threads (0: PyTorch's default); threads=1 for two probes side by side
  opt      adamw | muon (dllm_lite.muon: Muon for the blocks' matrices, AdamW for the rest)
  mlr      Muon's learning rate when it should differ from lr (0: the same)
  untie    1: a separate output matrix (init std `ostd`) instead of the tied embedding
  sched    cos | wsd (flat, then linear decay over the last 30%)
  data     windows (random offsets) | blocks (a permutation of fixed blocks, like the trainer)

    python benchmarks/char_probe.py steps=1000 threads=1 seq_len=128 istd=0.05 estd=0.3 opt=muon mlr=6e-3
"""

import json
import math
import sys
import time

import numpy as np
import torch

from dllm_lite import config, data
from dllm_lite.corrupt import corrupt, get_schedule, sample_times
from dllm_lite.loss import ar_loss, masked_cross_entropy, nll_bound, weigh
from dllm_lite.model import ModelConfig, Transformer
from dllm_lite.muon import build_optimizer

DEFAULTS = dict(n_layer=4, n_head=4, n_embd=128, seq_len=256, batch=16, lr=3e-3, min_lr=3e-4, warmup=50,
                beta2=0.95, wd=0.01, weighting="mean", minutes=3.0, istd=0.02, estd=0.02, obj="diff", tpow=1.0,
                seed=0, name="probe", steps=0, threads=0, opt="adamw", mlr=0.0, untie=0, ostd=0.02,
                sched="cos", data="windows")


def parse(argv) -> dict:
    """key=value arguments over DEFAULTS, each converted to the default's type."""
    args = dict(DEFAULTS)
    for item in argv:
        key, _, value = item.partition("=")
        if key not in args:
            sys.exit(f"unknown key {key!r}; the keys are {', '.join(args)}")
        args[key] = type(DEFAULTS[key])(value)
    return args


def probe_loss(net, x, args, schedule, mask_id, generator):
    """The training loss of one batch x (B, T) under the probe's objective and weighting."""
    if args["obj"] == "ar":
        return ar_loss(net, x)
    t = sample_times(x.shape[0], antithetic=True, generator=generator) ** args["tpow"]  # (B,)
    _, is_masked = corrupt(x, t, mask_id, schedule, generator=generator)  # (B, T)
    ce = masked_cross_entropy(net, x, is_masked, mask_id)  # (N,)
    if args["weighting"] == "rowmean":  # each row's mean masked cross-entropy: unbiased for the bound, noisier
        per_row = torch.zeros(is_masked.shape).masked_scatter(is_masked, ce).sum(1)
        return (per_row / is_masked.sum(1).clamp(min=1)).mean()
    return weigh(ce, is_masked, t, schedule, args["weighting"])


def main(argv) -> dict:
    args = parse(argv)
    torch.manual_seed(args["seed"])
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    cfg = config.load_config("configs/shakespeare_char.yaml")
    tokenizer = data.build_tokenizer(cfg.data)
    train_ids = np.asarray(data.load_tokens(cfg.data, tokenizer, "train"))
    val_ids = np.asarray(data.load_tokens(cfg.data, tokenizer, "validation"))
    T, B, mask_id = args["seq_len"], args["batch"], tokenizer.mask_id
    net = Transformer(ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=args["n_layer"], n_head=args["n_head"],
                                  n_embd=args["n_embd"], seq_len=T, causal=args["obj"] == "ar",
                                  init_std=args["istd"], embed_init_std=args["estd"]))
    if args["untie"]:  # a separate output matrix instead of the tied embedding
        out = torch.nn.Linear(args["n_embd"], net.embed.weight.shape[0], bias=False)
        torch.nn.init.normal_(out.weight, std=args["ostd"])
        net.out = out
        net.head = lambda h: (out(h) + net.logit_bias)[..., : net.cfg.vocab_size]
    optimizer = build_optimizer(net, args["opt"], args["lr"], args["wd"], betas=(0.9, args["beta2"]),
                                muon_lr=args["mlr"] or None)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    blocks_train = torch.from_numpy(train_ids[: len(train_ids) // T * T].astype(np.int64)).reshape(-1, T)
    order = torch.randperm(len(blocks_train), generator=torch.Generator().manual_seed(args["seed"]))
    schedule = get_schedule("linear")
    rng, generator = np.random.default_rng(args["seed"]), torch.Generator().manual_seed(args["seed"])
    budget, start, step, losses = 60 * args["minutes"], time.time(), 0, []
    progress = (lambda: step / args["steps"]) if args["steps"] else (lambda: (time.time() - start) / budget)
    floor = args["min_lr"] / args["lr"]
    while (fraction := progress()) < 1:
        if step < args["warmup"]:
            scale = (step + 1) / args["warmup"]
        elif args["sched"] == "wsd":  # flat, then linear decay over the last 30%
            scale = 1.0 if fraction < 0.7 else floor + (1 - floor) * (1 - fraction) / 0.3
        else:
            scale = floor + 0.5 * (1 - floor) * (1 + math.cos(math.pi * fraction))
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * scale
        if args["data"] == "blocks":
            idx = order[(step * B) % len(order):][:B]
            if len(idx) < B:
                idx = order[:B]
            x = blocks_train[idx]
        else:
            starts = rng.integers(0, len(train_ids) - T, B)
            x = torch.from_numpy(train_ids[starts[:, None] + np.arange(T)].astype(np.int64))  # (B, T)
        loss = probe_loss(net, x, args, schedule, mask_id, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        step, losses = step + 1, losses + [loss.item()]
    train_s = time.time() - start

    blocks = torch.from_numpy(val_ids[: 64 * 256].astype(np.int64)).reshape(-1, min(T, 256))  # fixed validation set
    net.eval()
    if args["obj"] == "ar":
        with torch.no_grad():
            value, stderr = sum(ar_loss(net, blocks[i : i + 16]).item() for i in range(0, len(blocks), 16)) * 16 / len(blocks), 0.0
    else:
        value, stderr = nll_bound(net, blocks, schedule, mask_id, n_samples=8 * 256 // blocks.shape[1],
                                  generator=torch.Generator().manual_seed(123), batch_size=64, return_stderr=True)
    result = {**args, "steps": step, "s_per_step": round(train_s / step, 3),
              "train_loss_last50": round(sum(losses[-50:]) / len(losses[-50:]), 4),
              "bound" if args["obj"] != "ar" else "val_ce": round(value, 4), "stderr": round(stderr, 4)}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

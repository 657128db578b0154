"""The NLL bound of a diffusion checkpoint on its whole validation split, with many noise samples.

(Block diffusion checkpoints get their block NELBO; autoregressive ones their exact
next-token NLL over the same blocks and positions, for comparison.)

    python benchmarks/checkpoint_bound.py runs/shakespeare_char/latest.pt --samples 16

The trainer's evaluation is sized to fit in a training budget; this one is sized to be
precise. It rebuilds the network, tokenizer and data settings from the checkpoint, cuts the
validation tokens into blocks of the model's seq_len, and averages `loss.nll_bound` over
every block with `--samples` antithetic times each. With `--shift`, it does the same again
with the blocks moved by half a block, a second, almost independent, measurement.
Prints one line per measurement: blocks x samples, bound, stderr (nats per token).
"""

import argparse

import numpy as np
import torch

from dllm_lite import data, loss, train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint written by dllm_lite.train, e.g. runs/NAME/latest.pt")
    parser.add_argument("--samples", type=int, default=16, help="noise samples (times) per block")
    parser.add_argument("--shift", action="store_true", help="also measure on blocks moved by half a block")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    net, tokenizer, cfg, _ = train.load_checkpoint(args.checkpoint, "cpu")
    tokens = torch.from_numpy(np.array(data.load_tokens(cfg.data, tokenizer, "validation"), dtype=np.int64))
    L = cfg.model.seq_len
    for offset in (0, L // 2) if args.shift else (0,):
        blocks = tokens[offset : offset + (len(tokens) - offset) // L * L].view(-1, L)  # (N, L)
        if cfg.train.objective == "autoregressive":  # exact: no samples, no error bar
            with torch.no_grad():
                nll = sum(loss.ar_loss(net, chunk, tokenizer.mask_id).item() * len(chunk) for chunk in blocks.split(256))
            print(f"offset {offset}: {len(blocks)} blocks: exact NLL {nll / len(blocks):.4f}")
            continue
        bound, stderr = loss.nll_bound(net, blocks, cfg.train.schedule, tokenizer.mask_id, n_samples=args.samples,
                                       generator=torch.Generator().manual_seed(args.seed + offset), batch_size=512,
                                       return_stderr=True, block_size=cfg.model.block_size)
        print(f"offset {offset}: {len(blocks)} blocks x {args.samples} samples: bound {bound:.4f} ± {stderr:.4f}")


if __name__ == "__main__":
    main()

"""The BlockLoader: training batches of (B, T) token blocks cut from the flat token array.

`token_cache.load_tokens` gives one flat array of ids; this file serves it as batches, in a
seeded order that every rank of a torchrun group agrees on, and that a resumed run
continues exactly (`state_dict` / `load_state_dict`). pairs.PairLoader, for prompt/response
pairs, inherits its order.
"""
from __future__ import annotations

import numpy as np
import torch

from .data_checks import DataError

__all__ = ["BlockLoader"]


class BlockLoader:
    """Batches of non-overlapping `seq_len` blocks of a flat token array, in a seeded order, resumable.

    Block i is tokens[i * seq_len : (i + 1) * seq_len]; n_blocks = len(tokens) // seq_len
    (the tail is dropped). Epoch e visits the blocks in the permutation drawn from
    numpy's generator seeded with (seed, e). Global step g of an epoch takes blocks
    perm[g*W*B : (g+1)*W*B] for W ranks of batch B, and rank r keeps its slice
    [r*B : (r+1)*B], so W ranks together see exactly what one process with batch W*B sees.
    An epoch has n_blocks // (W*B) steps; the remainder waits for a later epoch's order.
    """

    def __init__(self, tokens, seq_len: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 device="cpu"):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.tokens, self.seq_len, self.batch_size = tokens, seq_len, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        self.n_blocks = len(tokens) // seq_len
        self.global_batch = batch_size * world_size
        if self.n_blocks < self.global_batch:
            raise DataError(f"{len(tokens):,} tokens make {self.n_blocks} blocks of seq_len={seq_len}, fewer than one "
                            f"batch of {self.global_batch} (batch_size={batch_size} x {world_size} ranks); lower "
                            f"train.batch_size or model.seq_len, or use more data")
        self.steps_per_epoch = self.n_blocks // self.global_batch
        self.tokens_per_batch = batch_size * seq_len
        self.epoch, self.position = 0, 0  # position: global steps taken in this epoch
        self._order = None  # (epoch, permutation)

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks))
        return self._order[1]

    def next_blocks(self) -> np.ndarray:
        """The indices (batch_size,) of this rank's next blocks; moves the loader on by one step."""
        if self.position >= self.steps_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        start = self.position * self.global_batch + self.rank * self.batch_size
        self.position += 1
        return self._permutation(self.epoch)[start : start + self.batch_size]  # (B,)

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """A CPU tensor on the loader's device (pinned first on CUDA, so the copy overlaps compute)."""
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device)

    def next_batch(self) -> torch.Tensor:
        """The next (batch_size, seq_len) LongTensor of this rank, on the loader's device."""
        blocks = self.next_blocks()  # (B,)
        offsets = blocks[:, None] * self.seq_len + np.arange(self.seq_len)  # (B, T)
        return self.to_device(torch.from_numpy(np.asarray(self.tokens[offsets], dtype=np.int64)))  # (B, T)

    def state_dict(self) -> dict:
        """Plain ints: where the next batch comes from, plus the sizes that give them meaning."""
        return {"epoch": self.epoch, "position": self.position, "n_blocks": self.n_blocks,
                "global_batch": self.global_batch}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()`: the following batches equal those the saved loader would give."""
        for key in ("n_blocks", "global_batch"):
            if key in state and state[key] != getattr(self, key):
                raise DataError(f"the saved data position is for {key}={state[key]} but this loader has "
                                f"{getattr(self, key)}; resume with the same data, model.seq_len and "
                                f"train.batch_size x number of GPUs")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

r"""Approximate key/value caches for a bidirectional model decoded in blocks (Fast-dLLM).

Semi-autoregressive decoding (`sample.generate(..., block_size=K)`) fills a masked diffusion
model's sequence a block of K positions at a time, left to right, in several steps per block.
Each step runs the whole sequence through the network, although within a block only the K
positions being filled are read out. A causal model would cache the keys and values of
everything before the block; a bidirectional model cannot do that exactly, since every
position attends to every other, and the keys and values of the prefix change a little
whenever a token of the block (or of the suffix) is revealed. Wu et al. (2025) observed that
they change little within a block and reused them anyway:

- **prefix cache** (`block_cache="prefix"`): when a block starts, one full forward computes the
  keys and values of every position; for the block's later steps only the block and the suffix
  after it go through the network, attending to the stored keys and values of the prefix;
- **dual cache** (`block_cache="dual"`): the still-masked suffix is stored as well, and each later
  step runs the K positions of the block alone, attending to the stored prefix and suffix.

This is an approximation for a bidirectional model: the stored keys and values are those of the
block's first step, not of the current one, so the tokens are not the ones exact decoding would
draw. `cache_refresh=n` recomputes the stored keys and values with a full forward every n network
calls within a block (None: only when the block starts); `cache_refresh=1` is exact decoding, one
full forward per call, and gives the uncached tokens. A block's full forward also serves that
step's logits, so a refresh costs no extra call. (With `conv`, the dual cache's block also reads
the stored convolution inputs of its neighbours on both sides.)

References: Wu et al. 2025, "Fast-dLLM: Training-free Acceleration of Diffusion LLM by Enabling
KV Cache and Parallel Decoding", sec. 3.2 (prefix and dual caches); Nie et al. 2025 (LLaDA,
semi-autoregressive decoding).
"""

import torch

__all__ = ["BLOCK_CACHES", "BlockCache"]

BLOCK_CACHES = ("prefix", "dual")


class BlockCache:
    """A bidirectional net behind an approximate cache: `cached(x, only_at)` returns the logits (N, V) of
    x (B, T) at the True positions of only_at, all inside the current block (`start_block`), and
    `cached.features(x, only_at)` the hidden states (N, C) there (the net has `features` and `head`).

    mode: "prefix" or "dual"; refresh: recompute the stored keys and values every this many calls
    within a block (None: once, at the block's first call); the network calls are counted by the
    sampler, one per call here whatever its width."""

    def __init__(self, net, batch_size: int, mode: str, refresh: "int | None" = None):
        if mode not in BLOCK_CACHES:
            raise ValueError(f"unknown block_cache {mode!r}: choose one of {', '.join(BLOCK_CACHES)} (or None)")
        if refresh is not None and refresh < 1:
            raise ValueError(f"cache_refresh must be at least 1 (or None: once per block), got {refresh}")
        self.net, self.mode, self.refresh = net, mode, refresh
        self.cache = net.new_cache(batch_size, approximate=True)
        self.start = self.end = 0
        self.calls = 0  # calls within the current block

    def start_block(self, start: int, end: int) -> None:
        """The next calls fill positions [start, end): the stored keys and values are recomputed at the first."""
        self.start, self.end, self.calls = start, end, 0

    def __call__(self, x: torch.Tensor, only_at: torch.Tensor) -> torch.Tensor:
        """The logits (N, V) at the True positions of only_at: the net's head on `features`."""
        return self.net.head(self.features(x, only_at))

    def features(self, x: torch.Tensor, only_at: torch.Tensor) -> torch.Tensor:
        """The final hidden states (N, C) at the True positions of only_at (B, T), before the head (the sampler
        runs the head on them a chunk of rows at a time, draw.sample_rows)."""
        refresh = self.calls == 0 or (self.refresh is not None and self.calls % self.refresh == 0)
        self.calls += 1
        cache = self.cache
        if refresh:  # every position, exactly: its hidden states, and the keys and values to store
            cache.length = cache.seen_to = 0
            h = self.net.features(x, cache=cache)[only_at]  # (N, C)
            cache.length = self.start  # the prefix is kept; what follows is overwritten by the next calls
            cache.seen_to = x.shape[1] if self.mode == "dual" else 0  # dual: the suffix stays visible
            return h
        stop = self.end if self.mode == "dual" else x.shape[1]  # prefix: the block and the suffix are recomputed
        h = self.net.features(x[:, self.start : stop], cache=cache, extend_cache=False)  # (B, stop - start, C)
        return h[only_at[:, self.start : stop]]  # (N, C): only_at is True inside the block only

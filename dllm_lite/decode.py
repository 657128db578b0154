r"""Decoding with a key/value cache, eagerly or as a compiled step with static shapes.

An autoregressive model writes token $x_i \sim p_\theta(\cdot \mid x_{<i})$ one at a time. The
keys and values of $x_{<i}$ do not change when $x_i$ is added, so each call computes them for
the new token only and reads the rest from a cache: one call costs one token's worth of
matrix products plus attention over the cache. A block diffusion model does the same a block
at a time (block.py).

On a GPU such a call is tiny, and its time goes to launching kernels, not to arithmetic. CUDA
graphs record the kernels of a call once and replay them with one launch, but only if every
call has the same shapes and the same buffers. The growing cache of `model.KVCache` changes
the key length every call. `StaticKVCache` keeps the shapes fixed instead:
- buffers of seq_len positions, the new keys and values written at their positions
  (`index_copy_`), never a slice whose length depends on how far decoding has got;
- attention over all seq_len keys with a boolean mask (T, seq_len) that hides the positions not
  written yet (a causal query $i$ sees keys $j \le i$; a block sees the cache and itself),
  computed from the positions of the call, a tensor, so no Python number enters the graph.
`Decoder` runs one call (ids of a fixed width, the positions after the cache) through
`torch.compile`, with mode="reduce-overhead" (CUDA graphs) on a GPU and plain compilation on a
CPU, and falls back to eager calls with a one-line message if compilation fails. A call of
another width (a prompt, a last shorter block) runs eagerly on the same cache. The numbers are
those of the eager path: `sample.generate(..., compile=True)` gives the same tokens.

References: the PyTorch torch.compile and CUDA graphs documentation; pytorch-labs/gpt-fast
(a static cache and compiled decoding); the StaticCache of Hugging Face transformers.
"""

import sys
import weakref

import torch

__all__ = ["StaticKVCache", "Decoder", "autoregressive"]


class StaticKVCache:
    """Fixed-size key/value buffers for batch_size rows: the shapes never change, so a compiled step can be
    replayed (a CUDA graph). The interface of `model.KVCache` (`attend`, `remember`, `advance`, `length`);
    the caller sets `at`, the positions (T,) of the call's tokens, before each call (`Decoder` does).
    The buffers are those of `net.new_cache(batch_size)` (seq_len positions each), written in place."""

    def __init__(self, net, batch_size: int, static_address: bool = False):
        buffers = net.new_cache(batch_size)  # model.KVCache: the same keys, values and convolution inputs
        self.keys, self.values, self.mix_inputs = buffers.keys, buffers.values, buffers.mix_inputs
        self.key_positions = torch.arange(net.cfg.seq_len, device=self.keys[0].device)  # (S,)
        if static_address:
            self.mark_static()
        self.length = 0  # how many positions are final (a Python number, read outside the compiled step)
        self.at = None  # (T,) positions of the current call's tokens

    def mark_static(self) -> None:
        """For CUDA graphs: the buffers keep their addresses, so a replay writes them in place rather than
        copying them in and out (and an input mutated in place that is not static skips the CUDA graph)."""
        for buffer in self.keys + self.values + sum(self.mix_inputs or [], []):
            torch._dynamo.mark_static_address(buffer)

    def attend(self, layer: int, k: torch.Tensor, v: torch.Tensor, causal: bool):
        """Write k, v (B, H, T, D) at positions `at`; return (keys, values, mask, is_causal) over all S positions,
        the mask (T, S) True where a query may attend: keys up to itself (causal), or up to the call's last
        position (a block seeing the cache and itself)."""
        self.keys[layer].index_copy_(2, self.at, k.to(self.keys[layer].dtype))
        self.values[layer].index_copy_(2, self.at, v.to(self.values[layer].dtype))
        if causal:
            mask = self.key_positions[None, :] <= self.at[:, None]  # (T, S)
        else:
            mask = (self.key_positions <= self.at[-1]).expand(k.shape[2], -1)  # (T, S)
        return self.keys[layer], self.values[layer], mask, False

    def remember(self, layer: int, which: int, h: torch.Tensor, reach: int) -> tuple[torch.Tensor, int]:
        """Write the convolution input h (B, T, C) at positions `at`; return the window (B, reach + T, C)
        the convolution reads, the `reach` inputs before h (zeros before the start) and h, and where h
        starts in it (reach)."""
        buffer = self.mix_inputs[layer][which]
        buffer.index_copy_(1, self.at, h.to(buffer.dtype))
        window = self.at[0] - reach + torch.arange(reach + h.shape[1], device=h.device)  # (reach + T,)
        return buffer.index_select(1, window.clamp_min(0)) * (window >= 0)[None, :, None].to(buffer.dtype), reach

    def advance(self, n: int) -> None:
        """Nothing: inside a compiled step a Python number must not change; `Decoder` moves `length`."""


_COMPILED = {}  # mode -> the compiled step, one per process


def _step(net, cache, ids, only_at, extend: bool):
    """One call at positions cache.at: logits (B, T, V), or (N, V) at only_at (the function torch.compile sees)."""
    return net(ids, only_at=only_at, cache=cache, positions=cache.at, extend_cache=extend)


_CACHES = weakref.WeakKeyDictionary()  # net -> {(rows, device, dtype): StaticKVCache}, reused by later calls


class Decoder:
    """Cached calls of `net` with a static cache: `decoder(ids, extend=True, only_at=None)` runs ids (B, T)
    at the positions after the cache and returns the net's logits; extend=True makes them final.

    Calls of `width` tokens run compiled when compile=True (after the first, which compiles); other
    widths run eagerly. The cache is kept per net and batch size, so a later Decoder of the same net
    finds its compiled step ready."""

    def __init__(self, net, batch_size: int, width: int, compile: bool = False):
        p = next(net.parameters())
        key = (batch_size, str(p.device), p.dtype)
        caches = _CACHES.setdefault(net, {})
        if key not in caches:
            caches[key] = StaticKVCache(net, batch_size)
        self.net, self.cache, self.width, self.cuda = net, caches[key], width, p.device.type == "cuda"
        if compile:  # also when an eager Decoder made this cache first
            self.cache.mark_static()
        self.cache.length = 0
        self.compiled = None
        self.ids = self.only_at = None  # the compiled step's inputs, see _inputs
        if compile:
            mode = "reduce-overhead" if self.cuda else None  # CUDA graphs on a GPU
            if mode not in _COMPILED:
                _COMPILED[mode] = torch.compile(_step, mode=mode)
            self.compiled = _COMPILED[mode]

    def _inputs(self, ids, only_at):
        """ids and only_at copied into buffers of their own. A slice of a longer sequence has strides that
        depend on that sequence's length, and a compiled step is specialised on strides (even those of a
        size-1 dimension): passed as they are, each new total length would compile the step again."""
        if self.ids is None:
            self.ids = torch.empty_like(ids, memory_format=torch.contiguous_format)
        self.ids.copy_(ids)
        if only_at is None:
            return self.ids, None
        if self.only_at is None:
            self.only_at = torch.empty_like(only_at, memory_format=torch.contiguous_format)
        self.only_at.copy_(only_at)
        return self.ids, self.only_at

    def __call__(self, ids: torch.Tensor, extend: bool = True, only_at: "torch.Tensor | None" = None):
        T, start = ids.shape[1], self.cache.length
        self.cache.at = torch.arange(start, start + T, device=ids.device)  # (T,)
        if self.compiled is not None and T == self.width:
            ids, only_at = self._inputs(ids, only_at)
            try:
                logits = self.compiled(self.net, self.cache, ids, only_at, extend)
                logits = logits.clone() if self.cuda else logits  # a CUDA graph reuses its output memory
            except Exception as error:  # the compiler's own errors have many types (dynamo, inductor, C++ build)
                first_line = (str(error).strip().splitlines() or [""])[0][:200]
                print(f"torch.compile failed ({type(error).__name__}: {first_line}); decoding without it",
                      file=sys.stderr)
                self.compiled = None
                logits = _step(self.net, self.cache, ids, only_at, extend)
        else:
            logits = _step(self.net, self.cache, ids, only_at, extend)
        if extend:
            self.cache.length += T
        return logits


def _last_logits(net, ids, headed, **kwargs) -> torch.Tensor:
    """The logits (B, V) after the last of ids (B, P); with headed=True the head runs at that position only."""
    if not headed:
        return net(ids, **kwargs)[:, -1]
    last = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    last[:, -1] = True
    return net(ids, only_at=last, **kwargs)  # (B, V): one row per sequence, in order


def autoregressive(net, x, start: int, draw, record, use_cache: bool = True, headed: bool = False,
                   compile: bool = False) -> int:
    """Left-to-right sampling of x[:, start:], in place in x (B, T); return the network calls.

    x[:, :start] is the beginning-of-sequence token and the prompt, start >= 1; draw(logits (B, V))
    returns the tokens (B,); record(x) is called after each. use_cache=False recomputes the whole
    prefix at every call; compile=True decodes with a `Decoder` (a static cache, a compiled one-token
    step). headed: the net takes only_at, so a call over several tokens runs the head at the last one.
    """
    B, T = x.shape
    if compile:
        decoder = Decoder(net, B, width=1, compile=True)
        kv = decoder.cache
    else:
        kv = net.new_cache(B) if use_cache else None
    for pos in range(start, T):
        if kv is None:  # recompute the whole prefix, the head at its last position only: (B, V)
            logits = _last_logits(net, x[:, :pos], headed)
        elif pos == start and compile:  # prefill the start token and the prompt, eagerly
            logits = _last_logits(decoder, x[:, :pos], headed)
        elif pos == start:
            logits = _last_logits(net, x[:, :pos], headed, cache=kv)  # prefill the start token and the prompt
        elif compile:
            logits = decoder(x[:, pos - 1 : pos])[:, -1]  # one new token, a compiled step
        else:
            logits = net(x[:, pos - 1 : pos], cache=kv)[:, -1]  # one new token against the cache
        x[:, pos] = draw(logits)  # $x_{pos} \sim p(\cdot \mid x_{<pos})$
        record(x)
    return T - start

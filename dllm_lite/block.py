r"""Block diffusion (BD3-LM): one dial, the block size K, from an autoregressive model to masked diffusion.

Cut a sequence $x$ of length L into L / K blocks of K tokens, $x = (x^1, \dots, x^{L/K})$, and
factor it left to right over blocks, as a GPT does over tokens:

$$ \log p_\theta(x) = \sum_b \log p_\theta(x^b \mid x^{<b}) .$$

Each factor is a small masked diffusion model of one block given the clean blocks before it,
so each gets the masked-diffusion bound of `loss.py`, with its own time $t_b$:

$$ -\log p_\theta(x) \le \sum_b \mathbb{E}_{t_b} \mathbb{E}_{x_{t_b}^b} \Big[ w(t_b)
   \sum_{i \in b:\ x_{t_b}^i = m} -\log p_\theta(x^i \mid x_{t_b}^b, x^{<b}) \Big],
   \qquad w(t) = \frac{-\alpha'(t)}{1 - \alpha(t)} .$$

K = L is MDLM (one block, nothing before it). K = 1 is an autoregressive model: a lone token
masked with probability t and weighted by 1/t costs, in expectation, exactly its next-token
cross-entropy given the tokens before it (the network reads [MASK] at its position).

**Training in one pass** (Arriola et al. 2025, sec. 3-4). The network runs once over the
concatenation $[x_t, x_0]$ (2L positions; the two copies of position i share its position
encoding) with this attention pattern, b(i) being the block of position i:

    query \ key        noisy j            clean j
    noisy i            b(j) == b(i)       b(j) <  b(i)
    clean i            never              b(j) <= b(i)

so noisy block b sees itself (bidirectionally) and the clean blocks before it, and the clean
copy builds, block-causally, the keys and values that the noisy blocks read. The logits of
the noisy half are the predictions. On a GPU the pattern, mostly empty, can run as
FlexAttention's block-sparse mask; everywhere else as a boolean mask in SDPA (same numbers).

**Sampling with a cache.** Generate a block at a time: start it all-masked, denoise it with
any strategy of `sample.py` against the cached keys and values of the clean blocks before it
(each step costs one block attending to the cache), then run the finished block once through
the network to add its keys and values to the cache. The text can stop after any block: at
the block in which the end-of-text token appears. An MDLM fixes its length up front.

References: Arriola et al. 2025, "Block Diffusion: Interpolating Between Autoregressive and
Diffusion Language Models" (BD3-LM, ICLR 2025); Sahoo et al. 2024 (MDLM); Nie et al. 2025
(LLaDA, semi-autoregressive remasking); the PyTorch FlexAttention documentation.
"""

import torch

from .corrupt import sample_times
from .decode import Decoder

__all__ = ["block_attention_mask", "flex_block_mask", "block_positions", "block_logits", "block_times", "fill_blocks"]


def _check(seq_len: int, block_size: int) -> None:
    if block_size < 1 or seq_len % block_size:
        raise ValueError(f"block_size={block_size} must divide the sequence length {seq_len}; pick a divisor")


def block_attention_mask(seq_len: int, block_size: int, device="cpu") -> torch.Tensor:
    """The training pass's attention pattern over [x_t, x_0]: a boolean (2L, 2L), True where a query may attend.

    Rows and columns 0..L-1 are the noisy copy, L..2L-1 the clean one; see the table in the
    module docstring.
    """
    _check(seq_len, block_size)
    block = torch.arange(seq_len, device=device) // block_size  # (L,) b(i)
    same = block[:, None] == block[None, :]  # (L, L)
    before = block[:, None] > block[None, :]  # (L, L) key's block strictly before the query's
    noisy_rows = torch.cat([same, before], dim=1)  # noisy i: its own block, clean blocks before it
    clean_rows = torch.cat([torch.zeros_like(same), same | before], dim=1)  # clean i: clean blocks <= b(i)
    return torch.cat([noisy_rows, clean_rows], dim=0)  # (2L, 2L)


def block_positions(seq_len: int, device="cpu") -> torch.Tensor:
    """Positions 0..L-1 twice (2L,): the noisy and the clean copy of token i sit at position i."""
    return torch.arange(seq_len, device=device).repeat(2)


def flex_block_mask(seq_len: int, block_size: int, device="cpu"):
    """`block_attention_mask` as a FlexAttention BlockMask (tiles with nothing visible are skipped), or
    None where this PyTorch has no FlexAttention. block_logits uses it on CUDA."""
    _check(seq_len, block_size)
    try:
        from torch.nn.attention.flex_attention import create_block_mask
    except ImportError:
        return None

    def visible(b, h, q, k):  # the table of the module docstring, on indices into [x_t, x_0]
        q_clean, k_clean = q >= seq_len, k >= seq_len
        q_block, k_block = (q % seq_len) // block_size, (k % seq_len) // block_size
        return ((~q_clean & ~k_clean & (q_block == k_block)) | (~q_clean & k_clean & (k_block < q_block))
                | (q_clean & k_clean & (k_block <= q_block)))

    return create_block_mask(visible, None, None, 2 * seq_len, 2 * seq_len, device=device)


_MASKS = {}  # (seq_len, block_size, device, flex) -> mask: built once per shape, reused every step


def _mask(seq_len: int, block_size: int, device, flex: bool):
    key = (seq_len, block_size, str(device), flex)
    if key not in _MASKS:
        use_flex = flex and torch.device(device).type == "cuda"
        _MASKS[key] = (flex_block_mask(seq_len, block_size, device) if use_flex else None) \
            or block_attention_mask(seq_len, block_size, device)
    return _MASKS[key]


def block_logits(net, xt, x0, block_size: int, only_at=None, flex: bool = True) -> torch.Tensor:
    """The block diffusion model's logits for the noisy x_t (B, L), given the clean x_0 (B, L).

    One forward over [x_t, x_0] with `block_attention_mask`: returns (B, L, V), or (N, V) at the
    True positions of only_at (B, L). flex=True uses FlexAttention on CUDA (without dropout).
    """
    B, L = xt.shape
    idx = torch.cat([xt, x0], dim=1)  # (B, 2L)
    mask = _mask(L, block_size, xt.device, flex and not (net.training and getattr(net.cfg, "dropout", 0.0) > 0))
    positions = block_positions(L, xt.device)
    if only_at is not None:
        clean_half = torch.zeros_like(only_at)
        return net(idx, only_at=torch.cat([only_at, clean_half], dim=1), positions=positions, attn_mask=mask)
    return net(idx, positions=positions, attn_mask=mask)[:, :L]  # (B, L, V)


def block_times(rows: int, seq_len: int, block_size: int, eps: float = 1e-3, generator=None, device="cpu"):
    r"""One time per block for `rows` sequences, spread over each position: (rows, L).

    The rows * (L / K) times are drawn antithetically (`corrupt.sample_times`) and dealt out so
    that, for every block, the times of the rows are 1 / rows apart: each block index sees the
    whole interval in every batch. Position i carries its block's time $t_{b(i)}$.
    """
    _check(seq_len, block_size)
    n_blocks = seq_len // block_size
    t = sample_times(rows * n_blocks, antithetic=True, eps=eps, generator=generator, device=device)
    return t.view(rows, n_blocks).repeat_interleave(block_size, dim=1)  # (rows, L)


@torch.no_grad()
def fill_blocks(net, x, start: int, block_size: int, steps: int, fill, eot_id=None,
                use_cache: bool = True, compile: bool = False) -> tuple[int, int, int]:
    """Sample the masks of x (B, T) from position `start` on, block by block, with a key/value cache.

    Positions before `start` are the prompt; its whole blocks go through the network once, to
    fill the cache, and a prompt that ends inside a block conditions the rest of that block.
    `fill(denoise, view, steps)` runs a strategy of sample.py on one block: view is x's
    columns of the block (B, k), denoise(view, only_at) returns `(rows, hidden)` at the True
    positions of only_at (B, k): the final hidden states (N, C), for the caller to run `net.head`
    on (hidden=True), or the logits (N, V) (hidden=False: the compiled step, or a net without
    `features` and `head`, such as a wrapper offering only forward); fill returns (network calls,
    steps taken). `steps` are shared evenly among the blocks, the first ones
    taking the remainder. With eot_id, generation stops after the block in which every row has written
    an end-of-text token. Returns (network calls, steps taken, end): x[:, :end] is done; the calls
    count the denoising steps and the passes that add a finished block (or the prompt) to the cache.
    use_cache=False recomputes the clean prefix at every step instead (same numbers, for tests
    and for the cost comparison). compile=True uses a static cache and a compiled block-wide step
    (decode.Decoder); the prompt's whole blocks then go through one block per call, the step's shape.
    """
    B, T = x.shape
    first = start // block_size * block_size  # the first block with something to generate
    cuts = list(range(first, T, block_size))
    if steps < len(cuts):
        raise ValueError(f"steps={steps} is fewer than the {len(cuts)} blocks: raise steps (at least one per block)")
    decoder = Decoder(net, B, width=block_size, compile=True) if compile else None
    cache = decoder.cache if compile else net.new_cache(B) if use_cache else None
    calls, taken = 0, 0
    # hidden states for the caller's head where the net splits into features and head (eager), else logits
    hidden = not compile and callable(getattr(net, "features", None)) and callable(getattr(net, "head", None))
    if first > 0 and compile:  # the prompt's whole blocks, one at a time: each sees the cache and itself
        for a in range(0, first, block_size):
            decoder(x[:, a : a + block_size], only_at=torch.zeros_like(x[:, a : a + block_size], dtype=torch.bool))
        calls = first // block_size
    elif first > 0 and use_cache:  # the prompt's whole blocks, block-causally, into the cache
        block = torch.arange(first, device=x.device) // block_size  # (first,)
        mask = block[:, None] >= block[None, :]  # (first, first): the clean stream's pattern, block-causal
        net(x[:, :first], cache=cache, attn_mask=mask, only_at=torch.zeros_like(x[:, :first], dtype=torch.bool))
        calls = 1
    done = torch.zeros(B, dtype=torch.bool, device=x.device)  # rows that have written end-of-text
    base, extra = divmod(steps, len(cuts))
    for j, a in enumerate(cuts):
        view = x[:, a : a + block_size]  # (B, k) a view: filling it fills x

        def denoise(ids, only_at):  # the block against the cache, which stays as it is
            if decoder is not None:
                return decoder(ids, extend=False, only_at=only_at), False  # (N, V)
            if cache is None:  # the clean prefix again, block-causally, then this block
                return _uncached(net, x[:, :a], ids, block_size, only_at, hidden), hidden
            if hidden:
                return net.features(ids, cache=cache, extend_cache=False)[only_at], True  # (N, C)
            return net(ids, cache=cache, extend_cache=False, only_at=only_at), False  # (N, V)

        block_calls, block_steps = fill(denoise, view, base + (j < extra))
        calls, taken = calls + block_calls, taken + block_steps
        if eot_id is not None:  # an end-of-text among the generated tokens (not in the prompt) ends a row
            generated = torch.arange(a, a + view.shape[1], device=x.device) >= start  # (k,)
            done |= ((view == eot_id) & generated).any(dim=1)
            if bool(done.all()):
                return calls, taken, a + view.shape[1]
        if a + block_size < T and cache is not None:  # the finished block joins the cache, for the blocks after it
            nothing = torch.zeros_like(view, dtype=torch.bool)  # no logits needed: only the keys and values
            decoder(view, only_at=nothing) if decoder is not None else net(view, cache=cache, only_at=nothing)
            calls += 1
    return calls, taken, T


def _uncached(net, prefix, ids, block_size, only_at, hidden):
    """The hidden states (N, C) (hidden=True), or the logits (N, V), of the noisy block `ids` (B, k) at the True
    positions of only_at (B, k), after the clean `prefix` (B, a), a a multiple of block_size, in one forward
    without a cache: the prefix attends block-causally, the block to the prefix and itself."""
    a, k = prefix.shape[1], ids.shape[1]
    block = torch.arange(a + k, device=ids.device) // block_size  # (a + k,)
    mask = block[:, None] >= block[None, :]  # (a + k, a + k): the clean stream's pattern, the block seeing itself
    where = torch.cat([torch.zeros_like(prefix, dtype=torch.bool), only_at], dim=1)  # (B, a + k)
    if hidden:
        return net.features(torch.cat([prefix, ids], dim=1), attn_mask=mask)[where]  # (N, C)
    return net(torch.cat([prefix, ids], dim=1), only_at=where, attn_mask=mask)  # (N, V)

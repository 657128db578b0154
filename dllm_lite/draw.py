r"""Drawing a token from the network's logits: temperature, top-k, top-p and the Gumbel-max trick, in float64.

A row of logits $\ell \in \mathbb{R}^V$ is a distribution over the vocabulary. Sampling changes it
before the draw: divide by a temperature $\tau$ (below 1 sharpens it, 0 is the argmax), keep the
`top_k` largest logits, keep the smallest set of tokens whose probability adds up to `top_p`
(Holtzman et al. 2020), and draw from what is left with the Gumbel-max trick: with
$g_v = -\log(-\log u_v)$, $u_v \sim U(0, 1)$, the token $\arg\max_v (\log \pi_v + g_v)$ has
probability $\pi_v$ exactly.

The draw runs in float64 (Zheng et al. 2024: low-precision Gumbel noise truncates the
distribution) and so costs 8 bytes per vocabulary entry per row: 412 MB for 1,024 masked rows of a
50K vocabulary. `sample_tokens` therefore takes the rows a chunk at a time, each chunk's float64
arrays within `FLOAT64_BUDGET` bytes, and works in place where it can: about three such arrays
live at once (64 MiB each by default). The samplers of sample.py and decode.py use it.

The logits themselves grow as fast: at the first step of a diffusion sample every position is
masked, and the head's float32 logits for 16 rows of 1,024 positions and a 50K vocabulary take
3.3 GB. `sample_rows` never holds them all: given the hidden states (N, C) and the output head,
it runs head -> draw a chunk of rows at a time, each chunk's logits within `LOGITS_BUDGET` bytes,
and keeps only each row's token and confidence.

References: Gumbel 1954, Maddison et al. 2014 (the Gumbel-max trick); Holtzman et al. 2020 (top-p);
Zheng et al. 2024, "Masked diffusion models are secretly time-agnostic masked models and exploit
inaccurate categorical sampling".
"""

from typing import Callable, NamedTuple

import torch

__all__ = ["FLOAT64_BUDGET", "LOGITS_BUDGET", "Head", "head_of", "sample_tokens", "sample_rows", "uniform", "check_sampling"]

FLOAT64_BUDGET = 64 * 2**20  # bytes: the most that one float64 (rows, V) array of sample_tokens may hold
LOGITS_BUDGET = 64 * 2**20  # bytes: the most that one chunk of logits (rows, width) of sample_rows may hold


class Head(NamedTuple):
    """A net's output head: `project(h (n, C))` -> logits (n, V); `width`: the columns of its matrix product,
    the padded vocabulary (>= V) that the product materialises before any slicing."""

    project: Callable[[torch.Tensor], torch.Tensor]
    width: int


def uniform(shape, generator, device) -> torch.Tensor:
    """Float64 uniforms in [0, 1), drawn on the generator's device so a seed reproduces anywhere."""
    draw_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=draw_device, dtype=torch.float64).to(device)


def check_sampling(temperature, top_k, top_p):
    """A one-line ValueError for a temperature, top_k or top_p out of range."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1 (or None for no top-k filter), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (or None for no top-p filter), got {top_p}")


def sample_tokens(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    r"""Draw one token per row of `logits` (..., V); return `(tokens, confidence)`, both (...).

    The draw, in float64: scale by the temperature, keep the `top_k` largest logits, then
    the smallest set of tokens whose probability adds up to at least `top_p` (the most
    likely token is always kept), and draw from that filtered, tempered distribution $\pi$
    with the Gumbel-max trick, $x = \arg\max_v (\log \pi_v + g_v)$,
    $g_v = -\log(-\log u_v)$, $u_v \sim U(0, 1)$. temperature=0 is greedy: the argmax of
    the filtered logits, no random numbers drawn.

    The confidence is the model's own probability of the drawn token,
    $\mathrm{softmax}(\text{logits})_x$ at temperature 1 and unfiltered, whatever the
    temperature, top_k and top_p (LLaDA and Fast-dLLM rank by it). Under $\pi$ it would be
    1 for every token with top_k=1 and near 1 at a low temperature: no ranking at all.

    Why float64: Zheng et al. (2024) showed that Gumbel noise drawn in low precision cuts off
    the tail of the distribution (the largest noise a float32 uniform can give is small), which
    lowers the samples' diversity and so makes MDLM samples look better than they are. Its cost
    is bounded: the rows go FLOAT64_BUDGET bytes' worth at a time (V * 8 bytes per row; at
    least one row), each array of a chunk within the budget. On a CPU generator the chunks draw
    exactly the numbers of one big draw; on a CUDA generator (Philox) the numbers differ once a
    draw is split, which happens only past the budget (166 rows of a 50K vocabulary by default).
    """
    check_sampling(temperature, top_k, top_p)
    *lead, V = logits.shape
    rows = logits.reshape(-1, V)  # (N, V)
    tokens = torch.empty(rows.shape[0], dtype=torch.long, device=logits.device)  # (N,)
    confidence = torch.empty(rows.shape[0], dtype=torch.float64, device=logits.device)  # (N,)
    step = max(1, FLOAT64_BUDGET // (8 * V))  # rows per chunk
    for a in range(0, rows.shape[0], step):
        tokens[a : a + step], confidence[a : a + step] = _draw(rows[a : a + step], temperature, top_k, top_p,
                                                               generator)
    return tokens.view(lead), confidence.view(lead)


def _draw(logits, temperature, top_k, top_p, generator):
    """sample_tokens on one chunk of rows, logits (n, V): (tokens, confidence), each (n,). In place where it
    can be: besides the input, two float64 (n, V) arrays at a time (four briefly, for top_p's sort)."""
    scaled = logits.double()  # (n, V)
    log_norm = scaled.logsumexp(dim=-1, keepdim=True)  # (n, 1) $\log \sum_v e^{\ell_v}$, for the confidence
    if temperature > 0:
        scaled.div_(temperature)
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]  # (n, 1)
        scaled.masked_fill_(scaled < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_probs, order = scaled.softmax(dim=-1).sort(dim=-1, descending=True)  # (n, V)
        mass_before = sorted_probs.cumsum(dim=-1).sub_(sorted_probs)
        del sorted_probs
        scaled.masked_fill_(torch.zeros_like(order, dtype=torch.bool).scatter_(-1, order, mass_before >= top_p),
                            float("-inf"))
        del order, mass_before
    log_probs = scaled.log_softmax(dim=-1)  # (n, V)
    del scaled
    if temperature == 0:
        tokens = log_probs.argmax(dim=-1)
    else:
        gumbel = uniform(log_probs.shape, generator, log_probs.device).clamp_min_(torch.finfo(torch.float64).tiny)
        gumbel.log_().neg_().log_()  # $-g = \log(-\log u)$
        tokens = log_probs.sub_(gumbel).argmax(dim=-1)  # $\arg\max(\log\pi + g)$
    # $c = \mathrm{softmax}(\ell)_x = e^{\ell_x - \log \sum_v e^{\ell_v}}$: the unfiltered model at temperature 1
    return tokens, (logits.gather(-1, tokens.unsqueeze(-1)).double() - log_norm).squeeze(-1).exp()


def head_of(net) -> "Head | None":
    """The output head of a net that splits into `features(ids) -> (B, T, C)` and `head(h) -> logits` (the
    library's Transformer), as a Head whose width is the rows of its tied embedding (the padded vocabulary);
    None for a plain denoiser, whose logits come whole."""
    if not (callable(getattr(net, "features", None)) and callable(getattr(net, "head", None))):
        return None
    embed = getattr(net, "embed", None)
    return Head(net.head, embed.num_embeddings if isinstance(embed, torch.nn.Embedding) else net.cfg.vocab_size)


def _rows_per_chunk(width: int) -> int:
    """Rows of logits per chunk of sample_rows: within LOGITS_BUDGET at 4 bytes an entry (float32; bfloat16
    halves it), at least one, and a whole number of sample_tokens' float64 chunks when one fits: then the
    draw makes the very calls (and on any generator draws the very numbers) of sample_tokens on all rows."""
    rows = max(1, LOGITS_BUDGET // (4 * width))
    float64_rows = max(1, FLOAT64_BUDGET // (8 * width))
    return rows // float64_rows * float64_rows if rows >= float64_rows else rows


def sample_rows(rows, head=None, temperature=1.0, top_k=None, top_p=None, generator=None):
    """`sample_tokens(head.project(rows))`, without holding all the logits: `(tokens, confidence)`, each (N,).

    rows: hidden states (N, C) and head a `Head`, or, with head=None, logits (N, V) already computed
    (a plain denoiser), passed to sample_tokens as they are. The rows go a chunk at a time: the head's
    logits for the chunk, at most LOGITS_BUDGET bytes (`width` columns of 4 bytes per row; at least one
    row), are drawn from and dropped before the next chunk. Peak: the N * C hidden states, one chunk of
    logits, and sample_tokens' float64 arrays (each within FLOAT64_BUDGET). Same rows in the same order
    as one call on all the logits: the same random numbers on a CPU generator, and on any generator when
    the float64 chunk fits in the logits one (the defaults).
    """
    if head is None:
        return sample_tokens(rows, temperature, top_k, top_p, generator)
    check_sampling(temperature, top_k, top_p)
    n = rows.shape[0]
    tokens = torch.empty(n, dtype=torch.long, device=rows.device)  # (N,)
    confidence = torch.empty(n, dtype=torch.float64, device=rows.device)  # (N,)
    step = _rows_per_chunk(head.width)
    for a in range(0, n, step):
        logits = head.project(rows[a : a + step])  # (n, V): the only logits alive
        tokens[a : a + step], confidence[a : a + step] = sample_tokens(logits, temperature, top_k, top_p, generator)
        del logits
    return tokens, confidence

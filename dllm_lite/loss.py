r"""Training objectives and the likelihood bound, in nats per token.

**Diffusion.** The continuous-time negative ELBO of a masked diffusion model (MDLM eq. 10,
LLaDA eq. 3 for the linear schedule) is

$$ \mathcal{L} = \mathbb{E}_{t \sim U[0,1]}\; \mathbb{E}_{x_t \sim q(\cdot \mid x_0)}
   \Big[ w(t) \sum_{i:\, x_t^i = m} -\log p_\theta(x_0^i \mid x_t) \Big],
   \qquad w(t) = \frac{-\alpha'(t)}{1 - \alpha(t)} $$

an upper bound on $-\log p_\theta(x_0)$. Only masked positions contribute (SUBS: unmasked
ones are copied through and cost nothing). We report it per token, divided by the
sequence length L. A model that predicts the uniform distribution over the V real tokens
scores exactly $\log V$: at time t about $(1-\alpha)L$ tokens are masked, each costs
$\log V$, and $\int_0^1 -\alpha'(t)\,dt = 1$.

**Autoregressive.** The usual next-token cross-entropy, also in nats per token, after a
beginning-of-sequence token, so that it scores the same L positions as the bound and the
two can be compared on the same data.

**Answering prompts (SFT).** For a row [prompt, response, eot, padding] (see pairs.py) only the
response region, the positions from the prompt length P on, is masked and scored, and the bound
is divided by the region's length L - P instead of L (`sft_loss`, LLaDA sec. 2.3). The AR twin
scores the next-token loss on the answer alone, the response and its eot (`ar_sft_loss`).

**Any denoiser.** Everything here needs only `net(ids (B, L)) -> logits (B, L, V)` (the
contract `model.Denoiser` writes down); the library's Transformer also takes `only_at=` and
then runs its output head at the masked positions alone, which `masked_logits` uses.

References: Sahoo et al. 2024 (MDLM), Shi et al. 2024 (MD4), Nie et al. 2025 (LLaDA).
"""

import inspect
import math
from itertools import combinations

import torch
import torch.nn.functional as F

from .block import block_logits, block_times
from .corrupt import corrupt, get_schedule, sample_times

__all__ = ["diffusion_loss", "masked_logits", "masked_cross_entropy", "weigh", "ar_loss", "nll_bound", "exact_nelbo",
           "sft_loss", "ar_sft_loss", "response_mask", "answer_mask", "WEIGHTINGS"]

WEIGHTINGS = ("elbo", "mean")


def _offers_only_at(net) -> bool:
    """Does the net (or the module inside a DDP or torch.compile wrapper) take an `only_at` argument?"""
    while True:  # look through the wrappers: torch.compile keeps the module as ._orig_mod, DDP as .module
        if hasattr(net, "_orig_mod"):
            net = net._orig_mod
        elif isinstance(net, torch.nn.parallel.DistributedDataParallel):
            net = net.module
        else:
            break
    forward = getattr(net, "forward", net)
    try:
        return "only_at" in inspect.signature(forward).parameters
    except (TypeError, ValueError):  # a callable without a signature Python can read
        return False


def masked_logits(net, xt, is_masked, x0=None, block_size=None):
    """Logits (N, V) of the denoiser at the positions where is_masked (B, L) is True, row-major.

    Any denoiser works (the contract of `model.Denoiser`: ids (B, L) -> logits (B, L, V)).
    A net whose `forward` takes `only_at`, as `model.Transformer` does, runs its output head
    only at those positions; any other net is called plainly and its (B, L, V) logits are
    indexed here, with the same numbers. With block_size, the net is a block diffusion model
    and reads the clean x0 (B, L) beside x_t (`block.block_logits`).
    """
    if block_size is not None:
        return block_logits(net, xt, x0, block_size, only_at=is_masked)  # (N, V)
    logits = net(xt, only_at=is_masked) if _offers_only_at(net) else net(xt)
    if logits.dim() == 3:  # (B, L, V): every position came back
        logits = logits[is_masked]  # (N, V)
    return logits


def masked_cross_entropy(net, x0, is_masked, mask_id, block_size=None):
    r"""$-\log p_\theta(x_0^i \mid x_t)$ at the masked positions, (N,) in row-major order.

    x_t is x0 (B, L) with the positions of `is_masked` (B, L) replaced by the mask id; the
    logits come from `masked_logits`, so any denoiser works (block_size: a block diffusion one).
    """
    xt = torch.where(is_masked, torch.full_like(x0, mask_id), x0)  # (B, L)
    logits = masked_logits(net, xt, is_masked, x0, block_size)  # (N, V)
    return F.cross_entropy(logits.float(), x0[is_masked], reduction="none")  # (N,)


def weigh(ce, is_masked, t, schedule, weighting="elbo", n_masked=None, lengths=None):
    r"""Turn the masked cross-entropies ce (N,) of rows at times t (B,) into the training loss.

    t may also be (B, L), a time per token (block diffusion: each block's own time).
    elbo: $\frac{1}{BL} \sum_b w(t_b) \sum_{i \text{ masked}} ce_{b,i}$, the negative ELBO estimate;
    with lengths (B,), each row is divided by its own length instead of L (SFT: the response
    region's), $\frac{1}{B} \sum_b \frac{w(t_b)}{n_b} \sum_{i \text{ masked}} ce_{b,i}$.
    mean: $\sum ce / n_{masked}$, the average over masked tokens; `n_masked` defaults to
    is_masked.sum() (a data-parallel caller passes the global count over its rank count).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
    B, L = is_masked.shape
    if weighting == "mean":
        return ce.sum() / (is_masked.sum() if n_masked is None else n_masked).clamp(min=1)
    # $w(t_b)$ for every masked token, in the same row-major order as ce
    w = schedule.weight(t if t.dim() == 2 else t[:, None]).to(ce.dtype).expand(B, L)  # (B, L)
    if lengths is None:
        return (w[is_masked] * ce).sum() / (B * L)
    per_token = w / lengths.to(ce.dtype)[:, None]  # (B, L): $w(t_b) / n_b$
    return (per_token[is_masked] * ce).sum() / B


def response_mask(prompt_len, seq_len: int) -> torch.Tensor:
    """(B, L) bool: True on each row's response region, the positions from its prompt length on."""
    positions = torch.arange(seq_len, device=prompt_len.device)  # (L,)
    return positions[None, :] >= prompt_len[:, None]  # (B, L)


def answer_mask(prompt_len, answer_len, seq_len: int) -> torch.Tensor:
    """(B, L) bool: True on each row's answer, the response and its eot (neither prompt nor padding)."""
    positions = torch.arange(seq_len, device=prompt_len.device)[None, :]  # (1, L)
    return (positions >= prompt_len[:, None]) & (positions < (prompt_len + answer_len)[:, None])  # (B, L)


def sft_loss(net, x0, prompt_len, schedule, mask_id, generator=None, weighting="elbo", eps=1e-3):
    r"""The diffusion SFT loss of pair rows x0 (B, L) with prompts of prompt_len (B,) tokens (a scalar).

    The prompt is never masked; the response region (answer and eot padding) is masked at rate
    $1 - \alpha(t_b)$, one antithetic time per row, and
    $\frac{1}{B} \sum_b \frac{w(t_b)}{L - P_b} \sum_{i \ge P_b \text{ masked}} -\log p_\theta(x_0^{b,i} \mid x_t^b)$:
    the bound on the region's NLL given the prompt, per region token. weighting="mean" averages
    the masked cross-entropy over the masked region tokens instead.
    """
    schedule = get_schedule(schedule)
    B, L = x0.shape
    t = sample_times(B, antithetic=True, eps=eps, generator=generator, device=x0.device)  # (B,)
    _, is_masked = corrupt(x0, t, mask_id, schedule, generator=generator)  # (B, L)
    is_masked = is_masked & response_mask(prompt_len, L)  # the prompt stays clean
    ce = masked_cross_entropy(net, x0, is_masked, mask_id)  # (N,)
    return weigh(ce, is_masked, t, schedule, weighting, lengths=L - prompt_len)


def ar_sft_loss(net, x, prompt_len, answer_len, mask_id):
    r"""Next-token cross-entropy on the answers of pair rows x (B, L), per answer token (a scalar).

    $\sum_b \sum_{i \in a_b} -\log p_\theta(x^{b,i} \mid \text{bos}, x^{b,<i}) / \sum_b |a_b|$, with
    $a_b$ the answer (response and eot, `answer_mask`): the prompt is read, never scored, and
    the padding after the eot is never generated, so never scored either.
    """
    B, L = x.shape
    bos = torch.full_like(x[:, :1], mask_id)  # (B, 1)
    logits = net(torch.cat([bos, x[:, :-1]], dim=1))  # (B, L, V)
    ce = F.cross_entropy(logits.flatten(0, 1).float(), x.flatten(), reduction="none").view(B, L)  # (B, L)
    scored = answer_mask(prompt_len, answer_len, L)  # (B, L)
    return (ce * scored).sum() / scored.sum().clamp(min=1)


def diffusion_loss(net, x0, schedule, mask_id, generator=None, weighting="elbo", eps=1e-3, block_size=None):
    r"""A one-sample Monte Carlo estimate of the negative ELBO, in nats per token (a scalar).

    One antithetic time per row, $t_b \in [\varepsilon, 1]$, then
    $\frac{1}{B L} \sum_b w(t_b) \sum_{i \text{ masked}} -\log p_\theta(x_0^{b,i} \mid x_t^b)$.
    block_size=K: the block diffusion NELBO instead (block.py), one time per block of K tokens.

    weighting="mean" instead averages the cross-entropy over the masked tokens (no $w(t)$):
    not a bound, but lower variance at small batch sizes; evaluate with `nll_bound`.
    """
    schedule = get_schedule(schedule)
    t = _times(x0.shape[0], x0.shape[1], block_size, eps, generator, x0.device)  # (B,) or (B, L)
    _, is_masked = corrupt(x0, t, mask_id, schedule, generator=generator)  # (B, L)
    ce = masked_cross_entropy(net, x0, is_masked, mask_id, block_size)  # (N,)
    return weigh(ce, is_masked, t, schedule, weighting)


def _times(rows, seq_len, block_size, eps, generator, device):
    """Antithetic times: one per row (B,), or with block_size one per block, spread over its tokens (B, L)."""
    if block_size is None:
        return sample_times(rows, antithetic=True, eps=eps, generator=generator, device=device)
    return block_times(rows, seq_len, block_size, eps, generator, device)


def ar_loss(net, x, mask_id, per_row=False):
    r"""Next-token cross-entropy over all L tokens of each row of x (B, L), in nats per token.

    $\frac{1}{BL} \sum_{b,i} -\log p_\theta(x^{b,i} \mid \text{bos}, x^{b,<i})$: the network reads
    $[\text{bos}, x^0, \dots, x^{L-2}]$ and predicts $[x^0, \dots, x^{L-1}]$, so the first token of
    a block is scored too (from no context), over exactly the positions the diffusion bound
    covers. The beginning-of-sequence token is the mask id: a causal model never meets
    [MASK] otherwise, so that row of its embedding is free (MDLM's AR baseline prepends a
    BOS the same way). `sample.generate` starts a causal model from it too.
    per_row=True returns each row's loss (B,) instead of their mean, from the same one pass.
    """
    bos = torch.full_like(x[:, :1], mask_id)  # (B, 1)
    logits = net(torch.cat([bos, x[:, :-1]], dim=1))  # (B, L, V)
    if per_row:
        return F.cross_entropy(logits.float().transpose(1, 2), x, reduction="none").mean(dim=1)  # (B,)
    return F.cross_entropy(logits.flatten(0, 1).float(), x.flatten())


@torch.no_grad()
def nll_bound(net, x0, schedule, mask_id, n_samples=64, generator=None, batch_size=256, eps=1e-3,
              return_stderr=False, block_size=None, prompt_len=None, answer_len=None):
    r"""Estimate the NELBO (an upper bound on the NLL) of the sequences x0 (B, L), in nats per token.

    block_size=K: the block diffusion NELBO of a block model (block.py), a time per block.
    Each sequence gets `n_samples` antithetic times, so the estimate averages $B \cdot n$
    weighted masked cross-entropies; the rows are pushed through the network
    `batch_size` at a time. The bound does not depend on the schedule in expectation;
    the schedule only changes the variance. The interval $[0, \varepsilon)$ is left out,
    which moves the result by $O(\varepsilon)$ of a nat.
    With return_stderr=True, also returns the standard error of the mean, computed as if
    the samples were independent (antithetic ones vary less, so this is conservative).

    Pairs (pairs.py): with prompt_len (B,), each row's prompt is never masked and the result
    bounds the NLL of the response region given the prompt; it is then divided by the
    answer's length (response + eot) when answer_len (B,) is given, so that it reads in nats
    per answer token like `ar_sft_loss`, else by the region's length. Rows of different
    lengths are pooled as total nats over total tokens.
    """
    schedule = get_schedule(schedule)
    was_training = net.training
    net.eval()
    B, L = x0.shape
    rows = x0.repeat_interleave(n_samples, dim=0)  # (B n, L)
    t = torch.cat([_times(n_samples, L, block_size, eps, generator, x0.device) for _ in range(B)])  # (B n[, L])
    # what each sample's total is divided by: L, or for pairs the answer's (or the region's) length
    if prompt_len is None:
        region, lengths = torch.ones_like(rows, dtype=torch.bool), torch.full((B,), L, device=x0.device)
    else:
        region, lengths = response_mask(prompt_len, L), (L - prompt_len if answer_len is None else answer_len)
        region = region.repeat_interleave(n_samples, dim=0)  # (B n, L)
    lengths = lengths.to(x0.device).float().repeat_interleave(n_samples)  # (B n,)
    totals = []
    for start in range(0, rows.shape[0], batch_size):
        chunk, t_chunk = rows[start : start + batch_size], t[start : start + batch_size]
        _, is_masked = corrupt(chunk, t_chunk, mask_id, schedule, generator=generator)  # (b, L)
        is_masked = is_masked & region[start : start + batch_size]
        ce = masked_cross_entropy(net, chunk, is_masked, mask_id, block_size)  # (N,)
        weighted = torch.zeros(is_masked.shape, device=ce.device)  # (b, L)
        weighted[is_masked] = ce
        w = schedule.weight(t_chunk if t_chunk.dim() == 2 else t_chunk[:, None]).to(ce.device)  # (b, L) or (b, 1)
        totals.append((w * weighted).sum(dim=1))  # (b,) nats of each sample
    net.train(was_training)
    values = torch.cat(totals)  # (B n,)
    mean = (values.sum() / lengths.sum()).item()
    if not return_stderr:
        return mean
    # the standard error of a ratio of sums (the delta method); with equal lengths, std(values / L) / sqrt(n)
    spread = (values - mean * lengths).std().item() / lengths.mean().item()
    stderr = spread / math.sqrt(values.numel()) if values.numel() > 1 else float("inf")
    return mean, stderr


@torch.no_grad()
def exact_nelbo(net, x0, mask_id, block_size=None):
    r"""The continuous-time NELBO of one short sequence x0 (L,), exactly, in nats per token.

    Integrating over t in closed form leaves a sum over every non-empty mask set M
    (for the linear schedule $\int_0^1 t^{k-1}(1-t)^{L-k}\,dt = 1 / (k\binom{L}{k})$, and
    the bound is the same for every schedule):

    $$ \mathcal{L} = \frac{1}{L} \sum_{M \ne \emptyset} \frac{1}{|M| \binom{L}{|M|}}
       \sum_{i \in M} -\log p_\theta(x_0^i \mid x_0 \text{ with } M \text{ masked}) $$

    That is $2^L - 1$ network inputs: meant for L up to about 12 (teaching and tests).
    block_size=K: a block diffusion model's NELBO, the same sum for each block of K tokens
    given the clean blocks before it, with K in place of L inside ($L/K \cdot (2^K - 1)$ inputs).
    """
    L = x0.shape[0]
    K = L if block_size is None else block_size
    if K > 16:
        raise ValueError(f"exact_nelbo enumerates 2^{K} mask sets per block; {K} is too many (use nll_bound)")
    was_training = net.training
    net.eval()
    total = 0.0
    for first in range(0, L, K):  # one block (MDLM: the whole sequence) at a time
        for k in range(1, K + 1):
            sets = list(combinations(range(first, first + K), k))
            is_masked = torch.zeros(len(sets), L, dtype=torch.bool, device=x0.device)
            for row, positions in enumerate(sets):
                is_masked[row, list(positions)] = True
            clean = x0.expand(len(sets), L)
            xt = torch.where(is_masked, torch.full_like(is_masked, mask_id, dtype=x0.dtype), clean)
            logits = net(xt) if block_size is None else block_logits(net, xt, clean, K)  # (n_sets, L, V)
            nll = -logits.float().log_softmax(dim=-1).gather(-1, clean.unsqueeze(-1)).squeeze(-1)  # (n_sets, L)
            total += (nll * is_masked).sum().item() / (k * math.comb(K, k))
    net.train(was_training)
    return total / L

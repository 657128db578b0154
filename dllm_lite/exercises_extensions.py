r"""Checkers of exercises 09-10: block diffusion's attention mask and the prompt/response (SFT) loss.

    exercise             checker                   compared with
    09 block_mask        check_block_mask          block.block_attention_mask (BD3-LM's training pass)
    10 sft_loss          check_sft_loss            loss.weigh with lengths = L - prompt_len (LLaDA's SFT loss)

Students import them from `dllm_lite.exercises`, which describes how every checker works.

References: Arriola et al. 2025 (BD3-LM); Nie et al. 2025 (LLaDA), sec. 2.3 (SFT).
"""

import math

import torch

from . import block, loss
from .corrupt import get_schedule
from ._verdict import Wrong, call, checker, expect_tensor, rounded

__all__ = ["check_block_mask", "check_sft_loss"]


# ---- 09: block diffusion's attention mask ------------------------------------------------------

def _block_mask_mistakes(L, K):
    """[(mask, problem, hint)]: the classic wrong masks for seq_len L, block size K, each built on purpose."""
    block = torch.arange(L) // K
    same, before = block[:, None] == block[None, :], block[:, None] > block[None, :]
    none = torch.zeros(L, L, dtype=torch.bool)

    def quadrants(nn_, nc, cn, cc):
        return torch.cat([torch.cat([nn_, nc], 1), torch.cat([cn, cc], 1)], 0)

    edge = (torch.arange(L) + 1) // K  # block boundaries shifted by one position
    edge_same, edge_before = edge[:, None] == edge[None, :], edge[:, None] > edge[None, :]
    return [
        (quadrants(same, before | same, none, same | before), "noisy block b sees the clean copy of itself: the "
         "answer it must predict leaks in", "a noisy query sees clean keys of blocks strictly before its own: b(k) < b(q)"),
        (quadrants(same, ~same, none, same | before), "noisy block b sees clean blocks after it: the future leaks in",
         "a noisy query sees clean keys of earlier blocks only: b(k) < b(q)"),
        (quadrants(same, before, same, same | before), "the clean copy attends to noisy tokens",
         "clean queries see clean keys only: the bottom-left quarter (clean rows, noisy columns) is all False"),
        (quadrants(same, before, none, before), "clean block b does not see itself",
         "the clean copy is block-causal: a clean query sees clean keys with b(k) <= b(q), its own block included"),
        (quadrants(same & torch.ones(L, L, dtype=torch.bool).tril(), before, none, same | before),
         "inside its block the noisy copy is causal", "a noisy block is denoised all at once: within the block every "
         "position sees every other one, both ways (b(k) == b(q), no triangle)"),
        (quadrants(same, before, none, torch.ones(L, L, dtype=torch.bool).tril()), "the clean copy is causal token by "
         "token", "block-causal, not token-causal: a clean query sees its whole block, b(k) <= b(q)"),
        (quadrants(edge_same, edge_before, none, edge_same | edge_before), "the blocks' edges are off by one",
         "position i is in block i // block_size: positions 0 .. block_size - 1 form block 0"),
    ]


def _first_wrong_cell(got, expected, L, K):
    """((expected, got), others): the first (query, key) cell where the masks differ, in words, and how many more do."""
    wrong = (got != expected).nonzero().tolist()
    q, k = wrong[0]
    query = f"query {q} ({'noisy x_t' if q < L else 'clean x_0'}, block {q % L // K})"
    key = f"key {k} ({'noisy x_t' if k < L else 'clean x_0'}, block {k % L // K})"

    def sees(visible):
        return f"{query} {'sees' if visible else 'may not see'} {key}: mask[{q}, {k}] = {visible}"

    others = f" (and {len(wrong) - 1} more cell{'s' if len(wrong) > 2 else ''})" if len(wrong) > 1 else ""
    return (sees(bool(expected[q, k])), sees(bool(got[q, k]))), others


@checker
def check_block_mask(fn):
    """Exercise 09, `block_mask(seq_len, block_size)`: block diffusion's (2L, 2L) attention pattern over [x_t, x_0]."""
    for L, K in ((8, 2), (12, 4), (6, 3), (6, 6), (5, 1)):
        on = f"seq_len = {L}, block_size = {K} (rows 0..{L - 1} noisy, {L}..{2 * L - 1} clean)"
        got = call(fn, on, L, K)
        expect_tensor(got, (2 * L, 2 * L), on, "the mask", torch.bool)
        expected = block.block_attention_mask(L, K)
        if torch.equal(got, expected):
            continue
        if torch.equal(got, expected.T):
            raise Wrong("rows and columns are swapped", on, "mask[q, k]: row q is the query, column k the key",
                        "the transpose", "build it as visible[query, key]")
        cell, others = _first_wrong_cell(got, expected, L, K)
        for wrong, problem, hint in _block_mask_mistakes(L, K):
            if torch.equal(got, wrong):
                raise Wrong(problem, on, cell[0], cell[1] + others, hint)
        raise Wrong("a cell of the mask is wrong", on, cell[0], cell[1] + others,
                    "noisy q: noisy k of its own block, clean k of blocks before; clean q: clean k of blocks up to its own")
    return "noisy blocks see themselves and the clean blocks before them; the clean copy is block-causal"


# ---- 10: the diffusion SFT loss -------------------------------------------------------------

def _sft_batches():
    """[(ce, is_masked, t, prompt_len, on)]: the seeded inputs of check_sft_loss, the richest batch first.

    is_masked is drawn over whole rows, prompts included, as `corrupt.corrupt` draws it. The first
    batch is shaped so that every classic mistake moves the loss: a row without a prompt, a row
    whose region holds no mask while its prompt does, and masks on the first and the last position
    of several regions. The last batch has masks in its prompts only: its loss is exactly 0.
    """
    g = torch.Generator().manual_seed(10)
    batches = []
    for prompt_len, t in (([5, 0, 9, 3, 12, 7], [0.9, 0.35, 0.6, 0.15, 0.75, 0.5]),
                          ([20, 1, 11, 0, 6], [0.3, 0.8, 0.55, 0.95, 0.2])):
        prompt_len, t = torch.tensor(prompt_len), torch.tensor(t)  # (B,), (B,)
        B, L = len(prompt_len), 16 if len(prompt_len) == 6 else 24
        is_masked = torch.rand(B, L, generator=g) < t[:, None]  # (B, L) the whole row, prompt included
        rows = torch.arange(B)
        is_masked[rows, prompt_len] = rows % 2 == 0  # the first region position: masked in every other row
        is_masked[:, -1] = rows % 3 != 1  # the last position (eot padding) in two rows of three
        if B == 6:  # row 3: masks in its prompt, none in its region
            is_masked[3, :3], is_masked[3, 3:] = True, False
        ce = 0.2 + 3.8 * torch.rand(B, L, generator=g)  # (B, L) in [0.2, 4]
        batches.append((ce, is_masked, t, prompt_len, _sft_on(ce, is_masked, t, prompt_len)))
    prompt_len, L = torch.tensor([4, 2, 6]), 8
    is_masked = torch.arange(L)[None, :] < prompt_len[:, None]  # every prompt position masked, no region one
    ce, t = 0.2 + 3.8 * torch.rand(3, L, generator=g), torch.tensor([0.4, 0.7, 0.25])
    batches.append((ce, is_masked, t, prompt_len, _sft_on(ce, is_masked, t, prompt_len)))
    return batches


def _sft_on(ce, is_masked, t, prompt_len):
    """The `input:` line of a verdict: what the batch holds."""
    B, L = ce.shape
    region = loss.response_mask(prompt_len, L)
    empty = [b for b in range(B) if not (is_masked & region)[b].any()]
    rows = (f"; row {empty[0]} has no mask in its region" if len(empty) == 1
            else f"; rows {empty} have no mask in their regions")
    return (f"ce {tuple(ce.shape)} random in [0.2, 4], prompt_len = {prompt_len.tolist()}, t = {rounded(t)}, "
            f"is_masked over whole rows: {int(is_masked.sum())} of {B * L} masked, {int((is_masked & ~region).sum())} "
            f"of them in prompts" + (rows if empty else ""))


def _sft_mistakes(ce, is_masked, t, prompt_len):
    """[(value, problem, hint)]: the classic wrong SFT losses on these inputs, each computed on purpose (float64)."""
    B, L = ce.shape
    pos = torch.arange(L)[None, :]  # (1, L)
    region = pos >= prompt_len[:, None]  # (B, L)
    n, w, ce = (L - prompt_len).double(), 1.0 / t.double(), ce.double()  # (B,), (B,), (B, L)

    def row_sums(where):
        return (ce * where).sum(dim=1)  # (B,)

    scored = is_masked & region
    s, counts = row_sums(scored), scored.sum(dim=1).double()  # (B,), (B,)
    keep = "keep only masked positions i >= prompt_len[b]: is_masked & (torch.arange(L) >= prompt_len[:, None])"
    per_region = "divide row b by its region length L - prompt_len[b]"
    return [
        ((w * row_sums(is_masked) / n).mean(), "prompt positions are scored: the prompt is given, never masked", keep),
        ((w * row_sums(is_masked)).sum() / (B * L),
         "this is exercise 04's loss over whole rows: the prompt is scored and every row divided by L",
         keep + ", and " + per_region),
        ((w * s / L).mean(), "each row is divided by L, the whole row's length",
         per_region + ": the prompt is not part of what is scored"),
        ((w * s / counts.clamp(min=1)).mean(), "each row is divided by its number of masked tokens",
         per_region + ", however many of its positions are masked (the weight 1/t already accounts for that)"),
        (s.sum() / counts.sum().clamp(min=1), "this is the plain mean cross-entropy over the masked region tokens",
         "weight each row by w(t) = 1/t and " + per_region + "; then the mean over rows"),
        ((s / n).mean(), "the weight w(t) = 1/t is missing", "multiply row b's sum by 1 / t[b]"),
        ((t.double() * s / n).mean(), "the rows are weighted by t, not by w(t) = 1/t",
         "for the linear schedule w(t) = -alpha'(t) / (1 - alpha(t)) = 1/t (exercise 02): divide by t[b]"),
        ((w * s / n).sum(), "the rows are summed, not averaged", "take the mean over the B rows (divide by B)"),
        ((w * s).sum() / n.sum(), "the batch is divided by its total region length",
         per_region + " first, then take the mean over rows"),
        ((w * row_sums(scored & (pos < L - 1)) / n).mean(), "the region stops before the row's end",
         "the region runs to the last position, L - 1: the eot padding is scored too, it is how the model learns to "
         "stop (an off-by-one in a range or slice?)"),
        ((w * row_sums(is_masked & (pos > prompt_len[:, None])) / n).mean(), "the region starts one position late",
         "the first response token sits at position prompt_len[b]: keep i >= prompt_len[b], not i > prompt_len[b]"),
    ]


_BROADCAST_HINT = ("keep every per-row quantity one shape, (B,): sum(dim=1) without keepdim=True, t and prompt_len "
                   "as given; print(x.shape) after each line")


def _sft_broadcast_mistakes(ce, is_masked, t, prompt_len):
    """[(value, which factors)]: the loss when some per-row factors are (B, 1) and the others (B,), then .mean()
    (or .sum() / B) of the (B, B) table: the mean of a product of an i-factor and a j-factor is the product of means."""
    B, L = ce.shape
    scored = is_masked & loss.response_mask(prompt_len, L)  # (B, L)
    factors = {"the row sums": (ce.double() * scored).sum(dim=1), "1 / t": 1.0 / t.double(),
               "1 / (L - prompt_len)": 1.0 / (L - prompt_len).double()}  # each (B,)
    found = []
    for columns in range(1, 2 ** len(factors) - 1):  # which factors are (B, 1): not none, not all
        as_column = [name for i, name in enumerate(factors) if columns >> i & 1]
        column, row = torch.ones(B, dtype=torch.float64), torch.ones(B, dtype=torch.float64)  # (B,) each
        for name, value in factors.items():
            if name in as_column:
                column = column * value
            else:
                row = row * value
        mean = column.mean() * row.mean()  # (B, B).mean()
        found += [(mean, " and ".join(as_column)), (mean * B, " and ".join(as_column))]  # .mean(), .sum() / B
    return found


def _rows_right_alone(fn, ce, is_masked, t, prompt_len) -> bool:
    """True when fn gives every row's own loss on that row alone (a batch of one), so the batch goes wrong by mixing rows."""
    B, L = ce.shape
    for b in range(B):
        one = slice(b, b + 1)
        scored = is_masked[one] & loss.response_mask(prompt_len[one], L)  # (1, L)
        right = float((ce[one].double() * scored).sum() / (t[b].double() * (L - prompt_len[b])))
        try:
            got = fn(ce[one].clone(), is_masked[one].clone(), t[one].clone(), prompt_len[one].clone())
            if not math.isclose(float(torch.as_tensor(got).detach().reshape(-1)[0]), right, rel_tol=1e-4, abs_tol=1e-6):
                return False
        except Exception:
            return False
    return B > 1


@checker
def check_sft_loss(fn):
    r"""Exercise 10, `sft_loss(ce, is_masked, t, prompt_len)`: the diffusion SFT loss from per-position cross-entropies.

    $\frac{1}{B} \sum_b \frac{1/t_b}{L - P_b} \sum_{i \ge P_b \text{ masked}} ce_{b,i}$, compared with
    `loss.weigh(..., lengths=L - prompt_len)` on three seeded batches (prompt lengths from 0 up, rows with
    nothing masked in their region, one batch masked in its prompts only).
    """
    for index, (ce, is_masked, t, prompt_len, on) in enumerate(_sft_batches()):
        B, L = ce.shape
        scored = is_masked & loss.response_mask(prompt_len, L)  # (B, L)
        expected = loss.weigh(ce.double()[scored], scored, t.double(), get_schedule("linear"),
                              lengths=L - prompt_len).item()
        ce_in = ce.clone().requires_grad_(index == 0)  # the first batch also checks that a gradient flows
        got = call(fn, on, ce_in, is_masked.clone(), t.clone(), prompt_len.clone())
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (B, B) and B > 1:
            raise Wrong(f"the loss has shape ({B}, {B}): a (B, 1) tensor met a (B,) one and broadcasting made a "
                        "table of every row against every row", on, "a 0-d tensor (the mean of B per-row losses)",
                        f"shape {tuple(got.shape)}", _BROADCAST_HINT)
        if not (isinstance(got, torch.Tensor) and got.numel() == 1):
            raise Wrong("return the loss as a one-number tensor", on, "a 0-d tensor",
                        repr(got)[:80] if not isinstance(got, torch.Tensor) else f"shape {tuple(got.shape)}",
                        "reduce to one number with tensor operations, e.g. (...).mean(), not float() or .item()")
        if index == 0 and not got.requires_grad:
            raise Wrong("no gradient flows from the loss back to ce", on, "a tensor that training can .backward()",
                        "a tensor cut off from ce", "compute it from ce with tensor operations: no .item(), float(), "
                        "torch.tensor(...) or torch.no_grad() on the way")
        value = float(got.detach())
        if math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-6):
            continue
        if math.isnan(value):
            raise Wrong("the loss is NaN", on, f"{expected:.6f}", "nan", "a row with no mask in its region adds 0: "
                        "do not divide by its number of masked tokens, divide by its region length L - prompt_len[b]")
        for wrong, problem, hint in _sft_mistakes(ce, is_masked, t, prompt_len):
            if math.isclose(value, float(wrong), rel_tol=1e-4, abs_tol=1e-6):
                raise Wrong(problem, on, f"{expected:.6f}", f"{value:.6f}", hint)
        for wrong, columns in _sft_broadcast_mistakes(ce, is_masked, t, prompt_len):
            if math.isclose(value, float(wrong), rel_tol=1e-4, abs_tol=1e-6):
                raise Wrong(f"a shape mistake: {columns} of shape (B, 1) met the rest of shape (B,), so broadcasting "
                            f"made a ({B}, {B}) table of every row against every row before the mean", on,
                            f"{expected:.6f}, the mean of B = {B} per-row losses, each factor of shape ({B},)",
                            f"{value:.6f}, from a ({B}, {B}) table", _BROADCAST_HINT)
        if _rows_right_alone(fn, ce, is_masked, t, prompt_len):
            raise Wrong("each row alone gives the right loss, the whole batch does not: the rows get mixed", on,
                        f"{expected:.6f} (and each row's own loss when called on that row alone)", f"{value:.6f}",
                        "a (B, 1) tensor meeting a (B,) one broadcasts to (B, B); a value taken from one row "
                        "(prompt_len[0], t[0]) is used for all; " + _BROADCAST_HINT)
        raise Wrong("the loss value is wrong", on, f"{expected:.6f}", f"{value:.6f}",
                    "for each row b: the sum of ce over masked positions i >= prompt_len[b], times 1 / t[b], "
                    "divided by L - prompt_len[b]; then the mean over rows")
    return ("the prompt is never scored; each row's masked response region, eot padding included, is weighted by 1/t "
            "and divided by its length L - prompt_len; then the mean over rows")

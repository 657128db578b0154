r"""Checkers of exercises 05-08 and 11: sampling, one reverse step at a time.

    exercise             checker                   compared with
    05 ancestral_step    check_ancestral_step      sample.reveal_probability, the logits' softmax
    06 select_most_conf. check_confidence_select   sample.select_most_confident
    07 reveal_counts     check_reveal_counts       the rules sample.reveal_counts obeys (linear)
    08 infill            check_infill              sample.generate with the same seed
    11 threshold_reveal  check_threshold_reveal    sample.threshold_reveal (Fast-dLLM's parallel rule)

Students import them from `dllm_lite.exercises`, which describes how every checker works.

References: Sahoo et al. 2024 (MDLM), sec. 3; Nie et al. 2025 (LLaDA), sec. 2.4; Wu et al. 2025 (Fast-dLLM),
sec. 3.3 (threshold decoding).
"""

import torch

from . import sample
from .corrupt import get_schedule
from .model import ModelConfig, Transformer
from .tokenize import CharTokenizer
from ._verdict import Wrong, call, checker, expect_tensor, near, rounded

__all__ = ["check_ancestral_step", "check_confidence_select", "check_reveal_counts", "check_infill",
           "check_threshold_reveal"]


# ---- 05: the ancestral step ------------------------------------------------------------------

@checker
def check_ancestral_step(fn):
    r"""Exercise 05, `ancestral_step(x, logits, mask_id, t, s, alpha)`: one MDLM reverse step.

    Each masked token is revealed with probability $\frac{\alpha(s)-\alpha(t)}{1-\alpha(t)}$ (checked against
    `sample.reveal_probability`), its value drawn from softmax(logits); revealed tokens stay.
    """
    B, T, V, tol = 4, 20_000, 5, 0.025  # ~40,000 masks, ~20,000 per parity: standard errors <= 0.0036
    mask_id = V - 1
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05, 0.0], [0.05, 0.15, 0.3, 0.5, 0.0]])  # even, odd positions
    logits = probs.log()[torch.arange(T) % 2].expand(B, T, V)  # (B, T, V), -inf at the mask (SUBS)
    x = torch.randint(0, mask_id, (B, T))
    x[torch.rand(B, T) < 0.5] = mask_id
    was_masked = x == mask_id  # (B, T)
    for name, t, s in (("linear", 1.0, 0.9), ("linear", 0.6, 0.3), ("cosine", 0.8, 0.5), ("cosine", 0.25, 0.0)):
        schedule = get_schedule(name)
        on = f"x {tuple(x.shape)}, about half masked (mask_id = {mask_id}), t = {t}, s = {s}, alpha = {name}"
        new = call(fn, on, x.clone(), logits.clone(), mask_id, t, s, schedule.alpha)
        expect_tensor(new, x.shape, on, "the new x", x.dtype)
        changed = (new != x) & ~was_masked
        if changed.any():
            b, i = changed.nonzero()[0].tolist()
            raise Wrong(f"{int(changed.sum())} already revealed tokens changed, e.g. at ({b}, {i})", on,
                        f"{int(x[b, i])} kept", int(new[b, i]),
                        "only masked positions may change: torch.where(reveal & (x == mask_id), sampled, x)")
        p = float(sample.reveal_probability(schedule, t, s))
        rate = ((new != mask_id) & was_masked).sum().item() / was_masked.sum().item()
        if (rate != 1.0) if p == 1.0 else not near(rate, p, tol):
            a_t, a_s = schedule.alpha(torch.tensor(t)).item(), schedule.alpha(torch.tensor(s)).item()
            if rate == 0.0:
                hint = "nothing was revealed: is your probability negative? s < t, so alpha(s) > alpha(t)"
            elif near(rate, a_s - a_t, tol):
                hint = "that is alpha(s) - alpha(t): divide by 1 - alpha(t), the share masked at time t"
            else:
                hint = "reveal each masked token independently with probability (alpha(s) - alpha(t)) / (1 - alpha(t))"
            raise Wrong("the wrong share of masked tokens was revealed", on,
                        f"{p:.1%}" + ("" if p == 1.0 else f" within ±{tol:.1%}"), f"{rate:.1%}", hint)
        if p == 1.0:  # every mask revealed: the values must follow softmax(logits), position by position
            for parity in (0, 1):
                values = new[:, parity::2][was_masked[:, parity::2]]
                freq = torch.bincount(values, minlength=V).double() / values.numel()  # (V,)
                if not torch.allclose(freq, probs[parity].double(), atol=tol):
                    raise Wrong(f"revealed values do not follow softmax(logits) at {('even', 'odd')[parity]} positions",
                                on, rounded(probs[parity]), rounded(freq),
                                "sample each value from its own softmax(logits) (torch.multinomial or "
                                "torch.distributions.Categorical), do not take the argmax")
    return "only masks change, at rate (alpha(s) - alpha(t)) / (1 - alpha(t)), with values drawn from the logits"


# ---- 06: confidence selection -----------------------------------------------------------------

@checker
def check_confidence_select(fn):
    """Exercise 06, `select_most_confident(confidence, is_masked, k)`: the k most confident masked positions."""
    B, T = 4, 12
    confidence = torch.rand(B, T, dtype=torch.float64)  # (B, T), no ties
    n_masked = [2, 5, 7, 9]  # row 0 holds fewer masks than k = 3
    is_masked = torch.zeros(B, T, dtype=torch.bool)
    for row, n in enumerate(n_masked):
        is_masked[row, torch.randperm(T)[:n]] = True
    confidence[~is_masked] += 1.0  # revealed tokens often look confident: they must still never be picked
    for k in (3, 1, 0, 6):
        on = f"confidence {tuple(confidence.shape)} random, rows with {n_masked} masked positions, k = {k}"
        got = call(fn, on, confidence.clone(), is_masked.clone(), k)
        expect_tensor(got, is_masked.shape, on, "the selection", torch.bool)
        if (got & ~is_masked).any():
            b, i = (got & ~is_masked).nonzero()[0].tolist()
            raise Wrong(f"position ({b}, {i}) is not masked but was selected", on, "masked positions only",
                        f"({b}, {i}), confidence {confidence[b, i].item():.3f}",
                        "give unmasked positions confidence -inf before topk, and keep `& is_masked` at the end "
                        "(a row may hold fewer masks than k)")
        expected = sample.select_most_confident(confidence, is_masked, k)  # (B, T)
        for row in range(B):
            if not torch.equal(got[row], expected[row]):
                raise Wrong(f"row {row} selected the wrong positions", on,
                            expected[row].nonzero().flatten().tolist(), got[row].nonzero().flatten().tolist(),
                            f"take the min(k, number of masked) = {min(k, n_masked[row])} masked positions "
                            "with the highest confidence")
    return "selects the k most confident masked positions of each row (all of them when fewer), never unmasked ones"


# ---- 07: how many tokens per step -----------------------------------------------------------------

@checker
def check_reveal_counts(fn):
    """Exercise 07, `reveal_counts(n_masked, steps)`: `steps` counts, as equal as possible, summing to n_masked."""
    for n, steps in ((12, 4), (10, 4), (100, 7), (3, 5), (7, 1), (0, 3), (1, 1), (5, 5), (64, 63)):
        on = f"n_masked = {n}, steps = {steps}"
        got = call(fn, on, n, steps)
        example = sample.reveal_counts(n, steps)
        try:
            counts = [int(c) for c in got]
        except (TypeError, ValueError):
            raise Wrong("return a list of ints", on, example, repr(got)[:80]) from None
        if len(counts) != steps:
            raise Wrong(f"{len(counts)} counts for {steps} steps", on, f"{steps} counts, e.g. {example}", counts,
                        "one count per step: a list of length steps (check range() bounds for an off-by-one)")
        if sum(counts) != n:
            raise Wrong(f"the counts add up to {sum(counts)}, not n_masked = {n}", on, f"sum {n}, e.g. {example}",
                        counts, "n // steps per step leaves n % steps tokens: give one extra to that many steps")
        if min(counts) < 0 or max(counts) - min(counts) > 1:
            raise Wrong("the counts are not as equal as possible (linear schedule)", on,
                        f"counts that differ by at most 1, e.g. {example}", counts,
                        "divmod(n_masked, steps) gives the base count and how many steps get one more")
    return "steps counts, summing to n_masked, as equal as possible (also for n < steps and n = 0)"


# ---- 08: infilling ------------------------------------------------------------------------------

@checker
def check_infill(fn):
    """Exercise 08, `infill(net, tokenizer, left, right, n_blank, steps, generator)` with `sample.generate`."""
    # no end-of-text id: a blank filled with it would decode to 13 characters and break the length check
    tok = CharTokenizer(sorted(set("abcdefghijklmnopqrstuvwxyz .,")), with_eot=False)
    net = Transformer(ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=32, seq_len=40)).eval()
    for left, right, n_blank, steps in (("the cat sat ", " the mat.", 6, 3), ("", " end", 3, 5)):
        on = f"left = {left!r}, right = {right!r}, n_blank = {n_blank}, steps = {steps}, a tiny char-level Transformer"
        got = call(fn, on, net, tok, left, right, n_blank, steps, torch.Generator().manual_seed(7))
        prompt = tok.encode(left) + [tok.mask_id] * n_blank + tok.encode(right)
        ids = sample.generate(net, mask_id=tok.mask_id, length=0, steps=steps, prompt=prompt,
                              generator=torch.Generator().manual_seed(7))
        expected = tok.decode(ids[0])
        if not isinstance(got, str):
            raise Wrong("return the decoded text (a str)", on, repr(expected), type(got).__name__)
        if "[MASK]" in got:
            raise Wrong("the text still holds masks", on, repr(expected), repr(got),
                        "let sample.generate fill them: length=0, the masks inside the prompt")
        if not (got.startswith(left) and got.endswith(right) and len(got) == len(left) + n_blank + len(right)):
            raise Wrong("the text is not left + n_blank characters + right", on, repr(expected), repr(got),
                        "prompt = encode(left) + [mask_id] * n_blank + encode(right), generated with length=0")
        if got != expected:
            raise Wrong("the blanks hold different characters than sample.generate with the same seed", on,
                        repr(expected), repr(got), "call sample.generate(net, mask_id=..., length=0, steps=steps, "
                        "prompt=..., generator=generator) with the default strategy and decode row 0")
    return "the blanks between left and right are filled by sample.generate, the rest of the text is kept"


# ---- 11: the threshold rule ----------------------------------------------------------------------

@checker
def check_threshold_reveal(fn):
    """Exercise 11, `threshold_reveal(confidence, is_masked, threshold)`: reveal every masked position above
    the threshold, and at least the most confident masked one per row that has a mask."""
    confidence = torch.tensor([[0.97, 0.30, 0.92, 0.60, 0.99, 0.10],   # two masked positions above 0.9
                               [0.40, 0.85, 0.20, 0.99, 0.55, 0.70],   # none masked above 0.9; 0.99 is unmasked
                               [0.95, 0.91, 0.99, 0.93, 0.96, 0.98],   # nothing masked: reveal nothing
                               [0.10, 0.91, 0.92, 0.93, 0.94, 0.95]], dtype=torch.float64)  # all masked, 5 above
    is_masked = torch.tensor([[1, 1, 1, 0, 0, 1], [1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]],
                             dtype=torch.bool)
    for threshold in (0.9, 0.5, 0.999):
        on = f"confidence {confidence.tolist()}, is_masked {is_masked.int().tolist()}, threshold = {threshold}"
        got = call(fn, on, confidence.clone(), is_masked.clone(), threshold)
        expect_tensor(got, is_masked.shape, on, "the positions to reveal", torch.bool)
        if (got & ~is_masked).any():
            b, i = (got & ~is_masked).nonzero()[0].tolist()
            raise Wrong(f"position ({b}, {i}) is already revealed but was chosen again", on, "masked positions only",
                        f"({b}, {i}), confidence {confidence[b, i].item():.2f}",
                        "keep `& is_masked` on both parts: the threshold test and the most confident position")
        expected = sample.threshold_reveal(confidence, is_masked, threshold)  # (B, T)
        for row in range(confidence.shape[0]):
            if torch.equal(got[row], expected[row]):
                continue
            want, have = expected[row].nonzero().flatten().tolist(), got[row].nonzero().flatten().tolist()
            if is_masked[row].any() and not got[row].any():
                hint = ("no masked position of this row is above the threshold, yet each call must reveal one, or "
                        "the sampler calls the network again and again without progress: add the most confident "
                        "masked position (sample.select_most_confident(confidence, is_masked, 1))")
            elif len(have) < len(want):
                hint = (f"every masked position with confidence > {threshold} is revealed in the same call, not "
                        "only the best one")
            else:
                hint = (f"reveal a masked position only if its confidence is above {threshold} (strictly), or if it "
                        "is the most confident masked position of its row")
            raise Wrong(f"row {row} revealed the wrong positions", on, want, have, hint)
    return ("reveals every masked position above the threshold, and at least the most confident masked one in each "
            "row that still has a mask: every call makes progress")

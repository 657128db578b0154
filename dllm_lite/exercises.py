r"""Checkers for the course exercises in `exercises/`: is the student's function right?

Each `check_*` takes the student's function, runs it beside the library's own code on
seeded random inputs, prints a verdict and returns True or False. A failure names what
was wrong, on which input, what was expected and what came back, and gives a hint.
A checker never raises: a notebook that still holds its `raise NotImplementedError`
stub runs from top to bottom and says "not implemented yet".

    exercise             checker                   compared with
    01 corrupt           check_corrupt             corrupt.corrupt (mask rate 1 - alpha(t))
    02 elbo_weight       check_elbo_weight         corrupt.Schedule.weight
    03 subs_logits       check_subs                the SUBS rules (mask never predicted, copy-through)
    04 diffusion_loss    check_diffusion_loss      loss.diffusion_loss
    05 ancestral_step    check_ancestral_step      sample.reveal_probability, the logits' softmax
    06 select_most_conf. check_confidence_select   sample.select_most_confident
    07 reveal_counts     check_reveal_counts       the rules sample.reveal_counts obeys (linear)
    08 infill            check_infill              sample.generate with the same seed
    09 block_mask        check_block_mask          block.block_attention_mask (BD3-LM's training pass)
    10 sft_loss          check_sft_loss            loss.weigh with lengths = L - prompt_len (LLaDA's SFT loss)

Statistical checks (mask rates, reveal rates, token frequencies) draw enough samples
that a right answer lands within 5 standard errors of its target while the classic
mistakes miss by many; the random state is seeded and restored, so verdicts never change.

References: Sahoo et al. 2024 (MDLM), sec. 3; Nie et al. 2025 (LLaDA), sec. 2.3 (SFT) and 2.4.
"""

import math

import torch
import torch.nn.functional as F

from . import block, loss, sample
from .corrupt import Schedule, corrupt, get_schedule, sample_times
from .model import ModelConfig, Transformer
from .tokenize import CharTokenizer
from ._verdict import Wrong, call, checker, expect_tensor, near, rounded

__all__ = [
    "check_corrupt", "check_elbo_weight", "check_subs", "check_diffusion_loss",
    "check_ancestral_step", "check_confidence_select", "check_reveal_counts", "check_infill", "check_block_mask",
    "check_sft_loss",
]


# ---- 01: the forward process ----------------------------------------------------------

@checker
def check_corrupt(fn):
    r"""Exercise 01, `corrupt(x0, t, mask_id, alpha) -> (xt, is_masked)`: mask each token w.p. $1 - \alpha(t)$."""
    mask_id, T, tol = 50, 10_000, 0.03  # standard error of a rate <= 0.005: tol is 6 of them
    times = [0.2, 0.05, 0.0, 0.4, 0.4, 0.6, 0.8, 0.95, 1.0]  # rows 3 and 4 share t
    for name in ("linear", "cosine"):
        schedule = get_schedule(name)
        t, x0 = torch.tensor(times), torch.randint(0, mask_id, (len(times), T))  # (B,), (B, T)
        on = f"x0 {tuple(x0.shape)} random ids < mask_id = {mask_id}, t = {times}, alpha = the {name} schedule"
        x0_in = x0.clone()
        out = call(fn, on, x0_in, t.clone(), mask_id, schedule.alpha)
        if not torch.equal(x0_in, x0):
            raise Wrong("x0 was changed in place", on, "x0 left as it was", "masks written into x0",
                        "the loss still needs the clean tokens as targets: build xt with torch.where")
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Wrong("return a pair: xt, is_masked", on, "(xt, is_masked)", type(out).__name__)
        xt, is_masked = out
        expect_tensor(xt, x0.shape, on, "xt")
        expect_tensor(is_masked, x0.shape, on, "is_masked", torch.bool)
        if not torch.equal(xt[is_masked], torch.full_like(xt[is_masked], mask_id)):
            raise Wrong("xt is not mask_id at every position where is_masked is True", on,
                        hint="xt = torch.where(is_masked, mask_id, x0)")
        if not torch.equal(xt[~is_masked], x0[~is_masked]):
            raise Wrong("xt differs from x0 at positions that are not masked", on,
                        hint="unmasked tokens are copied unchanged from x0")
        alpha = schedule.alpha(t)  # (B,)
        rates = is_masked.float().mean(dim=1)  # (B,)
        for row, (ti, a, rate) in enumerate(zip(times, alpha.tolist(), rates.tolist())):
            target = 1.0 - a
            exact = target in (0.0, 1.0)  # t = 0 masks nothing, t = 1 masks everything
            if (rate != target) if exact else not near(rate, target, tol):
                if rates.min() == rates.max() and rate in (0.0, 1.0):
                    what = "nothing" if rate == 0 else "everything"
                    hint = f"{what} was masked: compare torch.rand with 1 - alpha(t)"
                elif rates.max() - rates.min() <= 2 * tol:
                    hint = "every row masks the same share, but each row has its own t: reshape t to (B, 1)"
                elif near(rate, a, tol):
                    hint = "that is alpha(t), the share that stays clean: mask where a uniform number < 1 - alpha(t)"
                else:
                    hint = "mask where a uniform number < 1 - alpha(t), with t reshaped to (B, 1) to broadcast per row"
                want = f"{target:.1%} masked" + ("" if exact else f" (1 - alpha(t)), within ±{tol:.0%}")
                raise Wrong(f"row {row} (t = {ti}) masks the wrong share of its tokens", on, want, f"{rate:.1%}", hint)
        halves = is_masked[3].view(2, -1).float().mean(dim=1)  # (2,) first and second half of row 3
        if not all(near(h, 1.0 - alpha[3].item(), tol) for h in halves.tolist()):
            raise Wrong("the masked positions are not spread evenly along the row", on,
                        f"both halves of row 3 about {1 - alpha[3].item():.1%} masked",
                        [f"{h:.1%}" for h in halves.tolist()], "draw one independent uniform number per token")
        if torch.equal(is_masked[3], is_masked[4]):
            raise Wrong("rows 3 and 4 (the same t) got exactly the same mask", on, "independent masks", "identical",
                        "draw fresh random numbers for every row and every token: torch.rand(x0.shape)")
    return "every row masks 1 - alpha(t) of its tokens, independently; the rest of x0 is kept (linear, cosine)"


# ---- 02: the ELBO weight ----------------------------------------------------------------

@checker
def check_elbo_weight(fn):
    r"""Exercise 02, `elbo_weight(alpha, alpha_prime, t)`: $w(t) = -\alpha'(t) / (1 - \alpha(t))$."""
    t = torch.linspace(0.05, 0.95, 19)  # (19,)
    cubic = Schedule("cubic (alpha = 1 - t^3)", lambda u: 1.0 - u**3, lambda u: -3.0 * u**2)
    for schedule in (get_schedule("linear"), get_schedule("cosine"), get_schedule("quadratic"), cubic):
        on = f"alpha, alpha_prime of the {schedule.name} schedule, t = torch.linspace(0.05, 0.95, 19)"
        got = call(fn, on, schedule.alpha, schedule.alpha_prime, t.clone())
        expect_tensor(got, t.shape, on, "w(t)")
        got, expected = got.double(), schedule.weight(t).double()  # (19,)
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-6):
            i = int((got - expected).abs().argmax())
            if torch.allclose(got, torch.ones_like(got)):
                hint = "w(t) = 1 is the unweighted loss: it is not a bound on the likelihood; derive w from the ELBO"
            elif torch.allclose(got, -expected, rtol=1e-4):
                hint = "the sign is flipped: alpha'(t) < 0, so w(t) = -alpha'(t) / (1 - alpha(t)) is positive"
            else:
                hint = "w(t) = -alpha'(t) / (1 - alpha(t)): the rate of masking over the share already masked"
            if schedule.name == "linear":
                hint += " (for alpha = 1 - t it is 1/t)"
            raise Wrong(f"w(t) is wrong at t = {t[i].item():.2f}", on, f"{expected[i].item():.5f}",
                        f"{got[i].item():.5f}", hint)
    return "w(t) = -alpha'(t) / (1 - alpha(t)) for the linear, cosine, quadratic and cubic schedules"


# ---- 03: SUBS -----------------------------------------------------------------------------

@checker
def check_subs(fn):
    """Exercise 03, `subs_logits(logits, xt, mask_id)`: never predict the mask; copy unmasked tokens."""
    B, T, V = 3, 8, 7
    mask_id = V - 1
    logits = 3.0 * torch.randn(B, T, V)  # (B, T, V)
    xt = torch.randint(0, mask_id, (B, T))
    is_masked = torch.arange(B * T).view(B, T) % 3 != 0  # two thirds masked, every row has both kinds
    xt[is_masked] = mask_id
    on = f"logits {tuple(logits.shape)} random, mask_id = {mask_id}, xt with {int(is_masked.sum())} of {B * T} masked"
    got = call(fn, on, logits.clone(), xt.clone(), mask_id)
    expect_tensor(got, logits.shape, on, "the returned logits")
    probs = got.double().softmax(dim=-1)  # (B, T, V)
    if probs.isnan().any():
        b, i = probs.isnan().any(dim=-1).nonzero()[0].tolist()
        raise Wrong(f"position ({b}, {i}) has no probabilities (NaN): all of its logits are -inf", on,
                    hint="set the mask *column* logits[..., mask_id] to -inf; keep one finite logit per position")
    if (probs[..., mask_id] > 0).any():
        b, i = (probs[..., mask_id] > 0).nonzero()[0].tolist()
        raise Wrong(f"the [MASK] token still has probability {probs[b, i, mask_id].item():.3g} at ({b}, {i})", on,
                    "0", f"{probs[b, i, mask_id].item():.3g}",
                    "SUBS never predicts the mask: logits[..., mask_id] = -inf (a logit of 0 is not enough)")
    expected = logits.double().clone()
    expected[..., mask_id] = float("-inf")
    expected = torch.where(is_masked[..., None], expected.softmax(dim=-1), F.one_hot(xt, V).double())  # (B, T, V)
    wrong = ~torch.isclose(probs, expected, atol=1e-5).all(dim=-1)  # (B, T)
    if wrong.any():
        b, i = wrong.nonzero()[0].tolist()
        if is_masked[b, i]:
            raise Wrong(f"at masked position ({b}, {i}) the real tokens' probabilities changed", on,
                        rounded(expected[b, i]), rounded(probs[b, i]),
                        "at masked positions only the mask logit changes")
        raise Wrong(f"at unmasked position ({b}, {i}), where xt = {int(xt[b, i])}, the token is not copied", on,
                    f"probability 1 on token {int(xt[b, i])}", rounded(probs[b, i]),
                    "copy-through: where xt != mask_id, make every logit -inf except the one of xt (use one_hot)")
    return "the mask logit is -inf everywhere, masked positions keep their logits, unmasked ones copy xt"


# ---- 04: the diffusion loss ----------------------------------------------------------------

@checker
def check_diffusion_loss(fn):
    r"""Exercise 04, `diffusion_loss(net, x0, xt, is_masked, weight)`, the weighted masked cross-entropy.

    $\frac{1}{BL} \sum_b w_b \sum_{i \text{ masked}} -\log p_\theta(x_0^{b,i} \mid x_t^b)$, compared with
    `loss.diffusion_loss` on the same times and masks (drawn from the same seeded generator).
    """
    net = Transformer(ModelConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=32, seq_len=16)).eval()
    with torch.no_grad():
        net.embed.weight.mul_(3.0)  # confident but not copying its input: every mistake moves the loss
    mask_id, schedule = net.cfg.mask_id, get_schedule("linear")
    x0 = torch.randint(0, mask_id, (8, 16))  # (B, L)
    B, L = x0.shape
    for seed in (0, 1, None):  # None: nothing masked, the loss is exactly 0
        if seed is None:
            t, xt, is_masked = torch.full((B,), 0.5), x0.clone(), torch.zeros_like(x0, dtype=torch.bool)
            expected = 0.0
        else:  # the same generator draws as loss.diffusion_loss: the same t and x_t
            g = torch.Generator().manual_seed(seed)
            t = sample_times(B, generator=g)  # (B,)
            xt, is_masked = corrupt(x0, t, mask_id, schedule, generator=g)
            with torch.no_grad():
                expected = loss.diffusion_loss(net, x0, schedule, mask_id, torch.Generator().manual_seed(seed)).item()
        weight = schedule.weight(t)  # (B,)
        on = (f"a tiny Transformer, x0 {tuple(x0.shape)}, xt with {int(is_masked.sum())} of {B * L} masked, "
              f"weight = 1/t = {[round(w, 2) for w in weight.tolist()]}")
        with torch.no_grad():
            got = call(fn, on, net, x0.clone(), xt.clone(), is_masked.clone(), weight.clone())
        if not (isinstance(got, (float, torch.Tensor)) and torch.as_tensor(got).numel() == 1):
            raise Wrong("return one number (a 0-d tensor)", on, "a scalar", repr(got)[:80])
        got = float(got)
        if not math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
            raise Wrong("the loss value is wrong", on, f"{expected:.6f}", f"{got:.6f}",
                        _loss_hint(net, x0, xt, is_masked, weight, got))
    return "matches loss.diffusion_loss: w(t) * cross-entropy on masked positions only, summed, divided by B*L"


def _loss_hint(net, x0, xt, is_masked, weight, got):
    """Recognise the classic mistakes by recomputing each of them."""
    with torch.no_grad():
        ce = F.cross_entropy(net(xt).transpose(1, 2), x0, reduction="none")  # (B, T)
        leak = F.cross_entropy(net(x0).transpose(1, 2), x0, reduction="none")  # (B, T)
    w, m, n = weight[:, None], is_masked.float(), max(int(is_masked.sum()), 1)
    mistakes = [
        ((ce * m).sum() / m.numel(), "this is the unweighted loss: multiply each row's sum by its weight w(t)"),
        ((w * ce * m).sum() / n, "you divided by the number of masked tokens: divide by B * L (all positions)"),
        ((ce * m).sum() / n, "this is the plain mean over masked tokens: weight by w(t) and divide by B * L"),
        ((w * ce).mean(), "unmasked positions were included: only masked positions contribute"),
        (ce.mean(), "this is the mean cross-entropy over all positions: keep masked ones, weight by w(t)"),
        ((w * leak * m).sum() / m.numel(), "the net saw x0: it must predict from the corrupted xt, net(xt)"),
        ((w * ce * m).sum(), "the sum was not divided: divide by B * L to get nats per token"),
    ]
    for value, hint in mistakes:
        if math.isclose(got, float(value), rel_tol=1e-4):
            return hint
    if math.isnan(got):
        return "NaN: with nothing masked, the loss is 0 (do not divide by the number of masked tokens)"
    return "loss = sum over masked positions of w(t_b) * cross_entropy(net(xt), x0), divided by B * L"


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

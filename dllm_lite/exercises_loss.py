r"""Checkers of exercises 01-04: the forward process and the loss.

    exercise             checker                   compared with
    01 corrupt           check_corrupt             corrupt.corrupt (mask rate 1 - alpha(t))
    02 elbo_weight       check_elbo_weight         corrupt.Schedule.weight
    03 subs_logits       check_subs                the SUBS rules (mask never predicted, copy-through)
    04 diffusion_loss    check_diffusion_loss      loss.diffusion_loss

Students import them from `dllm_lite.exercises`, which describes how every checker works.

References: Sahoo et al. 2024 (MDLM), sec. 3.
"""

import math

import torch
import torch.nn.functional as F

from . import loss
from .corrupt import Schedule, corrupt, get_schedule, sample_times
from .model import ModelConfig, Transformer
from ._verdict import Wrong, call, checker, expect_tensor, near, rounded

__all__ = ["check_corrupt", "check_elbo_weight", "check_subs", "check_diffusion_loss"]


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

"""The exercise checkers accept the reference solutions and the library, and reject the classic mistakes."""

import ast
import inspect
import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import load_script
from dllm_lite import corrupt, exercises, exercises_extensions, loss, sample

solutions = load_script("instructors/solutions.py")


def _schedule(alpha):
    """A library Schedule around a bare alpha callable (alpha' is not needed by these callers)."""
    return corrupt.Schedule("student", alpha, alpha)


def _library_sft_loss(ce, is_masked, t, prompt_len):
    """The SFT loss the library trains with (loss.sft_loss's last two lines), on given cross-entropies."""
    scored = is_masked & loss.response_mask(prompt_len, ce.shape[1])
    return loss.weigh(ce[scored], scored, t, corrupt.get_schedule("linear"), lengths=ce.shape[1] - prompt_len)


LIBRARY = [
    (exercises.check_corrupt, lambda x0, t, mask_id, alpha: corrupt.corrupt(x0, t, mask_id, _schedule(alpha))),
    (exercises.check_elbo_weight, lambda alpha, alpha_prime, t: corrupt.Schedule("s", alpha, alpha_prime).weight(t)),
    (exercises.check_ancestral_step,
     lambda x, logits, mask_id, t, s, alpha: sample.ancestral_step(x, logits, mask_id, t, s, _schedule(alpha))),
    (exercises.check_confidence_select, sample.select_most_confident),
    (exercises.check_reveal_counts, sample.reveal_counts),
    (exercises.check_threshold_reveal, sample.threshold_reveal),
    (exercises.check_sft_loss, lambda ce, is_masked, t, prompt_len: _library_sft_loss(ce, is_masked, t, prompt_len)),
]


@pytest.mark.parametrize("check, solution", solutions.CHECKS + LIBRARY,
                         ids=lambda v: getattr(v, "__name__", "fn"))
def test_accepts_solution_and_library(check, solution, capsys):
    assert check(solution) is True
    assert capsys.readouterr().out.startswith("✓")


# ---- the classic mistakes, one wrong version each ---------------------------------------------

def corrupt_with_alpha(x0, t, mask_id, alpha):
    is_masked = torch.rand(x0.shape) < alpha(t.reshape(-1, 1))  # should be 1 - alpha
    return torch.where(is_masked, mask_id, x0), is_masked


def corrupt_nothing(x0, t, mask_id, alpha):
    return x0.clone(), torch.zeros_like(x0, dtype=torch.bool)


def corrupt_everything(x0, t, mask_id, alpha):
    return torch.full_like(x0, mask_id), torch.ones_like(x0, dtype=torch.bool)


def corrupt_first_t_only(x0, t, mask_id, alpha):
    is_masked = torch.rand(x0.shape) < 1 - alpha(t[0])  # one time for the whole batch
    return torch.where(is_masked, mask_id, x0), is_masked


def corrupt_in_place(x0, t, mask_id, alpha):
    is_masked = torch.rand(x0.shape) < 1 - alpha(t.reshape(-1, 1))
    x0[is_masked] = mask_id
    return x0, is_masked


def corrupt_prefix(x0, t, mask_id, alpha):
    n = (x0.shape[1] * (1 - alpha(t))).round().long()  # the right count, but always the first tokens
    is_masked = torch.arange(x0.shape[1]) < n[:, None]
    return torch.where(is_masked, mask_id, x0), is_masked


def corrupt_one_row_of_noise(x0, t, mask_id, alpha):
    is_masked = torch.rand(x0.shape[1]) < 1 - alpha(t.reshape(-1, 1))  # (T,) noise shared by every row
    return torch.where(is_masked, mask_id, x0), is_masked


def corrupt_forgets_xt(x0, t, mask_id, alpha):
    return x0.clone(), torch.rand(x0.shape) < 1 - alpha(t.reshape(-1, 1))


def weight_one(alpha, alpha_prime, t):
    return torch.ones_like(t)


def weight_sign(alpha, alpha_prime, t):
    return alpha_prime(t) / (1 - alpha(t))


def weight_over_alpha(alpha, alpha_prime, t):
    return -alpha_prime(t) / alpha(t)


def subs_no_mask_inf(logits, xt, mask_id):
    copy = torch.full_like(logits, float("-inf")).scatter(-1, xt.unsqueeze(-1), 0.0)
    return torch.where((xt == mask_id).unsqueeze(-1), logits, copy)


def subs_mask_zero(logits, xt, mask_id):
    out = solutions.subs_logits(logits, xt, mask_id)
    out[..., mask_id] = torch.where(xt == mask_id, 0.0, out[..., mask_id])
    return out


def subs_rows_inf(logits, xt, mask_id):
    out = logits.clone()
    out[xt == mask_id] = float("-inf")  # whole rows instead of the mask column
    return out


def subs_no_copy(logits, xt, mask_id):
    out = logits.clone()
    out[..., mask_id] = float("-inf")
    return out


def subs_wrong_column(logits, xt, mask_id):
    return solutions.subs_logits(logits, xt, mask_id - 1)


def subs_rescaled(logits, xt, mask_id):
    return solutions.subs_logits(2 * logits, xt, mask_id)


def _ce(net, x0, xt):
    return F.cross_entropy(net(xt).transpose(1, 2), x0, reduction="none")  # (B, L)


def loss_unweighted(net, x0, xt, is_masked, weight):
    return _ce(net, x0, xt)[is_masked].sum() / x0.numel()


def loss_all_positions(net, x0, xt, is_masked, weight):
    return _ce(net, x0, xt).mean()


def loss_with_unmasked(net, x0, xt, is_masked, weight):
    return (weight[:, None] * _ce(net, x0, xt)).sum() / x0.numel()


def loss_per_masked(net, x0, xt, is_masked, weight):
    return (weight[:, None] * _ce(net, x0, xt))[is_masked].sum() / is_masked.sum()


def loss_sees_x0(net, x0, xt, is_masked, weight):
    return (weight[:, None] * _ce(net, x0, x0))[is_masked].sum() / x0.numel()


def loss_not_divided(net, x0, xt, is_masked, weight):
    return (weight[:, None] * _ce(net, x0, xt))[is_masked].sum()


def loss_rescaled_mean(net, x0, xt, is_masked, weight):
    per_mask = (weight[:, None] * _ce(net, x0, xt))[is_masked].sum() / is_masked.sum()
    return per_mask * is_masked.float().mean()  # right whenever something is masked, NaN otherwise


def step_resamples_revealed(x, logits, mask_id, t, s, alpha):
    p = (alpha(s) - alpha(t)) / (1 - alpha(t))
    sampled = torch.distributions.Categorical(logits=logits).sample()
    return torch.where(torch.rand(x.shape) < p, sampled, x)  # forgot `& (x == mask_id)`


def step_swapped(x, logits, mask_id, t, s, alpha):
    return solutions.ancestral_step(x, logits, mask_id, s, t, alpha)


def step_unnormalised(x, logits, mask_id, t, s, alpha):
    reveal = (x == mask_id) & (torch.rand(x.shape) < alpha(s) - alpha(t))
    return torch.where(reveal, torch.distributions.Categorical(logits=logits).sample(), x)


def step_argmax(x, logits, mask_id, t, s, alpha):
    p = (alpha(s) - alpha(t)) / (1 - alpha(t))
    reveal = (x == mask_id) & (torch.rand(x.shape) < p)
    return torch.where(reveal, logits.argmax(dim=-1), x)


def select_ignores_mask(confidence, is_masked, k):
    top = confidence.topk(k, dim=1).indices
    return torch.zeros_like(is_masked).scatter(1, top, True)


def select_without_final_and(confidence, is_masked, k):
    top = confidence.masked_fill(~is_masked, float("-inf")).topk(k, dim=1).indices
    return torch.zeros_like(is_masked).scatter(1, top, True)  # picks -inf positions in a row with < k masks


def select_least_confident(confidence, is_masked, k):
    return solutions.select_most_confident(-confidence, is_masked, k)


def threshold_no_progress(confidence, is_masked, threshold):  # no "at least one": a row with none above stalls
    return is_masked & (confidence > threshold)


def threshold_only_best(confidence, is_masked, threshold):  # confidence decoding, one per call: nothing parallel
    return solutions.select_most_confident(confidence, is_masked, 1)


def threshold_ignores_mask(confidence, is_masked, threshold):  # revealed tokens look confident and get chosen again
    return (confidence > threshold) | solutions.select_most_confident(confidence, is_masked, 1)


def threshold_best_of_all(confidence, is_masked, threshold):  # the row's best position, masked or not
    return (is_masked & (confidence > threshold)) | (confidence == confidence.max(dim=1, keepdim=True).values)


def threshold_always_adds_best(confidence, is_masked, threshold):  # the best is added, but the test is >= 0.5
    return (is_masked & (confidence > 0.5)) | solutions.select_most_confident(confidence, is_masked, 1)


def counts_short(n_masked, steps):
    return solutions.reveal_counts(n_masked, steps - 1) if steps > 1 else []


def counts_long(n_masked, steps):
    return solutions.reveal_counts(n_masked, steps + 1)


def counts_floor(n_masked, steps):
    return [n_masked // steps] * steps


def counts_front_loaded(n_masked, steps):
    return [n_masked] + [0] * (steps - 1)


def infill_masks_at_end(net, tokenizer, left, right, n_blank, steps, generator=None):
    ids = sample.generate(net, mask_id=tokenizer.mask_id, length=n_blank, steps=steps,
                          prompt=tokenizer.encode(left + right) or None, generator=generator)
    return tokenizer.decode(ids[0])


def infill_without_sampling(net, tokenizer, left, right, n_blank, steps, generator=None):
    return tokenizer.decode(tokenizer.encode(left) + [tokenizer.mask_id] * n_blank + tokenizer.encode(right))


def infill_no_generator(net, tokenizer, left, right, n_blank, steps, generator=None):
    return solutions.infill(net, tokenizer, left, right, n_blank, steps)


def _block_mask_from(rule):
    """A student's block mask built from rule(q_noisy, k_noisy, q_block, k_block, q, k) over [x_t, x_0] indices."""
    def mask(seq_len, block_size):
        i = torch.arange(2 * seq_len)
        noisy, blocks = i < seq_len, (i % seq_len) // block_size
        return rule(noisy[:, None], noisy[None, :], blocks[:, None], blocks[None, :], i[:, None], i[None, :])
    return mask


def _right(qn, kn, qb, kb, q, k):
    return (qn & kn & (qb == kb)) | (qn & ~kn & (kb < qb)) | (~qn & ~kn & (kb <= qb))


mask_sees_own_clean_block = _block_mask_from(lambda qn, kn, qb, kb, q, k: _right(qn, kn, qb, kb, q, k) | (qn & ~kn & (kb == qb)))
mask_sees_later_clean_blocks = _block_mask_from(lambda qn, kn, qb, kb, q, k: _right(qn, kn, qb, kb, q, k) | (qn & ~kn & (kb > qb)))
mask_clean_sees_noisy = _block_mask_from(lambda qn, kn, qb, kb, q, k: _right(qn, kn, qb, kb, q, k) | (~qn & kn & (kb == qb)))
mask_clean_misses_itself = _block_mask_from(lambda qn, kn, qb, kb, q, k: _right(qn, kn, qb, kb, q, k) & ~(~qn & ~kn & (kb == qb)))
mask_causal_inside_block = _block_mask_from(lambda qn, kn, qb, kb, q, k: _right(qn, kn, qb, kb, q, k) & ~(qn & kn & (k > q)))
mask_transposed = _block_mask_from(lambda qn, kn, qb, kb, q, k: _right(kn, qn, kb, qb, k, q))


def mask_off_by_one(seq_len, block_size):
    i = torch.arange(2 * seq_len)
    noisy, blocks = i < seq_len, ((i % seq_len) + 1) // block_size
    return _right(noisy[:, None], noisy[None, :], blocks[:, None], blocks[None, :], i[:, None], i[None, :])


def mask_one_cell_wrong(seq_len, block_size):
    mask = solutions.block_mask(seq_len, block_size)
    mask[seq_len - 1, 0] = ~mask[seq_len - 1, 0]
    return mask


def _scored_sum(ce, where):
    return (ce * where).sum(dim=1)  # (B,)


def _region(prompt_len, L):
    return torch.arange(L)[None, :] >= prompt_len[:, None]  # (B, L)


def sft_scores_prompt(ce, is_masked, t, prompt_len):
    return (_scored_sum(ce, is_masked) / t / (ce.shape[1] - prompt_len)).mean()  # forgot & region


def sft_is_exercise_04(ce, is_masked, t, prompt_len):
    return (_scored_sum(ce, is_masked) / t).sum() / ce.numel()


def sft_over_row_length(ce, is_masked, t, prompt_len):
    scored = is_masked & _region(prompt_len, ce.shape[1])
    return (_scored_sum(ce, scored) / t / ce.shape[1]).mean()


def sft_over_masked_count(ce, is_masked, t, prompt_len):
    scored = is_masked & _region(prompt_len, ce.shape[1])
    return (_scored_sum(ce, scored) / t / scored.sum(dim=1).clamp(min=1)).mean()


def sft_over_masked_count_nan(ce, is_masked, t, prompt_len):
    scored = is_masked & _region(prompt_len, ce.shape[1])
    return (_scored_sum(ce, scored) / t / scored.sum(dim=1)).mean()  # 0 / 0 in a row with no region mask


def sft_masked_mean(ce, is_masked, t, prompt_len):
    scored = is_masked & _region(prompt_len, ce.shape[1])
    return ce[scored].mean()


def sft_unweighted(ce, is_masked, t, prompt_len):
    scored = is_masked & _region(prompt_len, ce.shape[1])
    return (_scored_sum(ce, scored) / (ce.shape[1] - prompt_len)).mean()


def sft_weight_t(ce, is_masked, t, prompt_len):
    scored = is_masked & _region(prompt_len, ce.shape[1])
    return (t * _scored_sum(ce, scored) / (ce.shape[1] - prompt_len)).mean()


def sft_summed_rows(ce, is_masked, t, prompt_len):
    return solutions.sft_loss(ce, is_masked, t, prompt_len) * ce.shape[0]


def sft_batch_region_length(ce, is_masked, t, prompt_len):
    scored = is_masked & _region(prompt_len, ce.shape[1])
    return (_scored_sum(ce, scored) / t).sum() / (ce.shape[1] - prompt_len).sum()


def sft_region_ends_early(ce, is_masked, t, prompt_len):
    L = ce.shape[1]
    scored = is_masked & _region(prompt_len, L)
    scored[:, L - 1] = False  # as if the region were range(prompt_len, L - 1)
    return (_scored_sum(ce, scored) / t / (L - prompt_len)).mean()


def sft_region_starts_late(ce, is_masked, t, prompt_len):
    L = ce.shape[1]
    scored = is_masked & (torch.arange(L)[None, :] > prompt_len[:, None])  # > instead of >=
    return (_scored_sum(ce, scored) / t / (L - prompt_len)).mean()


def sft_detached(ce, is_masked, t, prompt_len):
    return torch.tensor(solutions.sft_loss(ce, is_masked, t, prompt_len).item())


def sft_returns_float(ce, is_masked, t, prompt_len):
    return solutions.sft_loss(ce, is_masked, t, prompt_len).item()


def sft_per_row(ce, is_masked, t, prompt_len):
    scored = is_masked & _region(prompt_len, ce.shape[1])
    return _scored_sum(ce, scored) / t / (ce.shape[1] - prompt_len)  # (B,): the mean was forgotten


def sft_one_prompt_length(ce, is_masked, t, prompt_len):
    return solutions.sft_loss(ce, is_masked, t, prompt_len[:1].expand_as(prompt_len))


def sft_keepdim_broadcast(ce, is_masked, t, prompt_len):
    L = ce.shape[1]
    per_row = (ce * (is_masked & _region(prompt_len, L))).sum(dim=1, keepdim=True)  # (B, 1)
    return (per_row / (t * (L - prompt_len))).mean()  # (B, 1) / (B,) -> (B, B), then the mean of the table


def sft_keepdim_sum_over_rows(ce, is_masked, t, prompt_len):
    L = ce.shape[1]
    per_row = (ce * (is_masked & _region(prompt_len, L))).sum(dim=1)  # (B,)
    return (per_row / t[:, None] / (L - prompt_len)).sum() / ce.shape[0]  # t as a column: (B, B), summed / B


def sft_keepdim_unreduced(ce, is_masked, t, prompt_len):
    L = ce.shape[1]
    per_row = (ce * (is_masked & _region(prompt_len, L))).sum(dim=1, keepdim=True)  # (B, 1)
    return per_row / (t * (L - prompt_len))  # (B, B), never reduced


MISTAKES = [
    (exercises.check_corrupt, corrupt_with_alpha, "that is alpha(t)"),
    (exercises.check_corrupt, corrupt_nothing, "masks the wrong share"),
    (exercises.check_corrupt, corrupt_everything, "masks the wrong share"),
    (exercises.check_corrupt, corrupt_first_t_only, "each row has its own t"),
    (exercises.check_corrupt, corrupt_in_place, "changed in place"),
    (exercises.check_corrupt, corrupt_prefix, "not spread evenly"),
    (exercises.check_corrupt, corrupt_one_row_of_noise, "got exactly the same mask"),
    (exercises.check_corrupt, corrupt_forgets_xt, "xt is not mask_id"),
    (exercises.check_elbo_weight, weight_one, "unweighted"),
    (exercises.check_elbo_weight, weight_sign, "sign is flipped"),
    (exercises.check_elbo_weight, weight_over_alpha, "w(t) is wrong"),
    (exercises.check_subs, subs_no_mask_inf, "still has probability"),
    (exercises.check_subs, subs_mask_zero, "a logit of 0 is not enough"),
    (exercises.check_subs, subs_rows_inf, "NaN"),
    (exercises.check_subs, subs_no_copy, "is not copied"),
    (exercises.check_subs, subs_wrong_column, "still has probability"),
    (exercises.check_subs, subs_rescaled, "real tokens' probabilities changed"),
    (exercises.check_diffusion_loss, loss_unweighted, "unweighted"),
    (exercises.check_diffusion_loss, loss_all_positions, "mean cross-entropy over all positions"),
    (exercises.check_diffusion_loss, loss_with_unmasked, "unmasked positions were included"),
    (exercises.check_diffusion_loss, loss_per_masked, "divided by the number of masked"),
    (exercises.check_diffusion_loss, loss_sees_x0, "the net saw x0"),
    (exercises.check_diffusion_loss, loss_not_divided, "the sum was not divided"),
    (exercises.check_diffusion_loss, loss_rescaled_mean, "NaN: with nothing masked"),
    (exercises.check_ancestral_step, step_resamples_revealed, "already revealed tokens changed"),
    (exercises.check_ancestral_step, step_swapped, "nothing was revealed"),
    (exercises.check_ancestral_step, step_unnormalised, "divide by 1 - alpha(t)"),
    (exercises.check_ancestral_step, step_argmax, "do not take the argmax"),
    (exercises.check_confidence_select, select_ignores_mask, "is not masked but was selected"),
    (exercises.check_confidence_select, select_without_final_and, "is not masked but was selected"),
    (exercises.check_confidence_select, select_least_confident, "selected the wrong positions"),
    (exercises.check_threshold_reveal, threshold_no_progress, "without progress"),
    (exercises.check_threshold_reveal, threshold_only_best, "in the same call"),
    (exercises.check_threshold_reveal, threshold_ignores_mask, "already revealed but was chosen again"),
    (exercises.check_threshold_reveal, threshold_best_of_all, "already revealed but was chosen again"),
    (exercises.check_threshold_reveal, threshold_always_adds_best, "only if its confidence is above"),
    (exercises.check_reveal_counts, counts_short, "counts for"),
    (exercises.check_reveal_counts, counts_long, "counts for"),
    (exercises.check_reveal_counts, counts_floor, "add up to"),
    (exercises.check_reveal_counts, counts_front_loaded, "not as equal as possible"),
    (exercises.check_infill, infill_masks_at_end, "not left + n_blank characters + right"),
    (exercises.check_infill, infill_without_sampling, "still holds masks"),
    (exercises.check_infill, infill_no_generator, "same seed"),
    (exercises.check_block_mask, mask_sees_own_clean_block, "sees the clean copy of itself"),
    (exercises.check_block_mask, mask_sees_later_clean_blocks, "clean blocks after it"),
    (exercises.check_block_mask, mask_clean_sees_noisy, "the clean copy attends to noisy tokens"),
    (exercises.check_block_mask, mask_clean_misses_itself, "does not see itself"),
    (exercises.check_block_mask, mask_causal_inside_block, "inside its block the noisy copy is causal"),
    (exercises.check_block_mask, mask_off_by_one, "off by one"),
    (exercises.check_block_mask, mask_transposed, "rows and columns are swapped"),
    (exercises.check_block_mask, mask_one_cell_wrong, "a cell of the mask is wrong"),
    (exercises.check_sft_loss, sft_scores_prompt, "prompt positions are scored"),
    (exercises.check_sft_loss, sft_is_exercise_04, "exercise 04's loss over whole rows"),
    (exercises.check_sft_loss, sft_over_row_length, "divided by L, the whole row's length"),
    (exercises.check_sft_loss, sft_over_masked_count, "divided by its number of masked tokens"),
    (exercises.check_sft_loss, sft_over_masked_count_nan, "the loss is NaN"),
    (exercises.check_sft_loss, sft_masked_mean, "plain mean cross-entropy over the masked region tokens"),
    (exercises.check_sft_loss, sft_unweighted, "the weight w(t) = 1/t is missing"),
    (exercises.check_sft_loss, sft_weight_t, "weighted by t, not by w(t) = 1/t"),
    (exercises.check_sft_loss, sft_summed_rows, "summed, not averaged"),
    (exercises.check_sft_loss, sft_batch_region_length, "total region length"),
    (exercises.check_sft_loss, sft_region_ends_early, "stops before the row's end"),
    (exercises.check_sft_loss, sft_region_starts_late, "starts one position late"),
    (exercises.check_sft_loss, sft_detached, "no gradient flows"),
    (exercises.check_sft_loss, sft_returns_float, "one-number tensor"),
    (exercises.check_sft_loss, sft_per_row, "one-number tensor"),
    (exercises.check_sft_loss, sft_one_prompt_length, "each row alone gives the right loss"),
    (exercises.check_sft_loss, sft_keepdim_broadcast, "a shape mistake: the row sums of shape (B, 1)"),
    (exercises.check_sft_loss, sft_keepdim_sum_over_rows, "a shape mistake: 1 / t of shape (B, 1)"),
    (exercises.check_sft_loss, sft_keepdim_unreduced, "the loss has shape (6, 6)"),
]


@pytest.mark.parametrize("check, wrong, message", MISTAKES, ids=[wrong.__name__ for _, wrong, _ in MISTAKES])
def test_rejects_classic_mistake(check, wrong, message, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and message in out, out
    assert "input:" in out and "hint:" in out, out


CHECKERS = [check for check, _ in solutions.CHECKS]


def stub(*args):
    raise NotImplementedError


def broken(*args):
    raise ValueError("a bug in the student's code")


@pytest.mark.parametrize("check", CHECKERS, ids=lambda c: c.__name__)
def test_stub_and_errors_return_false_without_raising(check, capsys):
    assert check(stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    assert check(broken) is False
    out = capsys.readouterr().out
    assert "raised ValueError: a bug in the student's code" in out and "input:" in out, out
    assert check("not a function") is False
    assert "pass your function itself" in capsys.readouterr().out


def test_checker_leaves_the_random_state_and_thread_count_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    exercises.check_reveal_counts(solutions.reveal_counts)
    exercises.check_corrupt(stub)
    exercises.check_corrupt(solutions.corrupt)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_block_mask_verdict_names_the_offending_query_and_key(capsys):
    assert exercises.check_block_mask(mask_sees_later_clean_blocks) is False
    out = capsys.readouterr().out
    # seq_len 8, block size 2: noisy query 0 (block 0) must not see the clean copy of block 1 (key 10)
    assert "expected: query 0 (noisy x_t, block 0) may not see key 10 (clean x_0, block 1): mask[0, 10] = False" in out, out
    assert "got:      query 0 (noisy x_t, block 0) sees key 10 (clean x_0, block 1): mask[0, 10] = True" in out, out
    assert "see block.block_attention_mask's table" not in out
    assert exercises.check_block_mask(mask_one_cell_wrong) is False
    out = capsys.readouterr().out
    assert re.search(r"expected: query \d+ \((noisy x_t|clean x_0), block \d\) (sees|may not see) key \d+", out), out


def test_sft_shape_mistakes_say_expected_and_got_shapes(capsys):
    assert exercises.check_sft_loss(sft_keepdim_broadcast) is False
    out = capsys.readouterr().out
    assert "each factor of shape (6,)" in out and "from a (6, 6) table" in out and "keepdim=True" in out, out
    assert "the loss value is wrong" not in out


def test_sft_mistakes_differ_from_the_answer_and_from_each_other():
    """On the checker's first batch every classic mistake moves the loss, and no two of them coincide."""
    ce, is_masked, t, prompt_len, _ = exercises_extensions._sft_batches()[0]
    right = float(solutions.sft_loss(ce.double(), is_masked, t.double(), prompt_len))
    values = [right] + [float(v) for v, _, _ in exercises_extensions._sft_mistakes(ce, is_masked, t, prompt_len)]
    assert math.isclose(float(_library_sft_loss(ce.double(), is_masked, t.double(), prompt_len)), right, rel_tol=1e-12)
    gaps = [abs(a - b) / max(abs(a), abs(b)) for i, a in enumerate(values) for b in values[i + 1:]]
    assert min(gaps) > 50 * 1e-4, min(gaps)  # the checker's tolerance is rel 1e-4


def test_sft_checker_inputs_cover_the_edge_cases():
    """A row without a prompt, rows with no mask in their region but masks in their prompt, a batch whose loss is 0."""
    batches = exercises_extensions._sft_batches()
    assert any((p == 0).any() for _, _, _, p, _ in batches)
    for ce, is_masked, t, prompt_len, _ in batches:
        assert (prompt_len < ce.shape[1]).all()
    ce, is_masked, t, prompt_len, _ = batches[-1]
    region = loss.response_mask(prompt_len, ce.shape[1])
    assert not (is_masked & region).any() and (is_masked & ~region).any()
    assert solutions.sft_loss(ce, is_masked, t, prompt_len).item() == 0.0


EXERCISE_NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "exercises").glob("*.ipynb"))


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stub_matches_its_checker_and_solution(path):
    """The stub has the solution's signature, the check cell calls the matching checker, outputs are stored."""
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "What you will learn" in text and "Hint 1: the idea" in text
    stub = next(source for source in code if "raise NotImplementedError" in source)
    assert "# TODO" in stub
    (function,) = [node for node in ast.parse(stub).body if isinstance(node, ast.FunctionDef)]
    call = next(c for c in cells if c["cell_type"] == "code" and "exercises.check_" in "".join(c["source"]))
    check_name = re.search(r"exercises\.(check_\w+)\((\w+)\)", "".join(call["source"]))
    assert check_name.group(2) == function.name, "the check cell must pass the stub's function"
    checks = {check.__name__: solution for check, solution in solutions.CHECKS}
    solution = checks[check_name.group(1)]
    assert function.name == solution.__name__
    assert [a.arg for a in function.args.args] == list(inspect.signature(solution).parameters)
    stored = "".join("".join(o.get("text", "")) for o in call["outputs"])
    assert "not implemented yet" in stored, f"{path.name}: run instructors/build_notebooks.py to store outputs"


build_notebooks = load_script("instructors/build_notebooks.py")

HINT_TIERS = ["Hint 1: the idea", "Hint 2: the API", "Hint 3: the code"]


def _hint_blocks(source):
    """The (opening tag, summary, body) of every <details> block in a markdown source."""
    blocks = re.findall(r"(<details[^>]*>)\s*<summary>(.*?)</summary>(.*?)</details>", source, re.DOTALL)
    return [(tag, re.sub(r"<[^>]+>", "", summary).strip(), body.strip()) for tag, summary, body in blocks]


def test_every_exercise_has_a_notebook():
    """One stored notebook per exercise in build_notebooks.py, and one per checker."""
    assert [p.stem for p in EXERCISE_NOTEBOOKS] == sorted(build_notebooks.NOTEBOOKS)
    assert len(EXERCISE_NOTEBOOKS) == len(solutions.CHECKS) == 11


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hints_come_in_three_collapsed_tiers(path):
    """Below the check cell: Hint 1 the idea (no code), Hint 2 the API, Hint 3 the code, each collapsed, in order."""
    cells = json.loads(path.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells]
    with_hints = [i for i, s in enumerate(sources) if "<details" in s]
    assert len(with_hints) == 1, f"{path.name}: the hints belong in one markdown cell"
    (at,) = with_hints
    assert cells[at]["cell_type"] == "markdown"
    assert "exercises.check_" in sources[at - 1] and cells[at - 1]["cell_type"] == "code", "hints follow the check"
    blocks = _hint_blocks(sources[at])
    assert sources[at].count("<details") == len(blocks) == 3, f"{path.name}: {len(blocks)} hint blocks"
    for (tag, summary, body), tier in zip(blocks, HINT_TIERS):
        assert summary.startswith(tier), f"{path.name}: {summary!r} where {tier!r} belongs"
        assert "open" not in tag, f"{path.name}: {tier} must start collapsed"
        assert len(body) > 40, f"{path.name}: {tier} is empty"
    (_, _, idea), (_, _, api), (_, _, code) = blocks
    assert "`" not in idea, f"{path.name}: Hint 1 is the idea in words and math, with no code"
    assert "`" in api, f"{path.name}: Hint 2 names functions"
    assert code.startswith("```python\n") and code.endswith("\n```"), f"{path.name}: Hint 3 is a code block"
    ast.parse(code[len("```python\n"):-len("\n```")])  # valid Python lines
    lines = [line.split("#")[0].strip() for line in code.splitlines()[1:-1]]
    given_away = [line for line in lines if len(line) > 20 and line in api]
    assert not given_away, f"{path.name}: Hint 2 already holds the code of Hint 3: {given_away}"


@pytest.mark.parametrize("name", sorted(build_notebooks.NOTEBOOKS))
def test_stored_hints_match_build_notebooks(name):
    """The hint cell stored in each notebook is the one build_notebooks.py writes (rebuild after editing it)."""
    cells = json.loads((EXERCISE_NOTEBOOKS[0].parent / f"{name}.ipynb").read_text())["cells"]
    stored = ["".join(c["source"]) for c in cells if "<details" in "".join(c["source"])]
    assert stored == [build_notebooks.NOTEBOOKS[name]["hint"]], \
        f"{name}: run python instructors/build_notebooks.py {name[:2]}"


def test_hint_takes_the_three_tiers_by_name():
    """hint() needs all three tiers, as keywords, and renders lists of points as bullets."""
    with pytest.raises(TypeError):
        build_notebooks.hint("one", "two", "three")
    with pytest.raises(TypeError):
        build_notebooks.hint(idea="one", api="two")
    text = build_notebooks.hint(idea=["a point", "another"], api="use `f`", code="x = 1\n")
    assert "- a point\n- another" in text and "```python\nx = 1\n```" in text
    assert [summary for _, summary, _ in _hint_blocks(text)] == [
        f"{tier} ({what})" for tier, (_, what) in zip(HINT_TIERS, build_notebooks.HINT_TIERS)]

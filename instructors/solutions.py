r"""Reference solutions to the exercises in `exercises/`, one function per notebook.

Each function has the signature of the stub in its notebook and passes its checker in
`dllm_lite.exercises`. Run this file to see every checker accept them:

    python instructors/solutions.py

References: Sahoo et al. 2024 (MDLM), sec. 3; Nie et al. 2025 (LLaDA), sec. 2.3 (SFT) and 2.4.
"""

import torch
import torch.nn.functional as F

from dllm_lite import exercises, sample


def corrupt(x0, t, mask_id, alpha):
    r"""01: mask each token of x0 (B, T) with probability $1 - \alpha(t)$; t (B,) is one time per row."""
    p_mask = 1.0 - alpha(t.reshape(-1, 1))  # (B, 1)
    is_masked = torch.rand(x0.shape) < p_mask  # (B, T)
    xt = torch.where(is_masked, torch.full_like(x0, mask_id), x0)  # (B, T)
    return xt, is_masked


def elbo_weight(alpha, alpha_prime, t):
    r"""02: $w(t) = -\alpha'(t) / (1 - \alpha(t))$, elementwise on t."""
    return -alpha_prime(t) / (1.0 - alpha(t))


def subs_logits(logits, xt, mask_id):
    """03: SUBS. logits (B, T, V), xt (B, T) -> logits (B, T, V) that never predict the mask
    and, where xt is already revealed, put all the probability on xt."""
    never_mask = logits.clone()
    never_mask[..., mask_id] = float("-inf")
    copy = torch.full_like(logits, float("-inf")).scatter(-1, xt.unsqueeze(-1), 0.0)  # one finite logit: xt's
    return torch.where((xt == mask_id).unsqueeze(-1), never_mask, copy)


def diffusion_loss(net, x0, xt, is_masked, weight):
    r"""04: $\frac{1}{BL} \sum_b w_b \sum_{i \text{ masked}} -\log p_\theta(x_0^{b,i} \mid x_t^b)$."""
    B, L = x0.shape
    ce = F.cross_entropy(net(xt).transpose(1, 2), x0, reduction="none")  # (B, L)
    return (weight[:, None] * ce)[is_masked].sum() / (B * L)


def ancestral_step(x, logits, mask_id, t, s, alpha):
    r"""05: reveal each masked token w.p. $\frac{\alpha(s) - \alpha(t)}{1 - \alpha(t)}$, its value from the logits."""
    p_reveal = (alpha(s) - alpha(t)) / (1.0 - alpha(t))
    reveal = (x == mask_id) & (torch.rand(x.shape) < p_reveal)  # (B, T)
    sampled = torch.distributions.Categorical(logits=logits).sample()  # (B, T)
    return torch.where(reveal, sampled, x)


def select_most_confident(confidence, is_masked, k):
    """06: boolean (B, T), the k most confident masked positions of each row (all of them if fewer)."""
    scores = confidence.masked_fill(~is_masked, float("-inf"))  # (B, T)
    top = scores.topk(k, dim=1).indices  # (B, k)
    return torch.zeros_like(is_masked).scatter(1, top, True) & is_masked


def reveal_counts(n_masked, steps):
    """07: `steps` counts, as equal as possible, summing to n_masked (the first n % steps get one more)."""
    base, extra = divmod(n_masked, steps)
    return [base + (i < extra) for i in range(steps)]


def infill(net, tokenizer, left, right, n_blank, steps, generator=None):
    """08: fill n_blank tokens between left and right with `sample.generate`; return the whole text."""
    prompt = tokenizer.encode(left) + [tokenizer.mask_id] * n_blank + tokenizer.encode(right)
    ids = sample.generate(net, mask_id=tokenizer.mask_id, length=0, steps=steps, prompt=prompt, generator=generator)
    return tokenizer.decode(ids[0])


def block_mask(seq_len, block_size):
    """09: block diffusion's attention pattern over [x_t, x_0], (2L, 2L), True where query (row) sees key (column)."""
    block = torch.arange(seq_len) // block_size  # (L,) the block of each position
    same = block[:, None] == block[None, :]  # (L, L) query and key in one block
    before = block[:, None] > block[None, :]  # (L, L) the key's block comes before the query's
    noisy = torch.cat([same, before], dim=1)  # noisy queries: their own noisy block, earlier clean blocks
    clean = torch.cat([torch.zeros_like(same), same | before], dim=1)  # clean queries: clean blocks up to their own
    return torch.cat([noisy, clean], dim=0)


def sft_loss(ce, is_masked, t, prompt_len):
    r"""10: $\frac{1}{B} \sum_b \frac{1/t_b}{L - P_b} \sum_{i \ge P_b \text{ masked}} ce_{b,i}$, the diffusion SFT loss."""
    L = ce.shape[1]
    region = torch.arange(L, device=ce.device)[None, :] >= prompt_len[:, None]  # (B, L) the response region
    per_row = (ce * (is_masked & region)).sum(dim=1)  # (B,) masked region positions only, eot padding included
    return (per_row / (t * (L - prompt_len))).mean()  # w(t) = 1/t, each row over its own region length


def threshold_reveal(confidence, is_masked, threshold):
    """11: boolean (B, T), every masked position above the threshold, and each row's most confident masked one."""
    above = is_masked & (confidence > threshold)  # (B, T) confident enough to commit now
    best = confidence.masked_fill(~is_masked, float("-inf")).argmax(dim=1, keepdim=True)  # (B, 1)
    at_least_one = torch.zeros_like(is_masked).scatter(1, best, True) & is_masked  # nothing in a row with no mask
    return above | at_least_one


CHECKS = [
    (exercises.check_corrupt, corrupt),
    (exercises.check_elbo_weight, elbo_weight),
    (exercises.check_subs, subs_logits),
    (exercises.check_diffusion_loss, diffusion_loss),
    (exercises.check_ancestral_step, ancestral_step),
    (exercises.check_confidence_select, select_most_confident),
    (exercises.check_reveal_counts, reveal_counts),
    (exercises.check_infill, infill),
    (exercises.check_block_mask, block_mask),
    (exercises.check_sft_loss, sft_loss),
    (exercises.check_threshold_reveal, threshold_reveal),
]

if __name__ == "__main__":
    results = [check(solution) for check, solution in CHECKS]
    print(f"{sum(results)} of {len(results)} solutions accepted")
    raise SystemExit(0 if all(results) else 1)

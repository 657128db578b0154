r"""The training objective of one batch, as the loop and the validation pass compute it, and the batches.

A batch is `(B, L)` token ids cut from a flat array (`data.BlockLoader`), or a `pairs.PairBatch`
of prompt/response rows (`pairs.PairLoader`); `batch_loader` makes the right loader for the
data, `batch_loss` the objective of `train.objective` on it:

- diffusion: the negative ELBO (`diffusion_step_loss`, the draws of `loss.diffusion_loss`), or its
  "mean" variant; block diffusion: the same per block of `model.block_size` tokens (block.py);
- autoregressive: next-token cross-entropy (`loss.ar_loss`);
- pairs: the SFT loss, the prompt never masked (`loss.sft_loss`; the AR twin `loss.ar_sft_loss`).

With torchrun, the times and masks of the *global* batch are drawn on every rank from one
generator seeded alike, and each rank keeps its own rows, so W processes draw exactly the
masks of one process with W times the rows.

References: Sahoo et al. 2024 (MDLM); Nie et al. 2025 (LLaDA); Arriola et al. 2025 (BD3-LM).
"""

import torch

from .block import block_times
from .corrupt import corrupt, get_schedule, sample_times
from .data import BlockLoader
from .loss import ar_loss, ar_sft_loss, masked_cross_entropy, response_mask, weigh
from .pairs import PairBatch, PairLoader, Pairs

__all__ = ["diffusion_step_loss", "batch_loss", "batch_loader"]


def diffusion_step_loss(net, x0, schedule, mask_id, weighting="elbo", generator=None, rank=0, world_size=1,
                        block_size=None, prompt_len=None):
    r"""The diffusion loss of this rank's rows x0 (B, L) of a global batch of W*B rows.

    Times and masks are drawn for the whole global batch from `generator` (seeded alike on
    every rank) and each rank keeps rows rank*B .. (rank+1)*B, so W processes make exactly
    the masks of one process with W*B rows. With W = 1 the draws, and so the value, are
    those of `loss.diffusion_loss`.
    elbo: $\frac{1}{BL} \sum_b w(t_b) \sum_{i\,masked} -\log p_\theta(x_0^{b,i} \mid x_t^b)$; DDP's
    average over ranks makes it the global mean.
    mean: this rank's masked cross-entropy summed, times W over the global masked count, which
    DDP's average turns into the global mean over masked tokens.
    block_size: the block diffusion objective (block.py): a time per block, the [x_t, x_0] pass.
    prompt_len (B,): pair rows, the SFT loss of `loss.sft_loss` (the prompt never masked, each row
    divided by its response region's length); with "mean", each rank averages its own masked tokens.
    """
    B, L = x0.shape
    schedule = get_schedule(schedule)
    if block_size is None:
        t_all = sample_times(B * world_size, antithetic=True, generator=generator, device=x0.device)  # (W B,)
    else:
        t_all = block_times(B * world_size, L, block_size, generator=generator, device=x0.device)  # (W B, L)
    _, masked_all = corrupt(torch.zeros(B * world_size, L, dtype=x0.dtype, device=x0.device), t_all,
                            mask_id, schedule, generator=generator)  # (W B, L): the draws depend on shape only
    rows = slice(rank * B, (rank + 1) * B)
    t, is_masked = t_all[rows], masked_all[rows]  # (B,), (B, L)
    if prompt_len is not None:
        is_masked = is_masked & response_mask(prompt_len, L)  # the prompt stays clean
        ce = masked_cross_entropy(net, x0, is_masked, mask_id)  # (N,)
        return weigh(ce, is_masked, t, schedule, weighting, lengths=L - prompt_len)
    ce = masked_cross_entropy(net, x0, is_masked, mask_id, block_size)  # (N,)
    return weigh(ce, is_masked, t, schedule, weighting, n_masked=masked_all.sum() / world_size)


def batch_loss(net, batch, cfg, mask_id, generator, rank=0, world_size=1):
    """The training objective of cfg.train on a batch, (B, L) ids or a PairBatch of pairs, in nats per token."""
    if isinstance(batch, PairBatch):
        if cfg.train.objective == "autoregressive":
            return ar_sft_loss(net, batch.ids, batch.prompt_len, batch.answer_len, mask_id)
        return diffusion_step_loss(net, batch.ids, cfg.train.schedule, mask_id, cfg.train.weighting, generator, rank,
                                   world_size, prompt_len=batch.prompt_len)
    if cfg.train.objective == "autoregressive":
        return ar_loss(net, batch, mask_id)
    return diffusion_step_loss(net, batch, cfg.train.schedule, mask_id, cfg.train.weighting, generator, rank,
                               world_size, cfg.model.block_size)


def batch_loader(data, cfg, seed, rank=0, world_size=1, device="cpu", validation=False):
    """The batches of `data`: a PairLoader over packed pairs, a BlockLoader over a flat token array.
    Validation pairs fewer than a batch make one smaller batch."""
    if isinstance(data, Pairs):
        batch_size = min(cfg.train.batch_size, len(data)) if validation else cfg.train.batch_size
        return PairLoader(data, batch_size, seed, rank, world_size, device)
    return BlockLoader(data, cfg.model.seq_len, cfg.train.batch_size, seed, rank, world_size, device)

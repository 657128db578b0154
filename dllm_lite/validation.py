r"""The validation pass during training: true quantities on the validation split, and one sample.

For (block) diffusion, the NLL bound (`loss.nll_bound`, nats per token) and its perplexity
$e^{bound}$; for the autoregressive baseline, the exact cross-entropy and its perplexity; and
the training objective itself, for the curve beside the training loss. The same batches and
the same noise (seeded by `train.seed`) are used at every evaluation, so successive values
differ only because the model changed. The sample is a short unconditional text, or, for
prompt/response pairs, the answer to the first validation prompt.

References: Sahoo et al. 2024 (MDLM), section on the NLL bound; karpathy/nanoGPT's estimate_loss.
"""

import math
from contextlib import nullcontext

import torch

from .loss import nll_bound
from .objective import batch_loader, batch_loss
from .pairs import PairBatch, Pairs
from .sample import generate, until_eot

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(net, cfg, val_tokens, tokenizer, device, autocast=nullcontext, stop=None) -> "dict | None":
    """Validation loss, NLL bound (diffusion), perplexity and one short sample, all seeded by train.seed.

    The same validation batches (`eval_batches` of them, at most the whole split once) and the
    same noise are used at every evaluation, so successive values differ only because the model
    changed. `stop`, if given, is asked before every batch; when it returns True the evaluation
    is abandoned and None returned (a signal asked the run to stop).
    """
    t = cfg.train
    loader = batch_loader(val_tokens, cfg, seed=t.seed, device=device, validation=True)
    generator = torch.Generator(device=device).manual_seed(t.seed)
    was_training = net.training
    net.eval()
    losses, bounds = [], []
    for _ in range(min(t.eval_batches, loader.steps_per_epoch)):
        if stop is not None and stop():
            net.train(was_training)
            return None
        batch = loader.next_batch()  # (B, L) ids, or a PairBatch
        pairs = isinstance(batch, PairBatch)
        with autocast():
            losses.append(batch_loss(net, batch, cfg, tokenizer.mask_id, generator).item())
            if t.objective != "autoregressive":
                bounds.append(nll_bound(net, batch.ids if pairs else batch, t.schedule, tokenizer.mask_id,
                                        n_samples=t.bound_samples, generator=generator, batch_size=t.batch_size,
                                        block_size=cfg.model.block_size, prompt_len=batch.prompt_len if pairs else None,
                                        answer_len=batch.answer_len if pairs else None))
    record = {"val_loss": sum(losses) / len(losses)}
    if bounds:
        record["val_bound"] = sum(bounds) / len(bounds)
    record["val_ppl"] = math.exp(min(record.get("val_bound", record["val_loss"]), 700.0))
    s = cfg.sample
    if isinstance(val_tokens, Pairs):  # pairs: answer the first validation prompt
        with autocast():
            record["sample"] = _answer_first(net, val_tokens, tokenizer, cfg, generator)
        net.train(was_training)
        return record
    # one short unconditional sample (an AR model starts from its beginning-of-sequence token)
    length = min(s.length, 64)
    with autocast():
        ids = generate(net, mask_id=tokenizer.mask_id, length=length, steps=min(s.steps, length),
                       strategy=s.strategy, schedule=t.schedule, temperature=s.temperature, top_k=s.top_k,
                       top_p=s.top_p, block_size=s.block_size if s.block_size and s.block_size <= length else None,
                       threshold=s.threshold, generator=generator, eot_id=tokenizer.eot_id)  # (1, <= length)
    record["sample"] = tokenizer.decode(ids[0])
    net.train(was_training)
    return record


def _answer_first(net, pairs, tokenizer, cfg, generator) -> str:
    """"prompt -> answer" for the first pair of `pairs`, decoded with cfg.sample's strategy (one step per token)."""
    prompt = pairs.ids[0, : pairs.prompt_len[0]]
    length = cfg.model.seq_len - len(prompt)
    ids = generate(net, mask_id=tokenizer.mask_id, length=length, steps=length, prompt=prompt.to(generator.device),
                   strategy=cfg.sample.strategy, schedule=cfg.train.schedule, temperature=cfg.sample.temperature,
                   top_k=cfg.sample.top_k, top_p=cfg.sample.top_p, threshold=cfg.sample.threshold,
                   generator=generator)  # (1, L)
    return f"{tokenizer.decode(prompt)} -> {tokenizer.decode(until_eot(ids[0, len(prompt):], tokenizer.eot_id))}"

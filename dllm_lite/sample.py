r"""The reverse process: turn an all-masked sequence into text, a few tokens per step.

Generation starts from $x_1 = (m, \dots, m)$ after an optional prompt and runs the
denoiser $p_\theta(x_0 \mid x_t)$ for at most `steps` forward passes. Three strategies
decide *which* masked tokens are revealed at each step:

- **ancestral** (MDLM): the exact reverse of the forward process on the grid
  $t_i = 1 - i/N$. From $t$ to $s < t$ every masked token is revealed, independently, with
  probability $\frac{\alpha(s) - \alpha(t)}{1 - \alpha(t)}$, its value drawn from
  $p_\theta(x_0 \mid x_t)$. The network has no time input, so a step that reveals nothing
  does not need it: with `cache=True` it is called only when a token is revealed.
- **confidence** (LLaDA): draw a value $\hat x^i$ for every masked token, keep the most
  confident ones, as many as the schedule says, remask the rest.
- **threshold** (Fast-dLLM): commit every drawn value whose confidence exceeds a threshold,
  at least one per step: easy tokens go many at a time, hard ones one by one.
- **left_to_right** and **random**: the same counts per step as confidence, but the positions
  are fixed in advance, the leftmost masks first or a random order: the baselines that show
  what choosing the order by confidence buys (Kim et al. 2025).

The confidence of a drawn value is the model's own probability of it,
$c^i = \mathrm{softmax}(\ell^i)_{\hat x^i}$ from the raw logits $\ell^i$ at temperature 1,
with no top-k / top-p filter: temperature, top-k and top-p change which value is drawn,
never how sure the model is of it.

`block_size` makes any of them semi-autoregressive: blocks are decoded left to right.
Token values are drawn in float64 with the Gumbel-max trick; float32 noise truncates the
tail and lowers diversity. Memory does not grow as B * T * V: from a net split into
`features` and `head` (the library's Transformer; also behind a block cache, and a block
diffusion model) the sampler takes the hidden states at the positions a step may fill, and
`draw.sample_rows` runs the head and the draw on them a chunk of rows at a time. Beyond the
forward pass, the sampler's peak is then the hidden states, at most $2 B T C e$ bytes ($e$ = 4
in float32, 2 in bf16: the full (B, T, C) and the N <= B T rows taken from it; cached
ancestral keeps those rows, not their logits) plus one chunk: `draw.LOGITS_BUDGET` bytes of
logits and about three float64 arrays of at most `draw.FLOAT64_BUDGET` bytes (64 MiB each by
default): $2 B T C e + 4 \times 64$ MiB. At B = 16, T = 1,024, C = 768 that is about 0.37 GB
(0.1 GB of hidden states), where the logits alone were 3.3 GB. A plain denoiser
(`net(ids) -> logits`) still hands over all its logits, drawn in chunks, and the compiled
block step (decode.py) a block's, B K V.

A causal (`cfg.causal=True`) net, the autoregressive baseline, is sampled left to right
with its key/value cache, for comparison. It reads the mask id as its beginning-of-sequence
token (it never sees [MASK] otherwise, and the embedding row is there): sampling starts from
$(m, \text{prompt})$, so a prompt may be empty, and the first token is drawn from
$p_\theta(x_1 \mid m)$, as `loss.ar_loss` trains it. That start token is not returned.

References: Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language Models"
(MDLM), sec. 3 and the cached sampler of its appendix; Nie et al. 2025, "Large Language
Diffusion Models" (LLaDA), sec. 2.4 and appendix B; Wu et al. 2025, "Fast-dLLM"; Zheng et
al. 2024, "Masked diffusion models are secretly time-agnostic masked models and exploit
inaccurate categorical sampling"; Holtzman et al. 2020 (top-p sampling).
"""

import inspect
import math

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .block import fill_blocks
from .corrupt import get_schedule
from .decode import autoregressive
from .draw import check_sampling, head_of, sample_rows, sample_tokens
from .draw import uniform as _uniform
from .fastcache import BlockCache

__all__ = [
    "STRATEGIES", "generate", "sample_tokens", "reveal_probability", "ancestral_step",
    "reveal_counts", "select_most_confident", "threshold_reveal", "decode_blocks", "answer", "until_eot",
]

STRATEGIES = ("ancestral", "confidence", "threshold", "left_to_right", "random")
ORDERED = ("confidence", "left_to_right", "random")  # reveal reveal_counts() tokens per step, in some order


def reveal_probability(schedule, t, s) -> torch.Tensor:
    r"""The chance that a token masked at time t is revealed by time s, $0 \le s < t \le 1$ (float64).

    $q(x_s^i \ne m \mid x_t^i = m) = \frac{\alpha(s) - \alpha(t)}{1 - \alpha(t)}$; it is 1 at s = 0.
    """
    schedule = get_schedule(schedule)
    t = torch.as_tensor(t, dtype=torch.float64)
    s = torch.as_tensor(s, dtype=torch.float64)
    alpha_t, alpha_s = schedule.alpha(t), schedule.alpha(s)
    return (alpha_s - alpha_t) / (1.0 - alpha_t)


def _ancestral_reveal(is_masked, t, s, schedule, generator) -> torch.Tensor:
    """Which of the masked positions (B, T) are revealed going from t to s: independent coins."""
    p = reveal_probability(schedule, t, s).item()
    return is_masked & (_uniform(is_masked.shape, generator, is_masked.device) < p)  # (B, T)


def ancestral_step(x, logits, mask_id, t, s, schedule, generator=None, temperature=1.0, top_k=None, top_p=None):
    r"""One MDLM reverse step from time t to s < t: x (B, T) ids, logits (B, T, V) -> new ids (B, T).

    Each masked position is revealed with probability $\frac{\alpha(s)-\alpha(t)}{1-\alpha(t)}$
    and gets a value drawn from its logits (`sample_tokens`); every other position is kept.
    The random numbers are drawn in this order: one uniform per position, then one token
    draw per revealed position (`generate` draws them in the same order).
    """
    reveal = _ancestral_reveal(x == mask_id, t, s, schedule, generator)  # (B, T)
    x_new = x.clone()
    if reveal.any():
        x_new[reveal], _ = sample_tokens(logits[reveal], temperature, top_k, top_p, generator)
    return x_new


def reveal_counts(n_masked, steps, schedule="linear") -> list[int]:
    r"""How many tokens to reveal at each of `steps` steps so the masked fraction follows $1 - \alpha(t)$.

    After step i (time $t_i = 1 - i/\text{steps}$) about $n \cdot \alpha(t_i)$ tokens are
    revealed, rounded. The counts sum to `n_masked`, every step reveals at least one, and
    when steps > n_masked the first n_masked steps reveal one each and the rest zero.
    """
    if n_masked < 0 or steps < 1:
        raise ValueError(f"need n_masked >= 0 and steps >= 1, got n_masked={n_masked}, steps={steps}")
    times = 1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps
    target = (n_masked * get_schedule(schedule).alpha(times)).tolist()  # revealed after step i
    counts, done = [], 0
    for i in range(1, steps + 1):
        low = min(done + 1, n_masked)  # at least one per step while tokens remain
        high = n_masked - (steps - i) if steps <= n_masked else n_masked  # leave one per later step
        revealed = min(max(math.floor(target[i] + 0.5), low), high)
        counts.append(revealed - done)
        done = revealed
    return counts


def select_most_confident(confidence, is_masked, k) -> torch.Tensor:
    """Boolean (B, T): the k most confident masked positions of each row (all of them if fewer).

    confidence (B, T) any real numbers; is_masked (B, T) bool; k an int or a (B,) tensor.
    Unmasked positions are never selected; ties go to the leftmost position.
    """
    B, T = confidence.shape
    k = torch.as_tensor(k, device=confidence.device).reshape(-1).expand(B)  # (B,)
    if (k < 0).any():
        raise ValueError(f"k must be >= 0, got {k.tolist()}")
    # sort by confidence, then (stably) masked-first, so that masked positions always rank first
    order = confidence.argsort(dim=1, descending=True, stable=True)  # (B, T)
    order = order.gather(1, is_masked.gather(1, order).int().argsort(dim=1, descending=True, stable=True))
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(T, device=order.device).expand(B, T))
    return (rank < k[:, None]) & is_masked


def threshold_reveal(confidence, is_masked, threshold) -> torch.Tensor:
    r"""Boolean (B, T): the positions one threshold step reveals (Fast-dLLM's parallel rule).

    Every masked position whose drawn token the model gives a probability above `threshold`,
    $\{i : x_t^i = m,\ c^i > \tau\}$, and in each row that still has a mask at least its single
    most confident one, so that every network call makes progress. A confident stretch is thus
    revealed in one call; where the model is unsure, one token per call, as confidence decoding
    does. confidence (B, T) real numbers; is_masked (B, T) bool; threshold a float.
    """
    return (is_masked & (confidence > threshold)) | select_most_confident(confidence, is_masked, 1)


def _prompt_tensor(prompt, device) -> torch.Tensor:
    if prompt is None:
        return torch.empty(0, dtype=torch.long, device=device)
    if isinstance(prompt, (list, tuple)) and len(prompt) == 0:
        raise ValueError("prompt is an empty list: pass prompt=None to generate without a prompt")
    prompt = torch.as_tensor(prompt, dtype=torch.long, device=device)
    if prompt.dim() not in (1, 2):
        raise ValueError(f"prompt must be 1-D (one prompt shared by the batch) or 2-D (one prompt per row, all of one "
                         f"length), got shape {tuple(prompt.shape)}")
    return prompt


def until_eot(ids, eot_id) -> list[int]:
    """The ids before the first eot_id (all of them if there is none, or if eot_id is None)."""
    ids = [int(i) for i in ids]
    return ids[: ids.index(eot_id)] if eot_id in ids else ids


def answer(net, tokenizer, prompts, *, steps=None, strategy="confidence", temperature=0.0, schedule="linear",
           threshold=None, batch_size=64, generator=None, progress=False) -> list[str]:
    """Answer each prompt (a list of strings) with a model trained on prompt/response pairs (pairs.py).

    The prompt's P tokens are followed by seq_len - P masks, the shape of the rows it was
    trained on, and `generate` denoises them (a causal net writes them left to right); the
    answer is the text before the first end-of-text. Prompts of one token length are answered
    together, batch_size at a time. steps: network calls per answer (None: one per masked
    position); temperature 0 is greedy. progress=True shows a progress bar over the prompts.
    """
    seq_len = net.cfg.seq_len
    encoded = tokenizer.encode_batch(list(prompts))
    by_length = {}
    for index, ids in enumerate(encoded):
        if len(ids) >= seq_len:
            raise ValueError(f"prompt {index} is {len(ids)} tokens and the model's rows hold {seq_len}: no room is "
                             f"left for an answer; shorten it")
        by_length.setdefault(len(ids), []).append(index)
    device = next(net.parameters()).device
    answers = [None] * len(encoded)
    with tqdm(total=len(encoded), unit="prompt", disable=not progress, dynamic_ncols=True) as bar:
        for P, indices in sorted(by_length.items()):
            length = seq_len - P
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                prompt = torch.tensor([encoded[i] for i in chunk], dtype=torch.long, device=device)  # (b, P)
                ids = generate(net, mask_id=tokenizer.mask_id, length=length, prompt=prompt,
                               steps=length if steps is None else min(steps, length), strategy=strategy,
                               schedule=schedule, temperature=temperature, threshold=threshold,
                               generator=generator)  # (b, L)
                for row, i in enumerate(chunk):
                    answers[i] = tokenizer.decode(until_eot(ids[row, P:], tokenizer.eot_id))
                bar.update(len(chunk))
    return answers


def decode_blocks(is_masked, block_size) -> list[torch.Tensor]:
    """The blocks that `generate` fills one after another, left to right: a list of column indices.

    is_masked (T,) bool, one sequence. block_size=None is one block of all T columns;
    otherwise the region from the first mask to the end is cut into runs of `block_size`
    columns and the runs that hold a mask are kept. Each block needs at least one step.
    """
    T = is_masked.shape[0]
    if block_size is None:
        return [torch.arange(T)]
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1 (or None for one block), got {block_size}")
    start = int(is_masked.nonzero()[0])
    cuts = [torch.arange(a, min(a + block_size, T)) for a in range(start, T, block_size)]
    return [cols for cols in cuts if is_masked[cols].any()]


def _blocks(is_masked, block_size, steps):
    """[(columns, steps)]: the blocks of `decode_blocks`, `steps` shared evenly, the first get the remainder."""
    cuts = decode_blocks(is_masked, block_size)
    if steps < len(cuts):
        raise ValueError(f"steps={steps} is fewer than the {len(cuts)} blocks: raise steps or block_size")
    base, extra = divmod(steps, len(cuts))
    return [(cols, base + (i < extra)) for i, cols in enumerate(cuts)]


def _takes_only_at(net) -> bool:
    """Does the net's forward take `only_at=` (the library's Transformer does; a plain denoiser need not)?"""
    forward = net.forward if isinstance(net, nn.Module) else net
    try:
        return "only_at" in inspect.signature(forward).parameters
    except (TypeError, ValueError):  # a callable without a signature Python can read
        return False


def _reader(net, headed, block_cache=None):
    """read(x, where) -> (rows, head): what the draw needs at the True positions of where (B, T), row-major.

    A net with features and head (and a fastcache.BlockCache of one): its hidden states (N, C) and its
    head, which sample_rows runs a chunk of rows at a time; a plain denoiser: its logits (N, V) and None,
    with the head only there (headed: the net takes only_at) or all of (B, T, V) computed and indexed."""
    head = head_of(net)
    if block_cache is not None:
        return lambda x, where: (block_cache.features(x, where), head)
    if head is not None:
        return lambda x, where: (net.features(x)[where], head)  # (N, C): no logits yet
    return lambda x, where: (net(x, only_at=where) if headed else net(x)[where], None)  # (N, V)


def _diffusion(read, x, mask_id, steps, strategy, schedule, sampling, block_size, threshold, cache, generator,
               record, block_cache=None):
    """Fill every mask of x (B, T) in place; return (network calls, steps taken). read: `_reader`'s function,
    one network call; block_cache: the fastcache.BlockCache behind read, told where each block starts."""
    calls, taken, rows, computed_at = 0, 0, None, None
    for cols, block_steps in _blocks(x[0] == mask_id, block_size, steps):
        if block_cache is not None:
            block_cache.start_block(int(cols[0]), int(cols[-1]) + 1)
        in_block = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
        in_block[cols.to(x.device)] = True
        stale = True  # x changed since the last call (a new block: the rows are for the block before)
        if strategy in ORDERED:
            counts = reveal_counts(int((x[0] == mask_id)[in_block].sum()), block_steps, schedule)
        for i in range(block_steps):
            scope = (x == mask_id) & in_block  # (B, T) masks this block may fill
            if not scope.any():
                break
            if strategy == "ancestral":
                # draw the coins first: no reveal, no network needed (MDLM's cached sampler)
                reveal = _ancestral_reveal(scope, 1 - i / block_steps, 1 - (i + 1) / block_steps, schedule, generator)
                if not cache or (reveal.any() and stale):
                    (rows, head), computed_at = read(x, scope), scope  # (N, C) or (N, V) at scope's positions
                    stale, calls = False, calls + 1
                if reveal.any():  # reveal lies inside computed_at: masks only ever get fewer within a block
                    x[reveal], _ = sample_rows(rows[reveal[computed_at]], head, *sampling, generator=generator)
                    stale = True
            elif strategy in ("left_to_right", "random"):  # the order ignores the values: draw only where revealed
                reveal = select_most_confident(_priority(strategy, x, generator), scope, counts[i])  # (B, T)
                calls += 1
                x[reveal], _ = sample_rows(*read(x, reveal), *sampling, generator=generator)
            else:
                calls += 1
                tokens = torch.full_like(x, mask_id)  # (B, T)
                # (B, T): the model's own probability of each drawn token (temperature 1, unfiltered)
                confidence = torch.full(x.shape, float("-inf"), dtype=torch.float64, device=x.device)
                tokens[scope], confidence[scope] = sample_rows(*read(x, scope), *sampling, generator=generator)
                if strategy == "confidence":
                    reveal = select_most_confident(confidence, scope, counts[i])
                elif i == block_steps - 1:  # threshold, last step of the block: commit all that is left
                    reveal = scope
                else:
                    reveal = threshold_reveal(confidence, scope, threshold)
                x[reveal] = tokens[reveal]
            taken += 1
            record(x)
    return calls, taken


def _priority(strategy, x, generator) -> torch.Tensor:
    """(B, T) float64, the order in which left_to_right and random reveal the masks of x (B, T), highest first:
    minus the position, or a fresh random number per position."""
    if strategy == "left_to_right":
        return -torch.arange(x.shape[1], dtype=torch.float64, device=x.device).expand(x.shape)
    return _uniform(x.shape, generator, x.device)


def generate(net, *, mask_id, length, steps, prompt=None, strategy="confidence", schedule="linear",
             temperature=1.0, top_k=None, top_p=None, block_size=None, threshold=None, batch_size=1,
             generator=None, return_trajectory=False, stats=None, cache=True, use_cache=True, eot_id=None,
             compile=False, block_cache=None, cache_refresh=None):
    """Sample `batch_size` sequences of the prompt followed by `length` generated tokens.

    net: a denoiser, `net(ids (B, T)) -> logits (B, T, V)`; `net.cfg.seq_len` (if present)
    bounds the length and `net.cfg.causal=True` switches to left-to-right sampling.
    prompt: None, a list of ids or a 1-D LongTensor; any `mask_id` in it is filled as well
    (infilling), and then length=0 is allowed. A 2-D (B, P) prompt gives each row its own
    prompt (all of length P, no mask_id; batch_size is then B): a batch of questions to answer.
    strategy: "ancestral", "confidence", "threshold" (needs threshold in (0, 1)),
    "left_to_right" or "random" (confidence's counts, a fixed order); schedule: how fast masks are removed (ancestral,
    confidence). temperature / top_k / top_p shape the distribution the values are drawn
    from; confidence and threshold rank the drawn values by the model's own probability at
    temperature 1, unfiltered (see `sample_tokens`). block_size: decode the
    region from the first mask onwards in blocks of this many positions, left to right,
    `steps` shared evenly among the blocks that hold a mask (the first get the remainder).
    cache (ancestral): call the network only when a step reveals a token; cache=False calls
    it every step, with the same random numbers and so the same tokens.
    Causal nets: the network reads `mask_id` as its beginning-of-sequence token, then the
    prompt (None for unconditional samples); that start token is not returned. `steps`,
    `strategy` and `block_size` are not used, there is one network call per generated token,
    and use_cache=False recomputes the whole prefix each time instead of using the key/value
    cache. The last generated token is never fed back, so len(prompt) + length <= seq_len.
    Block diffusion nets (`net.cfg.block_size` set, block.py): decoded a block at a time with
    their key/value cache, `steps` shared among the blocks, any strategy within a block;
    `block_size` must be left out (or equal the model's). With eot_id, they stop after the
    block in which every row has written eot_id, and the result is that much shorter.
    compile=True (causal and block diffusion nets): decode with a static-shape key/value cache and a
    `torch.compile`d step (CUDA graphs on a GPU; decode.py), the same tokens as without; the first
    call compiles, and a failed compilation falls back to eager with a one-line message.
    block_cache ("prefix" or "dual", with block_size, for a bidirectional Transformer): Fast-dLLM's
    approximate key/value caches (fastcache.py): the prefix (and the masked suffix) are computed
    once per block, or every `cache_refresh` calls; cache_refresh=1 gives the uncached tokens.

    Returns ids (batch_size, len(prompt) + length) on the net's device; with
    return_trajectory=True, `(ids, trajectory)`: CPU copies of the state before the first
    step and after every step. `stats`, if a dict, gets network_calls, steps and strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_sampling(temperature, top_k, top_p)
    if strategy == "threshold" and threshold is None:
        raise ValueError("strategy='threshold' needs threshold=<a confidence in (0, 1)>, e.g. threshold=0.9")
    if threshold is not None and not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    schedule = get_schedule(schedule)
    cfg = getattr(net, "cfg", None)
    causal = bool(getattr(cfg, "causal", False))
    model_blocks = getattr(cfg, "block_size", None)  # a block diffusion model's own block size
    if model_blocks is not None and block_size not in (None, model_blocks):
        raise ValueError(f"this block diffusion model decodes in its own blocks of {model_blocks}; leave block_size "
                         f"out (got {block_size})")
    seq_len = getattr(cfg, "seq_len", None)
    first_param = next(net.parameters(), None) if isinstance(net, nn.Module) else None
    device = first_param.device if first_param is not None else torch.device("cpu")

    prompt = _prompt_tensor(prompt, device)
    prompts = prompt if prompt.dim() == 2 else prompt.expand(batch_size, -1)  # (B, P)
    batch_size, prompt_len = prompts.shape
    infilling = bool((prompt == mask_id).any())
    if infilling and prompt.dim() == 2:
        raise ValueError("infilling takes one prompt shared by the batch (1-D); a 2-D prompt must hold no mask_id")
    if length < 0 or (length == 0 and not infilling):
        raise ValueError(f"length must be at least 1 (or 0 with mask_id in the prompt to infill), got {length}")
    if seq_len is not None and prompt_len + length > seq_len:
        raise ValueError(f"prompt ({prompt_len}) + length ({length}) exceeds the model's seq_len={seq_len}: "
                         f"shorten the prompt or the length")
    if compile and not (causal or model_blocks is not None):
        raise ValueError("compile=True speeds up key/value-cached decoding, which causal and block diffusion "
                         "models have; drop compile for this model")
    if compile and not use_cache:
        raise ValueError("compile=True decodes with a static key/value cache: it needs use_cache=True")
    if block_cache is not None:
        if causal or model_blocks is not None:
            raise ValueError("block_cache is for a bidirectional (MDLM) model; a causal or block diffusion model "
                             "already decodes with its exact key/value cache: drop block_cache")
        if block_size is None:
            raise ValueError(f"block_cache={block_cache!r} caches what lies outside the block being decoded: give "
                             f"block_size too")
        if not hasattr(net, "new_cache"):
            raise ValueError("block_cache needs a net with a key/value cache (the library's Transformer)")
    elif cache_refresh is not None:
        raise ValueError("cache_refresh sets how often block_cache recomputes its keys and values: give block_cache")
    if causal and infilling:
        raise ValueError("a causal model cannot infill: remove mask_id from the prompt or use a diffusion model")

    bos = 1 if causal else 0  # a causal net starts from its beginning-of-sequence token, mask_id
    x = torch.full((batch_size, bos + prompt_len + length), mask_id, dtype=torch.long, device=device)  # (B, bos + T)
    x[:, bos : bos + prompt_len] = prompts
    trajectory = []

    def record(state):
        if return_trajectory:
            trajectory.append(state[:, bos:].cpu().clone())

    record(x)
    sampling = (temperature, top_k, top_p)
    headed = _takes_only_at(net)  # the output head only where a token may be revealed
    was_training = getattr(net, "training", False)
    if isinstance(net, nn.Module):
        net.eval()
    try:
        with torch.no_grad():
            if causal:
                def draw(logits):  # $x_{pos} \sim p(\cdot \mid x_{<pos})$, logits (B, V)
                    return sample_tokens(logits, *sampling, generator=generator)[0]

                calls = autoregressive(net, x, bos + prompt_len, draw, record, use_cache, headed, compile)
                taken, strategy = calls, "autoregressive"
            elif model_blocks is not None:
                head = head_of(net)

                def fill(denoise, view, block_steps):  # one block, any strategy, recording the whole sequence
                    def read(ids, where):  # the hidden states and the head, or the compiled step's logits
                        rows, hidden = denoise(ids, where)
                        return rows, head if hidden else None

                    return _diffusion(read, view, mask_id, block_steps, strategy, schedule, sampling, None,
                                      threshold, cache, generator, lambda _: record(x))

                start = int((x[0] == mask_id).nonzero()[0])
                calls, taken, end = fill_blocks(net, x, start, model_blocks, steps, fill, eot_id, use_cache, compile)
                x = x[:, :end]
            else:
                fast = None if block_cache is None else BlockCache(net, batch_size, block_cache, cache_refresh)
                calls, taken = _diffusion(_reader(net, headed, fast), x, mask_id, steps, strategy, schedule,
                                          sampling, block_size, threshold, cache, generator, record, fast)
    finally:
        if isinstance(net, nn.Module):
            net.train(was_training)
    if stats is not None:
        stats.update(network_calls=calls, steps=taken, strategy=strategy)
    x = x[:, bos:].contiguous()  # (B, T): the prompt and what was generated
    return (x, trajectory) if return_trajectory else x

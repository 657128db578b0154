r"""How good are generated samples? The measures that go beside a sampler's speed.

A diffusion sampler that reveals many tokens per network call is fast; whether its text is
still good has to be measured on the text itself, since the model's own bound scores the
training data, not what the sampler writes. MDLM (Sahoo et al. 2024, sec. 4), Duo (Sahoo et
al. 2025) and ReMDM (Wang et al. 2025) all report the same pair of numbers:

- **gen-NLL** (their gen-PPL is its exponential): the negative log-likelihood of each sample
  $y = (y_1, \dots, y_n)$ under a separate, stronger autoregressive *judge* $q$,

  $$ \mathrm{NLL}(y) = -\sum_{i=1}^{n} \log q(y_i \mid \text{bos}, y_{<i}) , $$

  exact (an AR model factorises its likelihood), divided by the sample's $n$ judge tokens
  (nats per judge token) or by its $c$ characters (nats per character: comparable across
  tokenizers). Both are averaged over the samples, with the standard error
  $s / \sqrt{N}$ of that mean. The judge reads the decoded text, so it need not share the
  sampled model's tokenizer; it must be causal, and must not be the model being judged
  (a model rates its own mistakes as likely).
- **unigram entropy** of each sample's tokens, $H(y) = -\sum_v \hat p_v \log \hat p_v$ with
  $\hat p_v$ the share of the sample's tokens equal to $v$, averaged over samples. Gen-NLL
  alone rewards repetition: "the the the ..." is cheap for any judge. A sampler that lowers
  gen-NLL by lowering entropy (a low temperature, greedy decoding) has not improved.

Two more cover what those miss:

- **distinct-n** (Li et al. 2016): the number of different n-grams over the total number
  of n-grams, pooled over all samples (n-grams never straddle two samples): 1 when nothing
  repeats, near 0 for a loop.
- **memorisation**: the share of the samples' 8-character windows that occur verbatim in
  the training text. Low gen-NLL from copying the training set is not generation.

Why quality falls as tokens per call rise: tokens revealed in the same call are drawn
independently, each from its own marginal. For two tokens with joint $p(a, b)$, one call
samples $p(a)\,p(b)$ instead; `parallel_reveal_gap` computes how far that is from $p(a, b)$
exactly (two calls, one token each, sample the joint itself).

`sample_quality` generates samples with `sample.generate`, times them and applies every
measure; `judge_report` is what `python -m dllm_lite.evaluate --checkpoint X --samples N
--judge Y` runs: it loads and checks the judge, and scores against the checkpoint's own
training split.

References: Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language Models";
Sahoo et al. 2025, "The Diffusion Duality"; Wang et al. 2025, "Remasking Discrete Diffusion
Models with Inference-Time Scaling"; Li et al. 2016, "A Diversity-Promoting Objective
Function for Neural Conversation Models".
"""

import math
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import load_tokens
from .load import load_checkpoint
from .sample import generate
from .tokenize import EOT_TEXT

__all__ = ["gen_nll", "unigram_entropy", "mean_entropy", "distinct_n", "training_windows", "memorisation",
           "parallel_reveal_gap", "sample_quality", "load_judge", "report_lines", "judge_report"]


def _mean_and_stderr(values) -> tuple[float, float]:
    """The mean of `values` and its standard error s / sqrt(N) (infinite for a single value)."""
    values = torch.tensor(values, dtype=torch.float64)
    stderr = (values.std() / math.sqrt(len(values))).item() if len(values) > 1 else float("inf")
    return values.mean().item(), stderr


def _characters(text: str) -> int:
    """The characters of a decoded sample, each end-of-text counted as one."""
    return len(text) - text.count(EOT_TEXT) * (len(EOT_TEXT) - 1)


@torch.no_grad()
def gen_nll(judge, judge_tokenizer, texts, batch_size=16) -> dict:
    r"""The exact NLL of each text under the causal `judge`, averaged over the texts.

    Each text is encoded with `judge_tokenizer` ("<|endoftext|>" read as its end-of-text id)
    and scored as $-\sum_i \log q(y_i \mid \text{bos}, y_{<i})$, the judge reading the mask
    id as beginning-of-sequence, as it was trained (`loss.ar_loss`). A text must fit the
    judge's rows: its n tokens are read from [bos, y_1 .. y_{n-1}], n <= judge.cfg.seq_len;
    a longer one is refused rather than cut into windows, which would score it with less
    context than the judge has and understate its NLL.

    Returns {"nll_per_token", "nll_per_token_stderr", "nll_per_char", "nll_per_char_stderr",
    "samples", "judge_tokens", "chars"}: nats per judge token and nats per character (an
    end-of-text counts as one character), each the mean over texts with its standard error.
    The judge runs in float32, also inside a bf16 autocast.
    """
    if not getattr(judge.cfg, "causal", False):
        raise ValueError("the judge must be an autoregressive model (train.objective=autoregressive); "
                         "a diffusion model has no exact likelihood to score samples with")
    texts = list(texts)
    if not texts:
        raise ValueError("no samples to score: pass at least one text")
    try:
        encoded = [judge_tokenizer.encode(text, allow_eot=True) for text in texts]
    except ValueError as error:
        raise ValueError(f"{error}; the judge's tokenizer cannot encode the samples: use a judge trained on the "
                         f"same characters") from None
    for index, ids in enumerate(encoded):
        if not 1 <= len(ids) <= judge.cfg.seq_len:
            raise ValueError(f"sample {index} is {len(ids)} judge tokens and the judge's rows hold 1 to "
                             f"{judge.cfg.seq_len}: use a judge with a longer model.seq_len")
    device = next(judge.parameters()).device
    mask_id = judge_tokenizer.mask_id
    was_training = judge.training
    judge.eval()
    totals = []
    try:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            width = max(len(ids) for ids in chunk)
            y = torch.tensor([ids + [0] * (width - len(ids)) for ids in chunk], device=device)  # (b, n) padded
            lengths = torch.tensor([len(ids) for ids in chunk], device=device)  # (b,)
            bos = torch.full_like(y[:, :1], mask_id)  # (b, 1)
            with torch.autocast(device.type, enabled=False):  # float32 even inside a bf16 autocast: exact
                logits = judge(torch.cat([bos, y[:, :-1]], dim=1))  # (b, n, V): position i predicts y_i
            nats = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")  # (b, n)
            scored = torch.arange(width, device=device) < lengths[:, None]  # (b, n) the padding is never scored
            totals += (nats * scored).sum(dim=1).tolist()
    finally:
        judge.train(was_training)
    tokens = [len(ids) for ids in encoded]
    chars = [max(_characters(text), 1) for text in texts]
    per_token, per_token_stderr = _mean_and_stderr([total / n for total, n in zip(totals, tokens)])
    per_char, per_char_stderr = _mean_and_stderr([total / c for total, c in zip(totals, chars)])
    return {"nll_per_token": per_token, "nll_per_token_stderr": per_token_stderr, "nll_per_char": per_char,
            "nll_per_char_stderr": per_char_stderr, "samples": len(texts), "judge_tokens": sum(tokens),
            "chars": sum(chars)}


def unigram_entropy(ids) -> float:
    r"""$H = -\sum_v \hat p_v \log \hat p_v$ in nats, $\hat p_v$ the share of the ids equal to v.

    ids: one sample (a list, or a 1-D tensor or array). log 2 for two values equally often,
    0 for one value repeated.
    """
    counts = Counter(int(i) for i in ids)
    n = sum(counts.values())
    if n == 0:
        raise ValueError("an empty sample has no entropy: pass at least one token")
    return -sum(c / n * math.log(c / n) for c in counts.values())


def mean_entropy(samples) -> float:
    """The unigram entropy of each sample (a sequence of ids), averaged over the samples."""
    samples = list(samples)
    if not samples:
        raise ValueError("no samples: pass at least one")
    return sum(unigram_entropy(ids) for ids in samples) / len(samples)


def distinct_n(samples, n: int) -> float:
    """Distinct n-grams over all n-grams, pooled over the samples (no n-gram crosses two samples).

    samples: sequences of ids (or strings, whose characters are the tokens). 1 when no n-gram
    repeats anywhere; 1 / (number of n-grams) when one n-gram fills everything.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    grams = [tuple(int(i) if not isinstance(i, str) else i for i in seq[k : k + n])
             for seq in samples for k in range(len(seq) - n + 1)]
    if not grams:
        raise ValueError(f"the samples hold no {n}-gram: each is shorter than {n} tokens")
    return len(set(grams)) / len(grams)


def training_windows(text: str, width: int = 8) -> frozenset:
    """Every `width`-character window of the training text, as a set to look windows up in (build it once)."""
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    return frozenset(text[k : k + width] for k in range(len(text) - width + 1))


def memorisation(texts, training, width: int = 8) -> float:
    """The share of the texts' `width`-character windows found verbatim in the training text.

    training: the training text, or `training_windows(text, width)` built once for many calls.
    The windows of every text are pooled (each text of c characters has c - width + 1).
    """
    windows = training_windows(training, width) if isinstance(training, str) else training
    sample_windows = [text[k : k + width] for text in texts for k in range(len(text) - width + 1)]
    if not sample_windows:
        raise ValueError(f"the samples hold no {width}-character window: each is shorter than {width} characters")
    return sum(window in windows for window in sample_windows) / len(sample_windows)


def parallel_reveal_gap(joint) -> dict:
    r"""How far one call revealing two tokens is from the joint it should sample, exactly.

    joint (V1, V2): the probabilities $p(a, b)$ of two masked tokens given the rest (they sum
    to 1). A call that reveals both draws each from its marginal, so it samples the product
    $\pi(a, b) = p(a)\,p(b)$. Returns, in nats where it applies:

    - "kl_joint_product": $\mathrm{KL}(p \,\|\, \pi) = I(a; b)$, the mutual information the
      one-call reveal throws away (0 exactly when the two tokens are independent);
    - "kl_product_joint": $\mathrm{KL}(\pi \,\|\, p)$, the extra NLL per pair that a judge who
      knows $p$ charges the samples (infinite when $\pi$ writes pairs $p$ never does);
    - "total_variation": $\frac12 \sum_{a,b} |p(a,b) - \pi(a,b)|$;
    - "product": $\pi$ itself, as a (V1, V2) tensor.
    """
    joint = torch.as_tensor(joint, dtype=torch.float64)
    if joint.dim() != 2 or (joint < 0).any() or abs(joint.sum().item() - 1) > 1e-6:
        raise ValueError("joint must be a 2-D table of probabilities p(a, b) that are >= 0 and sum to 1")
    product = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)  # (V1, V2) $p(a)\,p(b)$

    def kl(p, q):  # $\sum p \log(p / q)$, with 0 log 0 = 0
        terms = torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p))
        return terms.sum().item()

    return {"kl_joint_product": kl(joint, product), "kl_product_joint": kl(product, joint),
            "total_variation": 0.5 * (joint - product).abs().sum().item(), "product": product}


def _synchronize(device) -> None:
    """Wait for queued GPU work, so that a wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_quality(net, tokenizer, judge, judge_tokenizer, *, samples, batch_size=16, training=None, generator=None,
                   progress=False, **options) -> dict:
    """Generate `samples` unconditional sequences of the model's seq_len and measure them.

    options go to `sample.generate` (steps, default one per position; strategy, threshold,
    temperature, block_size, ...), batch_size rows at a time. training: the training text or
    its `training_windows`, for memorisation (left out of the result when None).
    Returns gen_nll (nats per character) and its stderr, gen_nll_per_token (per judge token)
    and its stderr, entropy (nats, mean unigram entropy of the model's tokens), distinct2,
    distinct3, memorisation, calls_per_token (network calls per generated position, a
    batch's call counted once), tokens_per_s (generated tokens over the wall time of the
    generate calls alone), samples, seq_len, and the texts. With compile=True one untimed batch
    is generated first, so that the compilation is not counted.
    """
    if samples < 1 or batch_size < 1:
        raise ValueError(f"samples and batch_size must be at least 1, got {samples} and {batch_size}")
    length = net.cfg.seq_len
    options = {"steps": length, **{key: value for key, value in options.items() if value is not None}}
    device = next(net.parameters()).device
    rows, calls, seconds = [], 0, 0.0
    if options.get("compile"):  # compile outside the clock, on random numbers of its own
        generate(net, mask_id=tokenizer.mask_id, length=length, batch_size=min(batch_size, samples), **options)
    with tqdm(total=samples, unit="sample", dynamic_ncols=True, **({} if progress else {"disable": True})) as bar:
        while len(rows) < samples:
            size, stats = min(batch_size, samples - len(rows)), {}
            _synchronize(device)
            start = time.perf_counter()
            ids = generate(net, mask_id=tokenizer.mask_id, length=length, batch_size=size, generator=generator,
                           stats=stats, **options)  # (size, length)
            _synchronize(device)
            seconds += time.perf_counter() - start
            calls += stats["network_calls"]
            rows += ids.cpu().tolist()
            bar.update(size)
    batches = math.ceil(samples / batch_size)
    texts = [tokenizer.decode(ids) for ids in rows]
    judged = gen_nll(judge, judge_tokenizer, texts, batch_size=batch_size)
    result = {"gen_nll": judged["nll_per_char"], "gen_nll_stderr": judged["nll_per_char_stderr"],
              "gen_nll_per_token": judged["nll_per_token"], "gen_nll_per_token_stderr": judged["nll_per_token_stderr"],
              "entropy": mean_entropy(rows), "distinct2": distinct_n(rows, 2), "distinct3": distinct_n(rows, 3),
              "calls_per_token": calls / (batches * length), "tokens_per_s": samples * length / seconds,
              "samples": samples, "seq_len": length, "texts": texts}
    if training is not None:
        result["memorisation"] = memorisation(texts, training)
    return result


def load_judge(path, device="cpu", model=None, model_path=None):
    """(judge, tokenizer) from an AR checkpoint; refuses a diffusion one, and the judged model itself.

    model / model_path: the net being judged and its file; a judge at the same path, or with
    the same configuration and weights, is refused.
    """
    judge, judge_tokenizer, _, _ = load_checkpoint(path, device)
    if not judge.cfg.causal:
        raise ValueError(f"the judge {path} is a diffusion model; pass an autoregressive checkpoint "
                         f"(train.objective=autoregressive) with --judge")
    same_file = model_path is not None and Path(model_path).resolve() == Path(path).resolve()
    same_weights = model is not None and model.cfg == judge.cfg and all(
        torch.equal(a, b.to(a.device)) for a, b in zip(judge.state_dict().values(), model.state_dict().values()))
    if same_file or same_weights:
        raise ValueError(f"the judge {path} is the model being judged, which rates its own mistakes as likely; "
                         f"pass a separate, stronger autoregressive checkpoint with --judge")
    return judge, judge_tokenizer


def report_lines(result: dict) -> str:
    """Two lines: the units and the extra measures, then the key=value line (gen_nll in nats per character)."""
    first = (f"gen_nll in nats per character (per judge token: {result['gen_nll_per_token']:.4f}), stderr "
             f"{result['gen_nll_stderr']:.4f} over {result['samples']} samples; distinct3={result['distinct3']:.4f}")
    if "memorisation" in result:
        first += f" memorisation={result['memorisation']:.4f}"
    return first + "\n" + " ".join(f"{key}={result[key]:.4f}" for key in
                                    ("gen_nll", "entropy", "distinct2", "calls_per_token", "tokens_per_s"))


def judge_report(net, tokenizer, cfg, judge_path, *, checkpoint=None, device="cpu", samples=16, batch_size=16,
                 generator=None, **options) -> tuple[dict, str]:
    """What `evaluate --samples N --judge Y` runs: (result, the text to print, its last line key=value).

    Loads the judge (`load_judge`), generates and scores `samples` sequences
    (`sample_quality`, with a progress bar; options go to `sample.generate`), and measures
    memorisation against the checkpoint config's training split.
    """
    judge, judge_tokenizer = load_judge(judge_path, device, model=net, model_path=checkpoint)
    training = tokenizer.decode(load_tokens(cfg.data, tokenizer, "train"))
    result = sample_quality(net, tokenizer, judge, judge_tokenizer, samples=samples, batch_size=batch_size,
                            training=training, generator=generator, progress=True, **options)
    result = {"judge": str(judge_path), "options": options, **result}
    return result, report_lines(result)

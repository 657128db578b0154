"""Write notebooks 05 (sampling) and 10 (infilling) from the cells below, without outputs.

    python notebooks/build/build_05_10.py            # both
    python notebooks/build/build_05_10.py 10         # only this number

Then execute them in place, 05 first (10 reuses the denoiser that 05 saves under runs/notebooks/):

    jupyter nbconvert --to notebook --execute --inplace notebooks/05_sampling.ipynb notebooks/10_infilling.ipynb

Both notebooks train their own small character-level models inside the notebook with a
short loop over `loss.diffusion_loss` / `loss.ar_loss`, so they depend on nothing but the
core modules. Every costly size goes through `pick(full, smoke)`: `DLLM_SMOKE=1` (CI)
runs the same cells in seconds.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import NB09_OVERRIDES, code, md, write_notebook  # noqa: E402


# ----------------------------------------------------------------------------- shared cells

SETUP = '''from dllm_lite.notebook import setup, pick, is_smoke
device = setup(seed=0)

import math
import re
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import dllm_lite
from dllm_lite import loss, model, sample, tokenize, viz

# the repository root (the folder holding configs/); trained weights go to its git-ignored runs/
ROOT = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "configs").is_dir()),
            Path(dllm_lite.__file__).resolve().parent.parent)
RUNS = ROOT / "runs" / "notebooks"
MODE = "smoke" if is_smoke() else "full"
print(f"device: {device}; smoke mode: {is_smoke()}")
'''

DATA = '''# NBVAL_CHECK_OUTPUT
text = tokenize.bundled_corpus_path("tiny_shakespeare").read_text(encoding="utf-8")
tok = tokenize.get_tokenizer("char", text=text)
split = int(0.9 * len(text))  # the first 90% to train on, the last 10% held out
train_text, val_text = text[:split], text[split:]
train_ids = torch.tensor(tok.encode(train_text))
val_ids = torch.tensor(tok.encode(val_text))
V = tok.vocab_size - 1  # the ids a prediction can take: the characters and end-of-text; the last id is [MASK]
print(f"{len(text):,} characters: {len(tok.chars)} distinct ones, end-of-text = id {tok.eot_id}, "
      f"[MASK] = id {tok.mask_id}")
print(f"train {len(train_ids):,} / held out {len(val_ids):,} characters")
'''

MODEL = '''cfg = model.ModelConfig(vocab_size=tok.vocab_size, n_layer=2, n_head=4,
                        n_embd=pick(128, 64), seq_len=pick(128, 64))
L = cfg.seq_len  # every sample in this notebook is one window of L characters
TRAIN_STEPS, AR_STEPS, BATCH = pick(1200, 40), pick(600, 40), 16
DENOISER_FILE = RUNS / f"char_denoiser_{MODE}.pt"  # saved, so that you can sample again without training


def fit(net, objective, steps, batch_size=BATCH, lr=3e-3, seed=0):
    """AdamW on random windows of the training text; objective(net, x0, generator) -> loss. Returns the losses."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses, start = [], time.time()
    net.train()
    for step in range(1, steps + 1):
        offsets = torch.randint(len(train_ids) - net.cfg.seq_len, (batch_size,), generator=generator)
        x0 = torch.stack([train_ids[o : o + net.cfg.seq_len] for o in offsets]).to(device)  # (B, L)
        value = objective(net, x0, generator)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        losses.append(value.item())
        if step % max(steps // 4, 1) == 0:
            print(f"step {step:5d}/{steps}: loss {np.mean(losses[-50:]):.3f} nats/char ({time.time() - start:.0f} s)")
    net.eval()
    return losses


def denoiser_objective(net, x0, generator):
    # the masked cross-entropy averaged over masked tokens (weighting="mean"): less noisy than
    # the ELBO's w(t) = 1/t weights in a short run; the real bound is measured after training
    return loss.diffusion_loss(net, x0, "linear", tok.mask_id, generator=generator, weighting="mean")


held_out = val_ids[: pick(64, 8) * L].view(-1, L).to(device)  # (N, L) windows to evaluate on
'''

TRIGRAM = '''# trigram counts of the training text: n[a, b, c] = how often c follows "ab"
trigram_counts = torch.zeros(V, V, V)
trigram_counts.index_put_((train_ids[:-2], train_ids[1:-1], train_ids[2:]), torch.ones(len(train_ids) - 2),
                          accumulate=True)
trigram_logp = ((trigram_counts + 0.1) / (trigram_counts + 0.1).sum(-1, keepdim=True)).log()  # (V, V, V)
'''

REPORT_BOUND = '''bound = loss.nll_bound(net, held_out, "linear", tok.mask_id, n_samples=pick(16, 2),
                       generator=torch.Generator().manual_seed(0))
print(f"held-out NLL bound: {bound:.3f} nats/char = {bound / math.log(2):.2f} bits/char "
      f"(uniform guessing: log {V} = {math.log(V):.2f} nats/char)")
'''

# ----------------------------------------------------------------------------- 05

NB05 = [md(r"""
# 05 · Sampling: from an all-masked sequence to text

In this notebook you will **learn**:

- how the reverse process of a masked diffusion model writes text, and the three rules that
  `dllm_lite.sample.generate` offers for *which* masked tokens to reveal at each step:
  **ancestral** (MDLM), **confidence** (LLaDA) and **threshold** (parallel decoding, Fast-dLLM);
- why the ancestral sampler may skip the network at some steps (**caching**), and how many
  network calls each strategy costs;
- **semi-autoregressive blocks** and **infilling** (masks anywhere in the prompt);
- how sample quality changes with the number of steps, measured with a cheap proxy that is
  explained below;
- why confidence decoding of a small model loops ("too too too too"), how to measure it, and
  what helps;
- how to watch denoising step by step, with a slider (`viz.denoising_viewer`) and as a
  static figure (`viz.plot_trajectory`).

**What it needs:** a CPU is enough. The full run trains a 0.4M-parameter character-level
denoiser for 1,200 steps (a few minutes on 2 CPU cores), then samples for a few more
minutes; a GPU is used automatically when there is one. With `DLLM_SMOKE=1` every size
shrinks and the notebook runs in well under a minute (its numbers are then meaningless).
It builds on notebooks 01-04 (masking, the ELBO, the denoiser).
"""), code(SETUP), md(r"""
## 1. A small denoiser to sample from

We need a trained $p_\theta(x_0 \mid x_t)$ to sample from. Notebook 06 trains one with the
library's training command; here a dozen lines do it, so that this notebook stands alone:
Tiny Shakespeare at the character level, windows of $L$ characters, AdamW.

The objective is the masked cross-entropy of notebook 02. Instead of the ELBO weights
$w(t) = 1/t$ we average over the masked positions, $\frac{1}{|M|}\sum_{i \in M} -\log p_\theta(x_0^i \mid x_t)$
(`weighting="mean"`): it is not a bound, but it is much less noisy in a short run. Afterwards
we measure the real bound, `loss.nll_bound`, on held-out text. (The "mean" loss pools the
masked tokens of the whole batch, so heavily masked rows, the hardest predictions, weigh more
than in the ELBO: expect the training curve to sit above the bound.)
"""), code(DATA), code(MODEL), code('''
net = model.Transformer(cfg).to(device)
print(f"{net.num_params():,} parameters; training {TRAIN_STEPS} steps of {BATCH} x {L} characters")
losses = fit(net, denoiser_objective, TRAIN_STEPS)
''' + REPORT_BOUND + '''
RUNS.mkdir(parents=True, exist_ok=True)
torch.save({"config": asdict(cfg), "train_steps": TRAIN_STEPS, "state_dict": net.state_dict()}, DENOISER_FILE)
print(f"saved to {DENOISER_FILE.relative_to(ROOT)} (load it to sample again without training)")
'''), code('''
window = max(len(losses) // 20, 1)
smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
unigram = torch.bincount(train_ids, minlength=V).float() / len(train_ids)
ax = viz.plot_curves({f"masked cross-entropy (moving average of {window} steps)": (np.arange(len(smoothed)) + window, smoothed)},
                     hlines={f"uniform guess, log {V}": math.log(V),
                             "unigram entropy (guess from letter frequencies)": -(unigram * unigram.clamp_min(1e-12).log()).sum().item(),
                             "held-out NLL bound after training": bound},
                     ylabel="loss (nats per character)", title="training the denoiser")
plt.show()
'''), md(r"""
## 2. The reverse process, and three ways to walk it

Generation starts from $x_1 = (m, \dots, m)$, all $L$ positions masked, and ends at $x_0$,
nothing masked. With $N$ steps on the grid $t_i = 1 - i/N$, one step goes from $t$ to $s < t$.

**Ancestral (MDLM).** The exact reverse of the forward process, with the unknown $x_0$
replaced by the network's prediction. Each masked token, independently, is revealed with
probability

$$ q(x_s^i \ne m \mid x_t^i = m) = \frac{\alpha(s) - \alpha(t)}{1 - \alpha(t)} \qquad (= 1/(\text{steps left}) \text{ for } \alpha(t) = 1 - t) $$

and its value is drawn from $p_\theta(x_0^i \mid x_t)$. Which tokens go first is pure chance.

**Confidence (LLaDA).** Predict *every* masked token, $\hat x^i \sim p_\theta(\cdot \mid x_t)$,
score it by its probability $c^i = p_\theta(\hat x^i \mid x_t)$, keep the $k_i$ most confident
and re-mask the rest. $k_i$ follows the schedule, so that after step $i$ about
$n\,\alpha(t_i)$ of the $n$ masked tokens are revealed (`sample.reveal_counts`).

**Threshold (parallel decoding).** Keep every prediction with $c^i > \tau$, and at least the
single most confident one: easy tokens are committed many at a time, hard ones one by one,
so the number of steps adapts to the text.

All three call the same network; they differ only in the bookkeeping between calls.
"""), code('''
# NBVAL_CHECK_OUTPUT
print("tokens revealed per step, 20 masks in 8 steps (linear schedule):", sample.reveal_counts(20, 8))
print("chance to reveal a masked token, t = 0.50 -> s = 0.25:", float(sample.reveal_probability("linear", 0.5, 0.25)))
'''), code('''

def show_samples(ids, title, n=2):
    """Print the first n sequences of ids (B, T) as text, under a title."""
    print(f"=== {title}")
    for row in ids[:n]:
        print(tok.decode(row.tolist()))
        print("-" * 40)


for strategy, extra in [("ancestral", {}), ("confidence", {}), ("threshold", {"threshold": 0.5})]:
    stats = {}
    ids = sample.generate(net, mask_id=tok.mask_id, length=L, steps=L, strategy=strategy, batch_size=2,
                          generator=torch.Generator().manual_seed(0), stats=stats, **extra)
    show_samples(ids, f"{strategy}: {stats['network_calls']} network calls for {L} characters")
'''), md(r"""
Ancestral samples look like Shakespeare seen through frosted glass: the right shapes (names
in capitals, short lines, punctuation) with misspelt words. They are honest draws from a
weak model. Confidence samples read more like English words, but tend to repeat the same
few; section 8 measures that.

## 3. Caching: ancestral steps that reveal nothing are free

This denoiser has no time input: its output depends only on $x_t$. When a step reveals no
token, $x_s = x_t$, so the next step would call the network on the very same input. The
cached sampler therefore draws the coins first and calls the network only when some token is
about to be revealed and $x$ has changed since the last call (MDLM's appendix). With $N$ steps
and the linear schedule, every token's reveal step is uniform over the $N$ steps, so the
expected number of calls is the expected number of distinct steps hit by $L$ tokens:

$$ \mathbb{E}[\text{calls}] = N\Big(1 - \big(1 - \tfrac{1}{N}\big)^{L}\Big) \;\le\; \min(N, L) $$

With `cache=False` the same random numbers are drawn in the same order, so the tokens must be
identical: only the number of calls changes.
"""), code('''
many_steps = 4 * L
runs = {}
for cache in (False, True):
    stats = {}
    ids = sample.generate(net, mask_id=tok.mask_id, length=L, steps=many_steps, strategy="ancestral", cache=cache,
                          generator=torch.Generator().manual_seed(0), stats=stats)
    runs[cache] = (ids, stats["network_calls"])
print(f"{many_steps} ancestral steps without the cache: {runs[False][1]} network calls")
print(f"{many_steps} ancestral steps with the cache:    {runs[True][1]} network calls "
      f"(expected {many_steps * (1 - (1 - 1 / many_steps) ** L):.1f})")
print("identical tokens:", torch.equal(runs[False][0], runs[True][0]))
'''), md(r"""
## 4. Network calls per strategy

The cost of sampling is the number of forward passes. Below, each strategy fills $L$
characters, one sequence at a time (with a batch, the cached sampler must call the network
whenever *any* row reveals a token, and the threshold sampler runs until its slowest row is
done). The numbers are averaged over a few seeds, since the ancestral cache and the
threshold rule make them random.
"""), code('''
N_SEEDS = pick(4, 1)
settings = {
    f"ancestral, {4 * L} steps, no cache": dict(strategy="ancestral", steps=4 * L, cache=False),
    f"ancestral, {4 * L} steps, cached": dict(strategy="ancestral", steps=4 * L),
    f"ancestral, {L} steps, cached": dict(strategy="ancestral", steps=L),
    f"confidence, {L} steps": dict(strategy="confidence", steps=L),
    f"confidence, {L // 4} steps": dict(strategy="confidence", steps=L // 4),
    f"confidence, blocks of {L // 4}, {L} steps": dict(strategy="confidence", steps=L, block_size=L // 4),
    "threshold 0.9 (at most L steps)": dict(strategy="threshold", threshold=0.9, steps=L),
    "threshold 0.5": dict(strategy="threshold", threshold=0.5, steps=L),
    "threshold 0.2": dict(strategy="threshold", threshold=0.2, steps=L),
}
calls = {}
for name, kwargs in settings.items():
    counts = []
    for seed in range(N_SEEDS):
        stats = {}
        sample.generate(net, mask_id=tok.mask_id, length=L, generator=torch.Generator().manual_seed(seed),
                        stats=stats, **kwargs)
        counts.append(stats["network_calls"])
    calls[name] = counts

print(f"{'strategy':42s} {'calls (mean)':>12s} {'min-max':>9s} {'chars/call':>10s}")
for name, counts in calls.items():
    print(f"{name:42s} {np.mean(counts):12.1f} {min(counts):>4d}-{max(counts):<4d} {L / np.mean(counts):10.2f}")

fig, ax = plt.subplots(figsize=(8, 4))
names = list(calls)
ax.barh(names, [np.mean(calls[n]) for n in names], xerr=[np.std(calls[n]) for n in names],
        color=[f"C{['ancestral', 'confidence', 'threshold'].index(settings[n]['strategy'])}" for n in names])
ax.axvline(L, color="black", linestyle="--", label=f"one call per character (L = {L})")
ax.invert_yaxis()
ax.set(xlabel=f"network calls to write {L} characters (mean over {N_SEEDS} seeds)",
       title="cost of sampling, by strategy")
ax.legend(loc="lower right")
plt.show()
'''), md(r"""
What to read from it:

- Without the cache, ancestral sampling costs one call per step (it stops early only once the
  last token is out), however many steps there are. With it, the cost stops growing at $L$:
  more steps then only make the sampler more exact (fewer tokens revealed together), not slower.
- Confidence decoding costs exactly `steps` calls. Fewer steps means more tokens per call,
  each chosen without seeing the others revealed in the same step.
- The threshold rule takes as many calls as the text needs, and writing from nothing, this
  small model is rarely sure of anything. At $\tau = 0.9$ it revealed one token per call in
  every run (128 calls), at $0.5$ nearly so (127.5 on average), so its text is nearly the
  confidence rule's (section 2); only at $\tau = 0.2$ does it often commit several tokens in one
  call (83 calls on average).
  Lowering $\tau$ trades calls for the same kind of parallel-decoding errors.

Threshold decoding pays off where the text is easy to guess. Below, a quarter of the characters
of a held-out window are masked at random places, so that nearly every mask has its neighbours
in view: a much lower-entropy task than writing from nothing. Confidence decoding spends its
`steps` calls whatever the task; the threshold rule stops when the masks are filled.
"""), code('''
passage = val_ids[1000 : 1000 + L].clone()  # a held-out window
holes = torch.randperm(L, generator=torch.Generator().manual_seed(0))[: L // 4]  # a quarter of it, anywhere
scattered = passage.clone()
scattered[holes] = tok.mask_id
print(f"{len(holes)} masks scattered over {L} held-out characters; each rule may take up to {len(holes)} calls")
for name, kwargs in [("confidence", dict(strategy="confidence")),
                     *[(f"threshold {tau}", dict(strategy="threshold", threshold=tau)) for tau in (0.9, 0.5, 0.2)]]:
    calls, correct = [], []
    for seed in range(N_SEEDS):
        stats = {}
        filled = sample.generate(net, mask_id=tok.mask_id, prompt=scattered, length=0, steps=len(holes),
                                 generator=torch.Generator().manual_seed(seed), stats=stats, **kwargs)
        calls.append(stats["network_calls"])
        correct.append((filled[0, holes].cpu() == passage[holes]).float().mean().item())
    print(f"{name:12s} {np.mean(calls):5.1f} calls (mean of {N_SEEDS} seeds), {np.mean(correct):.0%} of the masks restored exactly")
'''), md(r"""
Here the threshold rule spends fewer calls than the 32 of confidence decoding, the fewer the
lower $\tau$: about 29 at $\tau = 0.9$, 18 at $0.5$ and 14 at $0.2$ (means over 4 seeds), and
all four rows restore about as many masks exactly (56% to 59%). Where the model is sure, many
tokens clear the threshold in one call; where it is not, one token per call. That is the
adaptivity: the number of calls follows the difficulty of the text, not a schedule.

## 5. Semi-autoregressive blocks, and infilling

With `block_size=b` the positions after the prompt are cut into blocks of $b$ that are
decoded left to right, each with its share of the steps; inside a block any strategy applies.
LLaDA uses this for long answers: the model cannot spend its most confident early steps at
the far end of the sequence.

Infilling is the same machinery: any `mask_id` inside the prompt is a position to fill, and the
unmasked tokens on *both* sides condition every prediction (notebook 10 goes further).

The figure shows the step at which each position was revealed, for one sequence per rule.
"""), code('''
orders = {
    "ancestral": dict(strategy="ancestral"),
    "confidence": dict(strategy="confidence"),
    f"confidence, blocks of {L // 4}": dict(strategy="confidence", block_size=L // 4),
}
fig, axes = plt.subplots(len(orders), 1, figsize=(11, 3.2), sharex=True)
for ax, (name, kwargs) in zip(axes, orders.items()):
    _, trajectory = sample.generate(net, mask_id=tok.mask_id, length=L, steps=L, return_trajectory=True,
                                    generator=torch.Generator().manual_seed(3), **kwargs)
    image = ax.imshow(viz.reveal_steps(trajectory, tok.mask_id)[None, :], aspect="auto", cmap="viridis",
                      vmin=1, vmax=L, interpolation="nearest")
    ax.set_yticks([0], [name])
    ax.grid(False)
axes[-1].set_xlabel("position in the sequence")
fig.colorbar(image, ax=axes, label="denoising step that revealed it")
fig.suptitle("in which order are the positions revealed?")
plt.show()
'''), code('''
passage = val_ids[200 : 200 + L].clone()  # a held-out window
gap = slice(L // 3, L // 3 + L // 4)
prompt = passage.clone()
prompt[gap] = tok.mask_id
filled = sample.generate(net, mask_id=tok.mask_id, prompt=prompt, length=0, steps=L // 4, strategy="confidence",
                         batch_size=3, generator=torch.Generator().manual_seed(0))
shown = slice(gap.start - 12, gap.stop + 12)
rows = torch.stack([passage, prompt, *filled.cpu()])  # (5, L)
written = torch.zeros_like(rows, dtype=torch.bool)
written[2:, gap] = True  # the fills' gap cells are the model's
ax = viz.show_tokens(rows[:, shown], tok.mask_id, decode=tok.decode, generated=written[:, shown],
                     labels=["original", "prompt", "fill 1", "fill 2", "fill 3"],
                     title=f"infilling {gap.stop - gap.start} masked characters")
ax.xaxis.set_major_formatter(lambda x, _: str(shown.start + int(x)))  # label the real positions
plt.show()
'''), md(r"""
## 6. Watching the denoising

`viz.denoising_viewer` puts a slider over the steps of one generation: grey cells are still
masked, orange ones were revealed at the current step. It first draws the same process as a
static figure (`viz.plot_trajectory`), so the notebook still shows it where no live kernel
runs the widget (on GitHub, in a rendered copy).
"""), code('''
_, trajectory = sample.generate(net, mask_id=tok.mask_id, length=pick(64, 32), steps=pick(32, 16),
                                strategy="confidence", generator=torch.Generator().manual_seed(5),
                                return_trajectory=True)
viz.denoising_viewer(trajectory, tok.mask_id, decode=tok.decode)
'''), md(r"""
With confidence decoding the spaces and a few common letters (o, u, t in the stored run) come
first and the words are then built around them; ancestral sampling (try it: `strategy="ancestral"`)
fills positions in random order.

## 7. Quality against the number of steps

How good is a sample? The honest answer needs a much stronger model to judge it. A cheap
proxy that still means something is the **character trigram NLL**: count every three-letter
sequence in the training text, and score a sample by how surprising each character is given
the two before it,

$$ \text{NLL}_3 = -\frac{1}{T-2} \sum_{i=3}^{T} \log \hat p(x_i \mid x_{i-2} x_{i-1}), \qquad
   \hat p(c \mid ab) = \frac{n(abc) + k}{n(ab\,\cdot) + kV}, \; k = 0.1 $$

in nats per character. Real held-out text scores about 2; letters drawn independently from
their frequencies 5.5 to 5.7. It rewards locally plausible spelling, and it is blind to
meaning. We also count the **repetition rate**: the share of words that repeat the word just
before them ("you you"), $\frac{1}{W-1}\#\{j : w_j = w_{j-1}\}$, over the $W$ words of a sample.

Both samplers take a **temperature** $T$ (`temperature=` in `sample.generate`; every sample so
far used $T = 1$). It rescales the logits before a token is drawn, $\pi \propto
\exp(\text{logits}/T)$: $T = 1$ draws from the model's own distribution, lower $T$ sharpens it
towards the most probable character, and $T = 0$ takes that character outright (greedy
decoding, one answer). The confidence rule still ranks the drawn tokens by the model's own
probability at $T = 1$.
"""), code(TRIGRAM + '''train_words = set(re.findall(r"[a-z]+", train_text.lower()))


def trigram_nll(ids):
    """Mean -log p(x_i | x_{i-2}, x_{i-1}) of ids (B, T) under the training text's trigram counts, nats/char."""
    ids = ids.cpu()
    return -trigram_logp[ids[:, :-2], ids[:, 1:-1], ids[:, 2:]].mean().item()


def word_stats(ids):
    """Repetition rate, share of distinct words, and share of words found in the training text, over ids (B, T)."""
    texts = [tok.decode(row.tolist()).lower() for row in ids]
    words = [re.findall(r"[a-z]+", t) for t in texts]
    pairs = [(a, b) for ws in words for a, b in zip(ws, ws[1:])]
    flat = [w for ws in words for w in ws]
    return {"repetition": sum(a == b for a, b in pairs) / max(len(pairs), 1),
            "distinct": len(set(flat)) / max(len(flat), 1),
            "known words": sum(w in train_words for w in flat) / max(len(flat), 1)}


N_EVAL = pick(16, 4)
real = val_ids[: N_EVAL * L].view(N_EVAL, L)
shuffled = torch.multinomial(unigram, N_EVAL * L, replacement=True).view(N_EVAL, L)
print(f"held-out text:            trigram NLL {trigram_nll(real):.2f}, "
      + ", ".join(f"{name} {value:.1%}" for name, value in word_stats(real).items()))
print(f"letters drawn at random:  trigram NLL {trigram_nll(shuffled):.2f}")
'''), code('''
STEP_GRID = [s for s in (4, 8, 16, 32, 64, 128) if s <= L][:: pick(1, 2)]
quality = {}
for strategy in ("ancestral", "confidence"):
    for temperature in (1.0, 0.0) if strategy == "confidence" else (1.0,):
        label = f"{strategy}, temperature {temperature:g}"
        rows = []
        for steps in STEP_GRID:
            ids = sample.generate(net, mask_id=tok.mask_id, length=L, steps=steps, strategy=strategy,
                                  temperature=temperature, batch_size=N_EVAL, generator=torch.Generator().manual_seed(1))
            rows.append((trigram_nll(ids), word_stats(ids)["repetition"]))
        quality[label] = np.array(rows)  # (len(STEP_GRID), 2)
        print(label, "| trigram NLL by steps:", " ".join(f"{s}:{v:.2f}" for s, v in zip(STEP_GRID, quality[label][:, 0])))

fig, (ax_nll, ax_rep) = plt.subplots(1, 2, figsize=(12, 4))
viz.plot_curves({k: (STEP_GRID, v[:, 0]) for k, v in quality.items()}, ax=ax_nll, logx=True,
                xlabel=f"denoising steps for {L} characters (log scale)", ylabel="trigram NLL (nats per character)",
                hlines={"held-out text": trigram_nll(real), "random letters": trigram_nll(shuffled)},
                title="local plausibility (lower is better)")
viz.plot_curves({k: (STEP_GRID, v[:, 1]) for k, v in quality.items()}, ax=ax_rep, logx=True,
                xlabel=f"denoising steps for {L} characters (log scale)", ylabel="share of words repeating the previous one",
                hlines={"held-out text": word_stats(real)["repetition"]}, title="repetition (real text: near 0)")
plt.show()
'''), md(r"""
Three lessons, all visible in the stored full run:

- **More steps give more plausible text**, up to a point (the ancestral curve flattens from
  about 16 steps on, and wobbles). With few steps, many characters are revealed in
  the same step, each drawn *independently* from its own marginal: two neighbours can each
  be plausible and jointly absurd (double spaces, "qk"). One token per step removes that error.
- **A proxy can be gamed.** Confidence samples score *better* than real Shakespeare on the
  trigram NLL (1.59 at 128 steps, against 2.00), and nobody would mistake "you you you you"
  for Shakespeare: always committing the
  safest characters makes very common trigrams. Any likelihood-based score, generative
  perplexity under a big model included, rewards that, which is why papers report a
  diversity measure (entropy, repetition) next to it.
- **For confidence decoding at temperature 1, more steps also means more repetition** (right
  panel): one character per step is its greediest setting. Greedy decoding (temperature 0)
  repeats far more at every number of steps, most of all at 128 steps, one character per step
  (about four words in five in this run).

## 8. Repetition, and what helps

Why does confidence decoding loop? At every step it commits the token the model is *surest*
about. Early on, with almost everything masked, the model knows little except that common
short words are likely everywhere; the surest guesses are the same frequent word at many
positions, and once that word sits on both sides of a gap, it becomes the surest guess for the
gap too. Ancestral sampling picks positions at random and draws values at the model's own
temperature, so it never builds such a feedback loop (at a price in local plausibility).
"""), code('''
TOKENS_PER_STEP = 4
remedies = {
    "confidence, greedy (T = 0), 1 char/step": dict(strategy="confidence", temperature=0.0, steps=L),
    f"confidence, T = 0, {TOKENS_PER_STEP} chars/step": dict(strategy="confidence", temperature=0.0, steps=L // TOKENS_PER_STEP),
    "confidence, T = 0.5": dict(strategy="confidence", temperature=0.5, steps=L),
    "confidence, T = 1": dict(strategy="confidence", temperature=1.0, steps=L),
    f"confidence, T = 1, {TOKENS_PER_STEP} chars/step": dict(strategy="confidence", temperature=1.0, steps=L // TOKENS_PER_STEP),
    f"confidence, T = 1, blocks of {L // 8}": dict(strategy="confidence", temperature=1.0, steps=L, block_size=L // 8),
    "ancestral, T = 1": dict(strategy="ancestral", temperature=1.0, steps=L),
}
results = {"held-out text": {"trigram NLL": trigram_nll(real), **word_stats(real)}}
examples = {}
for name, kwargs in remedies.items():
    ids = sample.generate(net, mask_id=tok.mask_id, length=L, batch_size=N_EVAL,
                          generator=torch.Generator().manual_seed(2), **kwargs)
    results[name] = {"trigram NLL": trigram_nll(ids), **word_stats(ids)}
    examples[name] = tok.decode(ids[0].tolist())[:70].replace("\\n", " / ")

print(f"{'setting':38s} {'repetition':>10s} {'distinct':>9s} {'known words':>11s} {'trigram NLL':>11s}")
for name, r in results.items():
    print(f"{name:38s} {r['repetition']:10.1%} {r['distinct']:9.1%} {r['known words']:11.1%} {r['trigram NLL']:11.2f}")
print()
for name, example in examples.items():
    print(f"{name:38s} | {example}")

fig, ax = plt.subplots(figsize=(8, 4))
ax.barh(list(results), [r["repetition"] * 100 for r in results.values()],
        color=["grey"] + [f"C{0 if 'ancestral' in n else 1}" for n in remedies])
ax.invert_yaxis()
ax.set(xlabel="repetition rate (% of words equal to the previous word)", title="what reduces repetition")
ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in ("grey", "C1", "C0")],
          labels=["real text", "confidence decoding", "ancestral sampling"], loc="lower right")
plt.show()
'''), md(r"""
In the stored full run, greedy confidence decoding repeats the previous word in about four word
pairs in five (80.6%), and in under half of them (45.2%) at 4 characters per step. What helps,
from the table:

- **temperature**: sampling the candidate values at temperature 1 instead of taking the argmax
  weakens the loop (80.6% at $T = 0$, 50.2% at 0.5, 22.4% at 1); the candidates are still
  ranked by the model's own confidence;
- **ancestral sampling**: random order, no confidence ranking: repetition drops to the
  level of real text;
- **semi-autoregressive blocks**: the far end of the sequence can no longer be filled with
  "you" before the beginning is written;
- **more characters per step** (fewer steps) reduced repetition at both temperatures here
  (80.6% to 45.2% greedy, 22.4% to 10.4% at $T = 1$), since each step commits several
  positions at once before the surest word can spread; section 7 showed what fewer steps cost
  in local plausibility (a trigram NLL of 1.89 to 1.93 against about 1.6). Look at the table
  for both effects at once.

Most remedies are not free: lower repetition usually comes with a higher trigram NLL and
fewer known words, the usual trade between diversity and "safe" text. Semi-autoregressive
blocks stand out in this run, cutting repetition about eightfold (22.4% to 2.7% at $T = 1$) for
a small rise in trigram NLL (1.63 to 1.78), one reason why LLaDA decodes long answers block by
block.

## Summary

- A masked diffusion model writes by revealing tokens over a number of steps. **Ancestral**
  sampling is the exact reverse process (random order, tokens drawn at the model's
  temperature); **confidence** decoding reveals the surest predictions first; **threshold**
  decoding reveals every prediction above a confidence level, so its number of steps adapts.
- The denoiser has no time input, so an ancestral step that reveals nothing needs no network
  call: with the cache, the cost is at most $L$ calls however many steps are asked for.
- Quality improves with the number of steps (fewer tokens revealed independently together),
  but a likelihood-style proxy can be gamed by safe, repetitive text: always report a
  diversity measure beside it.
- Greedy confidence decoding of a small model loops on frequent words; temperature, ancestral
  sampling and semi-autoregressive blocks all reduce it.

## Try it

- Set `schedule="cosine"` in `sample.generate` for the ancestral and confidence samplers: which
  steps reveal the most tokens now, and does the trigram NLL move?
- Add `top_p=0.9` (nucleus sampling) to the confidence rows of section 8: does it repeat less
  than temperature 1?
- Plot the number of calls of the threshold rule against $\tau$ from 0.05 to 0.95, for batch
  sizes 1 and 8.
- Train the denoiser twice as long (`TRAIN_STEPS`) and redo sections 7 and 8: does the gap
  between ancestral and confidence sampling shrink?
- Notebook 10 takes infilling further: fixed-length answers, several fills of one gap, and what
  an autoregressive model cannot do.
""")]

# ----------------------------------------------------------------------------- 10

NB10 = [md(r"""
# 10 · Infilling: writing into the middle of a text

In this notebook you will **learn**:

- how a masked diffusion model fills gaps *anywhere* in a text, conditioned on the words on
  both sides, with the same `sample.generate` call that writes from scratch;
- how the `[MASK]` / `[MASK:n]` prompt syntax (`generate.parse_prompt`) fixes the length of an
  answer, e.g. `"ROMEO:\n[MASK:40]\n\nJULIET:\n"`;
- how different several samples of the same gap are, and how temperature changes that;
- what an autoregressive (AR) model of the same size cannot do, measured: it can only continue
  a prefix, so what it writes ignores the text that follows;
- how to control generation by fixing tokens at chosen positions.

**What it needs:** a CPU, and notebook 09's two trained character models (a diffusion model and
its autoregressive twin, the recipe of `configs/shakespeare_char.yaml`, 9.5 minutes each).
**Run notebook 09 first**: this notebook then loads their checkpoints from `runs/notebooks/` in
seconds. If they are missing, section 1 trains both here with the same settings before anything
else runs, about 20 minutes on 2 CPU cores. The short path, if you have not run notebook 09: add
the line `common += ["train.max_minutes=2"]` right after the `common = ...` statement in section 1, and
each model trains for 2 minutes (weaker models: the text and numbers then differ from the stored
ones). With `DLLM_SMOKE=1` it runs in well under a minute, with meaningless text. Read notebooks
05 (sampling) and 09 (diffusion against autoregressive) first.
"""), code(SETUP + '''
import os

from dllm_lite import config, data, train
from dllm_lite.generate import parse_prompt
'''), md(r"""
## 1. The two models

Both are notebook 09's: the shape and recipe of `configs/shakespeare_char.yaml` (0.8M
parameters, Muon, batches of 16 blocks of 128 characters), 9.5 minutes of training each on the
same machine. The diffusion model fills the gaps; its autoregressive twin, the same Transformer
with causal attention, is the comparison of section 5. If notebook 09 has run (in the same
mode), their checkpoints are loaded; otherwise they are trained here with the same settings.
"""), code('''
os.chdir(ROOT)  # configs/, runs/ and the token cache .cache/ are relative to the repository root
# the same overrides as notebook 09, so that its checkpoints are the ones asked for
''' + NB09_OVERRIDES + '''


def notebook_09_model(objective):
    """Notebook 09's model for `objective`, loaded from its checkpoint, or trained here if it is missing."""
    run_cfg = config.load_config("configs/shakespeare_char.yaml", common + [
        f"train.objective={objective}", f"train.out_dir=runs/notebooks/09_{objective}"])
    path = Path(run_cfg.train.out_dir) / "latest.pt"
    if path.exists() and train.read_checkpoint(path)["config"] == config.config_to_dict(run_cfg):
        print(f"{objective}: loaded notebook 09's checkpoint {path}")
    else:
        print(f"{objective}: no checkpoint from notebook 09 with these settings; training it here")
        path = train.train(run_cfg, overwrite=True)["checkpoint"]
    trained_net, tokenizer, *_ = train.load_checkpoint(path, device)
    return trained_net, tokenizer, run_cfg


net, tok, cfg = notebook_09_model("diffusion")
ar_net, _, _ = notebook_09_model("autoregressive")
L = cfg.model.seq_len  # every sample in this notebook fits in one window of L characters
train_ids = torch.as_tensor(np.asarray(data.load_tokens(cfg.data, tok, "train")), dtype=torch.long)
val_ids = torch.as_tensor(np.asarray(data.load_tokens(cfg.data, tok, "validation")), dtype=torch.long)
val_text = tok.decode(val_ids.tolist())
V = tok.vocab_size - 1  # the ids a prediction can take; the last id is [MASK]
held_out = val_ids[: pick(64, 8) * L].view(-1, L).to(device)  # (N, L) windows to evaluate on
print(f"{sum(p.numel() for p in net.parameters()):,} parameters each; vocabulary of {V} characters + [MASK]; "
      f"train {len(train_ids):,} / held out {len(val_ids):,} characters")
''' + REPORT_BOUND), md(r"""
Infilling uses **confidence decoding** (LLaDA's rule: at each step keep the predictions the model
is surest of), because the order in which it fills a gap is itself worth watching (section 2);
section 4 varies the temperature, and the Try-it list swaps in ancestral sampling.
"""), md(r"""
## 2. A gap in the middle

Infilling needs nothing new. The denoiser was trained to predict masked tokens from *all*
the unmasked ones; a prompt with a masked span in the middle is just one more $x_t$:

$$ p_\theta(x^{\text{gap}} \mid x^{\text{left}}, x^{\text{right}}) $$

and `sample.generate(prompt=..., length=0)` reveals the masked positions step by step, every
prediction conditioned on both sides (and on what was revealed so far). `parse_prompt` turns
`[MASK:n]` into $n$ mask ids; at the character level one mask is one character.
"""), code('''
start = val_text.index("\\n\\n", 1000) + 2  # the first speech that starts after character 1,000
LEFT_CHARS, GAP_CHARS, RIGHT_CHARS = pick((36, 22, 42), (20, 16, 20))
passage = val_text[start : start + LEFT_CHARS + GAP_CHARS + RIGHT_CHARS]
left, middle, right = passage[:LEFT_CHARS], passage[LEFT_CHARS:-RIGHT_CHARS], passage[-RIGHT_CHARS:]
prompt = parse_prompt(f"{left}[MASK:{len(middle)}]{right}", tok)
print(repr(passage))
print(f"gap of {len(middle)} characters, true text {middle!r}")

fills = sample.generate(net, mask_id=tok.mask_id, prompt=prompt, length=0, steps=len(middle), strategy="confidence",
                        batch_size=4, generator=torch.Generator().manual_seed(0))
for row in fills:
    print(repr(tok.decode(row[len(left) : len(left) + len(middle)].tolist())))

shown = slice(len(left) - 12, len(left) + len(middle) + 12)
ax = viz.show_tokens(torch.stack([torch.tensor(tok.encode(passage)), torch.tensor(prompt), *fills.cpu()])[:, shown],
                     tok.mask_id, decode=tok.decode, labels=["original", "prompt", "fill 1", "fill 2", "fill 3", "fill 4"],
                     title=f"filling a {len(middle)}-character gap")
ax.xaxis.set_major_formatter(lambda x, _: str(shown.start + int(x)))  # label the real positions
plt.show()
'''), md(r"""
In which order does the confidence rule fill a gap? In the stored run it starts at the two
edges, where the known text says the most about the next character: first the letters just
before the right-hand text (the "ha" of "that"), then the first word after the left-hand text;
the middle of the gap comes last.
"""), code('''
_, trajectory = sample.generate(net, mask_id=tok.mask_id, prompt=prompt, length=0, steps=len(middle),
                                strategy="confidence", generator=torch.Generator().manual_seed(0),
                                return_trajectory=True)
ax = viz.plot_trajectory([state[:, shown] for state in trajectory], tok.mask_id, decode=tok.decode, max_rows=12,
                         title="confidence decoding of the gap")
ax.xaxis.set_major_formatter(lambda x, _: str(shown.start + int(x)))
plt.show()
'''), md(r"""
## 3. Fixed-length answers

The number of masks fixes the length of the answer exactly: the model cannot decide when to
stop, it must make its answer fit the slot. Below, the same cue gets
slots of three sizes.

The slot's length is itself information, and a small model leans on it heavily. In the stored
full run the two shorter slots come back as one line of speech that ends a sentence just before
the next speaker; the longest holds two lines of speech, or a short exchange with a speaker of
its own in the middle: the model fits the text to the room it is given.
"""), code('''
for n in (12, pick(40, 24), pick(80, 36)):
    prompt_text = f"ROMEO:\\n[MASK:{n}]\\n\\nJULIET:\\n"
    ids = sample.generate(net, mask_id=tok.mask_id, prompt=parse_prompt(prompt_text, tok), length=0, steps=n,
                          strategy="confidence", temperature=0.8, batch_size=2,
                          generator=torch.Generator().manual_seed(n))
    print(f"===== {prompt_text!r}")
    for row in ids:
        print(tok.decode(row.tolist()).rstrip("\\n"))
        print("-" * 30)
'''), md(r"""
## 4. Several samples of the same gap

A gap has many plausible fills, and sampling draws from them. The temperature $T$ rescales the
logits before the draw, $\pi \propto \exp(\text{logits}/T)$: $T = 0$ is greedy (one answer),
$T = 1$ the model's own distribution. Below, for many fills of one gap: how different they
are, as the share of positions at which two fills disagree, averaged over all pairs,

$$ D = \binom{n}{2}^{-1} \sum_{a < b} \frac{1}{G} \sum_{i=1}^{G} [x^{(a)}_i \ne x^{(b)}_i] $$

and how plausible they are, by the same trigram proxy as in notebook 05.
"""), code(TRIGRAM + '''
N_FILLS = pick(32, 4)
gap_prompt = parse_prompt("KING RICHARD III:\\nMy lord, [MASK:16] is dead.\\n", tok)
gap_at = gap_prompt.index(tok.mask_id)
temperatures = [0.0, 0.5, 0.8, 1.0, 1.5]
difference, plausibility = [], []
for temperature in temperatures:
    ids = sample.generate(net, mask_id=tok.mask_id, prompt=gap_prompt, length=0, steps=16, strategy="confidence",
                          temperature=temperature, batch_size=N_FILLS, generator=torch.Generator().manual_seed(0)).cpu()
    gaps = ids[:, gap_at - 2 : gap_at + 18]  # the 16 filled characters and two on each side
    texts = [tok.decode(row[2:-2].tolist()) for row in gaps]
    disagree = (gaps[:, None, 2:-2] != gaps[None, :, 2:-2]).float().mean(-1)  # (n, n): share of positions
    difference.append(disagree.sum().item() / (N_FILLS * (N_FILLS - 1)))  # mean over pairs a != b
    plausibility.append(-trigram_logp[gaps[:, :-2], gaps[:, 1:-1], gaps[:, 2:]].mean().item())
    print(f"T = {temperature:3.1f}: {len(set(texts)):2d} different fills of {N_FILLS}, D = {difference[-1]:.2f}, "
          f"e.g. {texts[:3]}")

fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(temperatures, difference, marker="o", color="C0", label="difference D between two fills")
ax.set(xlabel="sampling temperature T", ylabel="share of positions where two fills differ",
       title=f"one gap, {N_FILLS} answers")
twin = ax.twinx()
twin.plot(temperatures, plausibility, marker="s", color="C3", label="trigram NLL of the fills")
twin.set_ylabel("trigram NLL (nats per character)")
ax.legend(handles=ax.get_lines() + twin.get_lines(), loc="center right")
plt.show()
'''), md(r"""
## 5. What an autoregressive model cannot do

An AR model factorises left to right, $p(x) = \prod_i p(x_i \mid x_{<i})$. To fill a gap it
would need $p(x^{\text{gap}} \mid x^{\text{left}}, x^{\text{right}})$, but every one of its
conditionals looks only to the left: it can *continue* the left context, and what it writes
cannot depend on the right one. (Getting around that means retraining, e.g. on documents
rearranged as prefix + suffix + middle, "fill in the middle", Bavarian et al. 2022.)

The comparison is the AR twin of section 1: the same Transformer with causal attention, the
same characters and recipe, trained with next-character cross-entropy (`loss.ar_loss`) for the
same 9.5 minutes. It is the better language model of the two by a wide margin (notebook 09).

Its loss below, and the denoiser's bound of section 1, are measured on this notebook's held-out
windows: the first 8,192 characters of the validation split. Notebook 09 scored the same two models
on 32 blocks drawn at random from that split, and got 1.560 (AR) and 1.846 (the bound): both
models find this notebook's stretch of text easier. Numbers on different held-out text do not
compare; the two models on the same text do.
"""), code('''
with torch.no_grad():
    ar_nll = loss.ar_loss(ar_net, held_out, tok.mask_id).item()
print(f"AR twin, held-out cross-entropy: {ar_nll:.3f} nats/char (the denoiser's bound: {bound:.3f})")

try:
    sample.generate(ar_net, mask_id=tok.mask_id, prompt=prompt, length=0, steps=1)
except ValueError as error:
    print("asking the AR twin to infill:", error)
'''), md(r"""
The AR twin can only continue `left`. To see how much the *right* context matters, score
every way of filling the gap by how well it leads into the text that really follows: the
AR twin's own NLL of the right context given everything before it,

$$ \text{NLL}(x^{\text{right}} \mid x^{\text{left}}, \text{fill}) = -\frac{1}{|x^{\text{right}}|}
   \sum_{i \in \text{right}} \log p_{\text{AR}}(x_i \mid x_{<i}) $$

(in nats per character; the judge is the AR model itself, so if anything it favours its own
continuations). Over many held-out passages, with a gap of $G$ characters:

1. **the true middle**: the best one can hope for;
2. **AR continuation**: the twin continues `left` for $G$ characters;
3. **AR, best of 8**: the usual workaround without retraining: draw 8 continuations and keep the
   one under which the right context is most likely; 8 times the work, and it can only pick
   among continuations, never aim at the suffix;
4. **diffusion, left only**: the denoiser continuing `left` for $G$ characters, as the AR twin
   does: a control with the same model and no right context;
5. **diffusion infill**: the denoiser filling the gap, seeing both sides.
"""), code('''
N_PASSAGES, (LEFT, GAP, RIGHT) = pick(48, 4), pick((48, 16, 48), (24, 16, 24))
offsets = torch.randint(len(val_ids) - L, (N_PASSAGES,), generator=torch.Generator().manual_seed(0))
passages = torch.stack([val_ids[o : o + LEFT + GAP + RIGHT] for o in offsets]).to(device)  # (N, LEFT+GAP+RIGHT)


def right_nll(ids):
    """The AR twin's NLL of the right context of each row of ids (N, LEFT+GAP+RIGHT), nats/char, (N,)."""
    bos = torch.full_like(ids[:, :1], tok.mask_id)  # the AR twin reads its beginning-of-sequence token first
    with torch.no_grad():
        logp = ar_net(torch.cat([bos, ids[:, :-1]], dim=1)).float().log_softmax(-1)  # (N, T, V)
    token_logp = logp.gather(-1, ids[:, :, None]).squeeze(-1)  # (N, T): log p(x_i | x_<i)
    return -token_logp[:, LEFT + GAP :].mean(dim=1)


fills = {"true middle": passages.clone()}
generator = torch.Generator().manual_seed(1)
ar, best, left_only, infill = (passages.clone() for _ in range(4))
for n in range(N_PASSAGES):
    row = passages[n]
    eight = sample.generate(ar_net, mask_id=tok.mask_id, prompt=row[:LEFT], length=GAP, steps=GAP, batch_size=8,
                            generator=generator)  # (8, LEFT+GAP)
    ar[n, : LEFT + GAP] = eight[0]
    candidates = torch.cat([eight, row[LEFT + GAP :].expand(8, RIGHT)], dim=1)
    best[n] = candidates[right_nll(candidates).argmin()]
    left_only[n, : LEFT + GAP] = sample.generate(net, mask_id=tok.mask_id, prompt=row[:LEFT], length=GAP, steps=GAP,
                                                 generator=generator)[0]
    masked = row.clone()
    masked[LEFT : LEFT + GAP] = tok.mask_id
    infill[n] = sample.generate(net, mask_id=tok.mask_id, prompt=masked, length=0, steps=GAP, generator=generator)[0]
fills.update({"AR continuation": ar, "AR, best of 8": best, "diffusion, left only": left_only,
              "diffusion infill": infill})

scores = {name: right_nll(ids).cpu() for name, ids in fills.items()}
print(f"NLL of the {RIGHT} characters after the gap, under the AR twin ({N_PASSAGES} passages):")
for name, s in scores.items():
    print(f"  {name:22s} {s.mean():.3f} +- {s.std() / math.sqrt(len(s)):.3f} nats/char")
paired = scores["AR continuation"] - scores["diffusion infill"]  # same passages: compare them pair by pair
print(f"AR continuation minus diffusion infill, passage by passage: {paired.mean():.3f} "
      f"+- {paired.std() / math.sqrt(len(paired)):.3f} nats/char (positive: the infill fits better)")

fig, ax = plt.subplots(figsize=(7.5, 3.8))
names = list(scores)
ax.barh(names, [scores[n].mean() for n in names], xerr=[scores[n].std() / math.sqrt(len(scores[n])) for n in names],
        color=["grey", "C0", "C0", "C1", "C1"])
ax.invert_yaxis()
ax.set(xlabel="NLL of the right context given the fill (nats per character, lower = fits better)",
       title="does the fill lead into the text that follows?")
ax.set_xlim(left=min(s.mean() for s in scores.values()) - 0.3)
plt.show()
n = 0
print(f"{'left context':22s}:", repr(tok.decode(passages[n, :LEFT].tolist())))
for name, ids in fills.items():
    print(f"{name:22s}:", repr(tok.decode(ids[n, LEFT : LEFT + GAP].tolist())))
print(f"{'right context':22s}:", repr(tok.decode(passages[n, LEFT + GAP :].tolist())))
'''), md(r"""
In the stored full run the infill fits the right context clearly better than the AR
continuation, although the AR twin is the stronger language model and is the judge. The
control, the same denoiser without the right context, does no better than the AR
continuation: the gain comes from *seeing* the right context, not from the model. Best-of-8
closes more than half of the distance to the infill, at eight times the sampling cost plus the
scoring of every candidate, and only because here we can score candidates against the suffix:
it is a search over continuations, not conditioning.

## 6. Control: fixing tokens where you want them

Every unmasked position of the prompt is a constraint the sample must respect, wherever it is.
That gives simple control without any training: force a word at a given position, fix
the speaker of each speech, or pin how a line ends. Below, two speeches with fixed speakers,
and the word "crown" forced into the middle of the first one.
"""), code('''
before, after, reply = pick((20, 20, 30), (6, 6, 4))
control = f"KING RICHARD III:\\n[MASK:{before}]crown[MASK:{after}]\\n\\nQUEEN ELIZABETH:\\n[MASK:{reply}]\\n"
control_prompt = parse_prompt(control, tok)
ids = sample.generate(net, mask_id=tok.mask_id, prompt=control_prompt, length=0, steps=before + after + reply,
                      strategy="confidence",
                      temperature=0.8, batch_size=3, generator=torch.Generator().manual_seed(0))
print(repr(control))
for row in ids:
    print(tok.decode(row.tolist()))
    print("-" * 30)
crown_at = len(parse_prompt(f"KING RICHARD III:\\n[MASK:{before}]", tok))
print("'crown' at the same position in every sample:",
      all(tok.decode(row[crown_at : crown_at + 5].tolist()) == "crown" for row in ids))
viz.show_tokens(torch.stack([torch.tensor(control_prompt), *ids.cpu()])[:, :64], tok.mask_id, decode=tok.decode,
                labels=["prompt", "sample 1", "sample 2", "sample 3"], title="fixed tokens stay; masks are filled around them")
plt.show()
'''), md(r"""
## Summary

- Infilling is ordinary generation with masks in the prompt: the denoiser conditions every
  prediction on the text on **both sides** of a gap, and `[MASK:n]` fixes the length of the
  answer exactly.
- One gap has many fills: temperature 0 gives a single (often repetitive) answer, higher
  temperatures give fills that differ at most positions.
- An AR model can only continue a prefix: its fills ignore the right context, measurably,
  even when it is the stronger model; best-of-n reranking helps at n times the cost, and
  real infilling needs retraining (fill-in-the-middle).
- Any unmasked position is a hard constraint: fixed words, speakers or line endings give
  control for free.

## Try it

- Give the fixed-length answers of section 3 a started sentence,
  `"ROMEO:\nMy lady, [MASK:40]\n\nJULIET:\n"`: does the model carry on the sentence you
  started, and does it still end it before JULIET speaks?
- Move the word "crown" in section 6 to the very first position, or to the last: how do the
  samples change?
- In section 5 lengthen the gap (`GAP = 32`) or shorten the right context (`RIGHT = 8`):
  when does the difference between infilling and AR continuation grow?
- Fill the gaps with `strategy="ancestral"` instead of `"confidence"`: compare the
  diversity and plausibility curves of section 4.
- Write a prompt with three gaps (`[MASK:n]` three times) and watch it with
  `viz.denoising_viewer`: are the gaps filled one after the other or together?
""")]

NOTEBOOKS = {"05": ("05_sampling.ipynb", NB05), "10": ("10_infilling.ipynb", NB10)}


def write(number: str) -> Path:
    """Write notebook `number` (without outputs) and return its path."""
    name, cells = NOTEBOOKS[number]
    return write_notebook(name, cells, number)


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(NOTEBOOKS)
    unknown = [n for n in wanted if n not in NOTEBOOKS]
    if unknown:
        sys.exit(f"unknown notebook number(s) {unknown}: choose from {sorted(NOTEBOOKS)}")
    for number in wanted:
        write(number)

"""Write notebook 11 (block diffusion) from the cells below, without outputs.

    python notebooks/build/build_11.py

Then execute it in place, from the repository root:

    python notebooks/run_on_gpu.py --timeout 1800 notebooks/11_block_diffusion.ipynb

It shares the set-up cell and the cell helpers of notebooks 06-09 (build_06_09.py). Under
`DLLM_SMOKE=1` every training run shrinks to a few steps of a one-layer model.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_06_09 import SETUP  # noqa: E402
from course import code, md, write_notebook  # noqa: E402

NB11 = [md(r"""
# 11 · Blocks: from GPT to diffusion with one dial

In this notebook you will **learn** the idea behind the diffusion language models people deploy
in 2026 (LLaDA 2, Fast-dLLM v2, block refinement): **block diffusion** (BD3-LM, Arriola et al.
2025). Text is written a block of $K$ tokens at a time, left to right, and each block is
denoised by masked diffusion given the clean blocks before it. One number, $K$, slides the
same network from an autoregressive model ($K = 1$) to MDLM ($K = L$). You will:

1. draw the attention pattern that trains every block in one forward pass;
2. check the two ends of the dial exactly, on a tiny network;
3. train the dial at $K = 1, 4, 16$ and $L$ and compare the bounds, then read the
   ten-minute figures measured with the character config;
4. let a block model decide where its text ends, which MDLM cannot do;
5. time generation with and without the key/value cache, against MDLM and a GPT.

**What it needs:** a CPU; about 7 minutes on 2 cores (four short training runs). With
`DLLM_SMOKE=1` every size shrinks and it takes under a minute; the models then learn nothing.
"""), code(SETUP + '''
import dataclasses
import json

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from dllm_lite import bench, block, config, data, loss, model, sample, tokenize, train

print(f"device: {device}; smoke mode: {is_smoke()}")
'''), md(r"""
## One dial

Cut a sequence $x$ of $L$ tokens into $L/K$ blocks $x^1, \dots, x^{L/K}$ and factor it over
blocks the way a GPT factors over tokens:
$\log p_\theta(x) = \sum_b \log p_\theta(x^b \mid x^{<b})$. Each factor is a small masked
diffusion model of one block, with its own time $t_b$, so each gets the bound of notebook 02:

$$ -\log p_\theta(x) \le \sum_b \mathbb{E}_{t_b}\, \mathbb{E}_{x^b_{t_b}} \Big[ w(t_b)
   \sum_{i \in b:\ x^i_{t_b} = m} -\log p_\theta(x^i \mid x^b_{t_b}, x^{<b}) \Big] .$$

- $K = L$: one block with nothing before it, which is exactly MDLM.
- $K = 1$: each block is one token, masked with probability $t$ and weighted by $1/t$; in
  expectation that costs exactly $-\log p_\theta(x^i \mid x^{<i})$, a GPT's next-token loss.

## The attention pattern

Training all blocks at once needs, for block $b$, its noisy tokens and the clean blocks before
it. `block.block_logits` runs the network once over $[x_t, x_0]$, $2L$ positions (the two
copies of position $i$ share its position encoding), with this mask: a noisy block sees itself
in both directions and the clean blocks before it; the clean copy is block-causal. The logits
of the noisy half are the predictions.
"""), code('''
L_demo, K_demo = 16, 4
mask = block.block_attention_mask(L_demo, K_demo)  # (2L, 2L), True where a query (row) sees a key (column)
figure, ax = plt.subplots(figsize=(5.2, 5.2))
ax.imshow(mask, cmap="Blues", interpolation="nearest")
for edge in range(0, 2 * L_demo + 1, K_demo):
    ax.axhline(edge - 0.5, color="0.85", lw=0.5)
    ax.axvline(edge - 0.5, color="0.85", lw=0.5)
ax.axhline(L_demo - 0.5, color="black", lw=1.5)
ax.axvline(L_demo - 0.5, color="black", lw=1.5)
for (row, col), text in {(0.25, 0.25): "noisy sees noisy:\\nits own block", (0.25, 0.75): "noisy sees clean:\\nearlier blocks",
                         (0.75, 0.25): "clean never sees\\nnoisy", (0.75, 0.75): "clean sees clean:\\nblocks up to its own"}.items():
    ax.text(col * 2 * L_demo - 0.5, row * 2 * L_demo - 0.5, text, ha="center", va="center", fontsize=8,
            bbox=dict(facecolor="white", alpha=0.8, lw=0))
ax.set(title=f"queries (rows) and keys (columns), L = {L_demo}, K = {K_demo}", xlabel="key: noisy x_t | clean x_0",
       ylabel="query: noisy x_t | clean x_0", xticks=[], yticks=[])
plt.show()
'''), code('''
# NBVAL_CHECK_OUTPUT
for L_, K_ in [(16, 4), (128, 16), (128, 4)]:
    share = block.block_attention_mask(L_, K_).float().mean().item()
    print(f"L = {L_:3d}, K = {K_:2d}: {share:.1%} of the (2L)^2 query-key pairs are visible")
'''), md(r"""
Most of the square is empty, and more so as $K$ shrinks; on a GPU the library hands the pattern
to FlexAttention as a block-sparse mask, which skips the empty tiles (`block.flex_block_mask`).
On a CPU it is a boolean mask for PyTorch's `scaled_dot_product_attention`, with the same numbers.

## The two ends of the dial, checked exactly

`loss.exact_nelbo` sums the bound over every mask set, no sampling. With `block_size`, it does so
block by block. A tiny random network with $L = 6$ is enough to check both ends:
"""), code('''
# NBVAL_CHECK_OUTPUT
V = 7  # six tokens and [MASK]
x0 = torch.tensor([0, 3, 1, 5, 2, 4])


def tiny(block_size):
    torch.manual_seed(0)
    net = model.Transformer(model.ModelConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=32, seq_len=6,
                                              block_size=block_size)).eval()
    with torch.no_grad():
        net.embed.weight.mul_(20.0)  # peaked predictions, so that the numbers differ
    return net


whole = tiny(6)
print(f"K = L = 6:  block NELBO {loss.exact_nelbo(whole, x0, V - 1, block_size=6):.5f}"
      f"   MDLM NELBO {loss.exact_nelbo(whole, x0, V - 1):.5f}")
single = tiny(1)
with torch.no_grad():  # the next-token loss, one prefix at a time, with [MASK] where the next token goes
    nll = [F.cross_entropy(single(torch.cat([x0[:i], torch.tensor([V - 1])])[None],
                                  attn_mask=torch.ones(i + 1, i + 1, dtype=torch.bool).tril())[0, -1:], x0[i : i + 1])
           for i in range(6)]
print(f"K = 1:      block NELBO {loss.exact_nelbo(single, x0, V - 1, block_size=1):.5f}"
      f"   next-token NLL {torch.stack(nll).mean().item():.5f}")
print(f"K = 2:      block NELBO {loss.exact_nelbo(tiny(2), x0, V - 1, block_size=2):.5f}")
'''), md(r"""
The first two lines are the checks, and both hold to the last digit: at $K = L$ the block NELBO
is MDLM's, and at $K = 1$ it is the next-token loss.

The third line is not a value between the two ends. $K = 2$ gives 2.53332, the lowest of the
three, below $K = 1$ (2.53745) and $K = L$ (2.54353). Nor is that noise: `exact_nelbo` sums over
every mask set, so these numbers carry no Monte Carlo error at all: $K = 2$ really is 0.004 nats
below $K = 1$ and 0.010 below $K = L$. What that shows is that the order is not fixed in advance. The
weights are the same in all three lines, but at each $K$ a block is predicted from different
inputs (its own noisy block and the clean blocks before it), so the same weights make a
different model of the text at each $K$, and each line bounds that model's own likelihood. For
a random network nothing puts the three in any particular order; only training can, and the
next section trains them.
"""), md(r"""
## The dial, trained

Four small models, the same network and the same batches, one per block size:
$K = 1, 4, 16$, and $L = 128$ (trained as MDLM, which is the same objective at a lower cost:
the clean copy has nothing to add when there is one block). Tiny Shakespeare is cut into its
speeches, one document each, so that an end-of-text token follows every speech: the models
can learn where a speech ends, which the last section uses. The speeches are shuffled before the
last 5% of their text is set aside for validation, so a rare character may appear only there:
we use the byte tokenizer, which has every character (this text is plain ASCII, one byte each).

Each run takes the same number of steps. A block diffusion step runs the network over $2L$
positions and costs more than an MDLM step; the table prints the seconds too.
"""), code('''
speeches = [s.strip("\\n") + "\\n" for s in tokenize.bundled_corpus_path().read_text(encoding="utf-8").split("\\n\\n")]
speech_file = Path("runs/notebooks/11_speeches.jsonl")
speech_file.parent.mkdir(parents=True, exist_ok=True)
speech_file.write_text("".join(json.dumps({"text": s}) + "\\n" for s in speeches if s.strip()), encoding="utf-8")
print(f"{len(speeches):,} speeches, {np.mean([len(s) for s in speeches]):.0f} characters on average")

steps = pick(300, 3)
common = ["data.dataset=json", f"data.data_files={speech_file}", "data.tokenizer=byte", "model.conv=0", "train.compile=false",
          f"train.max_steps={steps}", f"train.eval_every={steps}", f"train.save_every={steps}",
          f"train.eval_batches={pick(8, 1)}", f"train.bound_samples={pick(8, 1)}", "train.max_minutes=null"] + pick(
    [], ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=4", "train.warmup_steps=1",
         "sample.length=8", "sample.steps=8"])
dial = {1: ["train.objective=block_diffusion", "model.block_size=1"],
        4: ["train.objective=block_diffusion", "model.block_size=4"],
        16: ["train.objective=block_diffusion", "model.block_size=16"],
        128: ["train.objective=diffusion"]}
if is_smoke():
    dial = {1: dial[1], 16: dial[16], 128: dial[128]}
runs = {}
for K, objective in dial.items():
    cfg = config.load_config("configs/shakespeare_char.yaml",
                             common + objective + [f"train.out_dir=runs/notebooks/11_K{K}"])
    summary = train.train(cfg, overwrite=True)
    runs[K] = dict(cfg=cfg, summary=summary)
'''), code('''
L = runs[128]["cfg"].model.seq_len
per_step = {K: run["summary"]["wall_time_s"] / run["summary"]["step"] for K, run in runs.items()}
lines = ["| K | objective | steps | seconds | time per step vs MDLM | validation bound (nats/char) |",
         "| --- | --- | --- | --- | --- | --- |"]
for K, run in runs.items():
    s = run["summary"]
    name = "MDLM (K = L)" if K == L else "AR-like (K = 1)" if K == 1 else "block diffusion"
    lines.append(f"| {K} | {name} | {s['step']} | {s['wall_time_s']:.0f} | {per_step[K] / per_step[L]:.2f}x | "
                 f"{s['val_bound']:.3f} |")
display(Markdown("\\n".join(lines)))
figure, ax = plt.subplots(figsize=(5.5, 3.5))
ks = list(runs)
ax.plot(ks, [runs[K]["summary"]["val_bound"] for K in ks], "o-")
ax.set(xscale="log", xticks=ks, xticklabels=[str(K) if K != L else f"{K} (L)" for K in ks], xlabel="block size K",
       ylabel="validation bound (nats/char)", title=f"the dial after {steps} steps each")
plt.show()
'''), md(r"""
Read the table against the math. A smaller $K$ gives each block more clean context, which can
only help the bound of a perfect model; a real one also has to learn more separate conditional
distributions from the same data. Each block step runs the network over $2L$ positions, and the
time column says what that costs against an MDLM step. In the stored run the bound falls
steadily as $K$ shrinks, the order BD3-LM reports at equal steps. A run of a few minutes shows a
tendency, not a final ranking; the next section gives each model the same ten minutes instead.

## Ten minutes each

The library's `benchmarks/` folder holds a longer measurement: the character config
(`configs/shakespeare_char.yaml`, without its convolution so that all four use the same network)
trained for the same 9.5 minutes of wall time on 2 CPU cores, one run at a time, as an
autoregressive model, as block diffusion with $K = 4$ and $K = 16$, and as MDLM; each number is
measured on the whole validation split. BD3-LM's paper reports the order AR < BD3(4) < BD3(16)
< MDLM on large corpora; here is what these runs gave:
"""), code('''
measured = json.loads(Path("benchmarks/block_char.json").read_text(encoding="utf-8"))
print(measured["setting"])
lines = ["| model | steps in 9.5 min | validation (nats/char, all 128 positions) |", "| --- | --- | --- |"]
for run in measured["runs"]:
    lines.append(f"| {run['model']} | {run['steps']:,} | {run['value']:.3f} ({run['kind']}) |")
display(Markdown("\\n".join(lines)))
order = sorted(measured["runs"], key=lambda run: run["value"])
print("measured order, best first:", " < ".join(run["model"] for run in order))
'''), md(r"""
At equal wall time the order changes. A block step costs about twice an MDLM step, so the block
models made fewer than half of MDLM's steps in the same minutes: $K = 4$ still comes out ahead of
MDLM, $K = 16$ falls behind it. Which block size pays off depends on the budget as well as on $K$.
"""), md(r"""
## Where does the text end?

An MDLM is told its length up front: `sample.generate(..., length=n)` fills exactly $n$ masks.
A block model can stop. `sample.generate` decodes it one block at a time and, given `eot_id`,
stops after the block in which every sample has written the end-of-text token. The $K = 16$
model, trained on speeches that each end with that token, starts a speech and often ends it
(each sample says where its generation stopped):
"""), code('''
net16, tok, cfg16, _ = train.load_checkpoint(runs[16]["summary"]["checkpoint"], device)
prompt = tok.encode("ROMEO:\\n")
for seed in range(3):
    ids = sample.generate(net16, mask_id=tok.mask_id, prompt=prompt, length=L - len(prompt), steps=pick(64, 8),
                          strategy="confidence", eot_id=tok.eot_id, generator=torch.Generator(device=device).manual_seed(seed))
    row = ids[0].tolist()
    end = row.index(tok.eot_id, len(prompt)) if tok.eot_id in row[len(prompt):] else len(row)
    print(f"--- sample {seed}: {end} characters, generation stopped at position {len(row)} of {L}")
    print(tok.decode(row[:end]))
'''), md(r"""
A sample that writes the end-of-text token is printed up to it, and its generation stopped with
the block that holds it: the positions after it were never computed. A sample without one runs
to the model's length. An MDLM always fills every position it is given: after an end-of-text
token it simply starts another speech.

## What the cache buys

Every denoising step of a block runs only that block through the network, against the cached
keys and values of the finished blocks; then one more pass adds the finished block to the cache.
Without the cache, each step would run the whole prefix again. `bench.time_sampling` counts the
forward passes and the seconds of one `generate` call for the same length, batch 1: the block
model with and without its cache at two tokens per pass, MDLM at the same number of passes, and
a GPT of the same shape with its key/value cache (timing only: random weights).
"""), code('''
length, passes = L, pick(64, 8)
ar_net = model.Transformer(dataclasses.replace(net16.cfg, causal=True, block_size=None)).to(device).eval()
mdlm_net = train.load_checkpoint(runs[128]["summary"]["checkpoint"], device)[0]
candidates = {f"block K=16, cache, {passes} steps": (net16, dict(steps=passes)),
              f"block K=16, no cache, {passes} steps": (net16, dict(steps=passes, use_cache=False)),
              f"MDLM, {passes} steps": (mdlm_net, dict(steps=passes)),
              "GPT, key/value cache": (ar_net, dict())}
timing = {}
for name, (net, kwargs) in candidates.items():
    rows = [bench.time_sampling(net, torch.device(device), "float32", name=name, length=length, seed=0, **kwargs)
            for _ in range(pick(3, 1))]
    timing[name] = min(rows, key=lambda row: row["seconds"])
lines = ["| generating 128 characters | forward passes | seconds | vs the GPT |", "| --- | --- | --- | --- |"]
gpt = timing["GPT, key/value cache"]["seconds"]
for name, row in timing.items():
    lines.append(f"| {name} | {row['network_calls']} | {row['seconds']:.3f} | {gpt / row['seconds']:.2f}x |")
display(Markdown("\\n".join(lines)))
'''), md(r"""
The cached block model makes fewer passes than the GPT (one per two tokens, plus one per block
to fill the cache), and each pass is short: a block of 16 against the cache. Without the cache
it makes the same passes, but each one re-reads the prefix. MDLM's passes each cover the whole
sequence. Which wins in seconds depends on the machine: compare the last column; the
`dllm-bench` rows `block K=16` measure the same on a GPU.

## When is a block model the right choice?

- When the length is not known in advance (answers, chat, stories): it can stop.
- When generation speed matters and the text is long: fewer passes than a GPT and each one
  short, thanks to the cache, and several tokens per pass within a block.
- When its bound is close enough to the AR loss for the task: a smaller $K$ moves it there.
- Not for filling a gap with context on both sides: a block sees only the blocks before it, so
  infilling needs MDLM's full view (notebook 10).

## Summary

- Block diffusion factors a sequence over blocks, left to right, and models each block by
  masked diffusion given the clean ones before it; $K = 1$ is a GPT, $K = L$ is MDLM, checked
  exactly above.
- One training pass over $[x_t, x_0]$ with a block attention mask trains every block at once,
  at about twice the cost of an MDLM step.
- Sampling goes block by block with a key/value cache, and can stop at an end-of-text token.

## Try it

- Train with `model.block_size=8` or `32` and add them to the dial.
- Try `strategy="threshold", threshold=0.9` for the block model: how many passes per block now?
- Generate from the $K = 1$ model with `steps=length`: it writes one character per pass, like
  the GPT, but every pass is followed by a cache pass. Compare the seconds.
""")]


def main() -> int:
    """Write notebooks/11_block_diffusion.ipynb (without outputs)."""
    write_notebook("11_block_diffusion.ipynb", NB11, "11")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write notebook 12 (answering prompts) from the cells below, without outputs.

    python notebooks/build/build_12.py

Then execute it in place, from the repository root:

    python notebooks/run_on_gpu.py --timeout 1800 notebooks/12_answering_prompts.ipynb

It shares the set-up cell and the cell helpers of notebooks 06-09 (build_06_09.py). Under
`DLLM_SMOKE=1` every training run shrinks to a few steps of a one-layer model.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_06_09 import SETUP  # noqa: E402
from course import code, md, write_notebook  # noqa: E402

NB12 = [md(r"""
# 12 · Answering prompts

Every model so far wrote text from nothing, or filled gaps in a text we gave it. The diffusion
language models people use answer a question instead: they are **fine-tuned on prompt/response
pairs** (supervised fine-tuning, SFT). In this notebook you will **learn** how LLaDA does it
(Nie et al. 2025, sec. 2.3), and you will:

1. pack a prompt and its response into one row, with end-of-text padding;
2. see the one change SFT makes to the loss: the prompt is never masked, never scored;
3. train a small model to add 4-digit numbers with the two loss weightings, and measure why
   the weighting can matter at this size;
4. watch the model decide where its answer ends;
5. fine-tune the Shakespeare character model on a question-answering task;
6. score models with the evaluation command, and read the ten-minute figures for three tasks.

**What it needs:** a CPU; about 15 minutes on 2 cores (five short training runs). With
`DLLM_SMOKE=1` every size shrinks and it takes about a minute; the models then learn nothing.
"""), code(SETUP + '''
import json
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from dllm_lite import config, corrupt, evaluate, loss, pairs, sample, tasks, tokenize, train

print(f"device: {device}; smoke mode: {is_smoke()}")
'''), md(r"""
## One pair, one row

`dllm_lite.tasks` writes synthetic tasks with answers a program can check. The first one is
addition, with the sum written the usual way, most significant digit first. The operands are
padded to four digits, so every prompt has the same length; the answers have four or five digits.
"""), code('''
data_dir = Path("runs/notebooks/12_data")
files = tasks.write_task("addition", data_dir / "addition", n_train=pick(20_000, 2_000), n_test=pick(500, 50), seed=0)
records = [json.loads(line) for line in files["train"].read_text().splitlines()[:3]]
for record in records:
    print(record)
'''), md(r"""
A pair becomes one row of the model's length $L$: the prompt's $P$ tokens, then the response,
one end-of-text token, and end-of-text **padding** up to $L$. Everything after the prompt is the
*response region*: what the model must produce. Below, `·` stands for end-of-text.
"""), code('''
tok = tokenize.get_tokenizer("char", chars=sorted(set("0123456789+=")))
packed = pairs.pack_pairs(tok, [r["prompt"] for r in records], [r["response"] for r in records], seq_len=16)


def show(ids, mask_id=tok.mask_id):
    """A row as text: end-of-text as ·, a mask as _."""
    return "".join("·" if i == tok.eot_id else "_" if i == mask_id else tok.decode([i]) for i in ids.tolist())


for row, P, A in zip(packed.ids, packed.prompt_len, packed.answer_len):
    print(f"{show(row)}   prompt {P} tokens, answer {A} (response + end-of-text), padding {16 - P - A}")
'''), md(r"""
A pair that does not fit is skipped and counted, never cut: a cut response would teach the model
to stop in the middle of an answer. The trainer prints how many were skipped and the `seq_len`
that would keep them all.

## The loss: the prompt is given

Diffusion SFT masks only the response region. At time $t$ each position from $P$ on is masked
with probability $1 - \alpha(t)$; the prompt stays clean. The loss counts the masked positions
of the region, weighted by $w(t)$ and divided by the region's length:

$$ \mathcal{L}_{SFT} = \mathbb{E}_t\, \mathbb{E}_{r_t}\Big[ \frac{w(t)}{L - P}
   \sum_{i \ge P:\ r_t^i = m} -\log p_\theta(x_0^i \mid p, r_t) \Big], \qquad w(t) = \frac{1}{t}
   \text{ (linear schedule)}. $$

It is the masked-diffusion bound of notebook 02 for the response given the prompt, so it bounds
$-\log p_\theta(\text{response}, \text{end-of-text}, \text{padding} \mid \text{prompt})$. The
padding is masked and scored like any other token. Predicting end-of-text at a position is how
the model says "the answer is over by here". `loss.sft_loss` is the whole function; here are
its masks for one row at three times:
"""), code('''
row, P = packed.ids[:1], packed.prompt_len[:1]
generator = torch.Generator().manual_seed(0)
for t in (0.3, 0.6, 0.9):
    _, is_masked = corrupt.corrupt(row, torch.tensor([t]), tok.mask_id, "linear", generator=generator)
    is_masked &= loss.response_mask(P, 16)  # the prompt is never masked
    xt = torch.where(is_masked, tok.mask_id, row)
    print(f"t = {t}: {show(xt[0])}")
'''), md(r"""
The autoregressive twin reads the same rows left to right and scores only the answer, the
response and its end-of-text (`loss.ar_sft_loss`): the padding after it is never generated,
so it is never scored either.

## Two weightings, one bound

The library offers two training weightings. `elbo` is the bound above. `mean` drops $w(t)$
and averages the cross-entropy over the masked tokens: not a bound, just a lower-variance
signal. Whichever weighting trains the model, the trainer's `val_bound` is always the bound,
so the two runs are compared on the same number. Each run below trains the same 0.8M-parameter
character model (`configs/sft_char.yaml`) on the addition pairs for the same wall time.
"""), code('''
minutes = pick(3.0, 0.05)
smoke = pick([], ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=8", "train.warmup_steps=1",
                  "train.eval_batches=1", "train.bound_samples=1"])
common = [f"data.data_files={files['train']}", "model.seq_len=16", f"train.max_minutes={minutes}",
          "train.eval_every=250", "train.save_every=100000", "train.log_every=25"] + smoke
runs = {}
for weighting in ("elbo", "mean"):
    cfg = config.load_config("configs/sft_char.yaml", common + [f"train.weighting={weighting}",
                                                                  f"train.out_dir=runs/notebooks/12_add_{weighting}"])
    runs[weighting] = dict(cfg=cfg, summary=train.train(cfg, overwrite=True))
'''), code('''
test_prompts, test_answers, _ = pairs.read_pairs(files["test"])
lines = ["| weighting | steps | validation bound (nats per answer token) | exact match on the test pairs |",
         "| --- | --- | --- | --- |"]
figure, ax = plt.subplots(figsize=(6, 3.5))
for weighting, run in runs.items():
    net, tok_run, _, _ = train.load_checkpoint(run["summary"]["checkpoint"])
    run["net"], run["tok"] = net, tok_run
    run["exact"], run["records"] = evaluate.exact_match(net, tok_run, test_prompts, test_answers)
    lines.append(f"| {weighting} | {run['summary']['step']:,} | {run['summary']['val_bound']:.3f} | {run['exact']:.3f} |")
    evals = [r for r in train.read_metrics(run["cfg"].train.out_dir) if "val_bound" in r]
    ax.plot([r["step"] for r in evals], [r["val_bound"] for r in evals], "o-", label=f"trained with {weighting}")
ax.set(xlabel="step", ylabel="validation bound (nats per answer token)", yscale="log",
       title="the same bound, two training weightings")
ax.legend()
plt.show()
display(Markdown("\\n".join(lines)))
better = min(runs, key=lambda w: runs[w]["summary"]["val_bound"])
print(f"this time, {better} reached the lower bound; exact match: elbo {runs['elbo']['exact']:.3f}, "
      f"mean {runs['mean']['exact']:.3f}")
'''), md(r"""
Read the steps column first. A time budget buys fewer steps on a busy machine: the stored run
above shared its 2 cores with other work and got a few hundred steps per model, too few for either
weighting to learn the task. On an idle 2-core machine each run gets about 2,500 steps, and
`benchmarks/RESULTS.md` holds two such pairs of runs on this task, differing only in how the
floating-point work was scheduled: `elbo` reached 0.006 and 0.964 exact match, `mean` 0.932 and
0.994. With `mean` the model took off both times; with `elbo` it once sat near its starting loss
for the whole budget.

### Why: the variance of $1/t$

Both weightings estimate their loss from one random time per row. Under `elbo` a row drawn at
small $t$ has few masked tokens, each multiplied by $1/t$, which can reach $1/\varepsilon = 1000$;
a row at large $t$ has many masked tokens weighted by about 1. So the per-row terms of the
estimate have a heavy tail, and the batch average, and its gradient, jump around from one batch
to the next. `mean` gives every masked token the same weight: if every token cost the same, its
estimate would not vary at all. Measure both on one batch of validation rows, drawing fresh
times and masks 200 times, for two models: a freshly initialised one (where every run starts,
and where a stuck `elbo` run stays) and the trained `mean` model.
"""), code('''
val = pairs.load_pairs(runs["mean"]["cfg"].data, runs["mean"]["tok"], "validation", 16, log=lambda _: None)
x0, P = val.ids[:64], val.prompt_len[:64]
fresh = train.build_model(runs["mean"]["cfg"], runs["mean"]["tok"].vocab_size).eval()
models = {"fresh": fresh, "trained (mean)": runs["mean"]["net"]}
generator = torch.Generator().manual_seed(1)
spread = {}
lines = ["| model | weighting | mean of the batch estimate | std | std / mean |", "| --- | --- | --- | --- | --- |"]
figure, axes = plt.subplots(1, 2, figsize=(11, 3.2), layout="constrained")
for ax, (name, net_) in zip(axes, models.items()):
    for weighting in ("elbo", "mean"):
        with torch.no_grad():
            values = np.array([loss.sft_loss(net_, x0, P, "linear", runs["mean"]["tok"].mask_id, generator=generator,
                                             weighting=weighting).item() for _ in range(pick(200, 5))])
        spread[name, weighting] = values.std() / values.mean()
        lines.append(f"| {name} | {weighting} | {values.mean():.3f} | {values.std():.3f} | {spread[name, weighting]:.3f} |")
        ax.hist(values / values.mean(), bins=30, alpha=0.6, label=weighting)
    ax.set(xlabel="batch estimate / its mean", ylabel="draws", title=f"{name} model: one batch, many draws")
    ax.legend()
plt.show()
display(Markdown("\\n".join(lines)))
for name in models:
    print(f"{name} model: relative to its size, the elbo estimate spreads "
          f"{spread[name, 'elbo'] / spread[name, 'mean']:.1f} times as much as the mean estimate")
'''), md(r"""
The ratio of standard deviation to mean is the number to read: a gradient step follows one draw.
When the loss is spread evenly over the tokens, as it is at the start of training, the masked mean
hardly varies while the `elbo` estimate varies a great deal, and that noisy signal is what every
run has to climb out on. The right panel is the model trained above: while its loss is still
spread over many tokens, the gap stays. A big model trained on big batches averages the
noise away (LLaDA trains with $1/t$); a 0.8M-parameter model with 64 rows per step does not
always. That is why `configs/sft_char.yaml` trains with `weighting: mean` and reports the bound.

## Learning where to stop

The model never sees the length of the answer. It fills the whole region, and the answer is what
comes before its first end-of-text. Here are raw rows as the `mean` model wrote them, with the
padding it chose:
"""), code('''
net = runs["mean"]["net"]
rows = torch.tensor([tok_ids for tok_ids in runs["mean"]["tok"].encode_batch(test_prompts[:6])])
out = sample.generate(net, mask_id=runs["mean"]["tok"].mask_id, length=16 - rows.shape[1], steps=16 - rows.shape[1],
                      prompt=rows, temperature=0.0)
chars = runs["mean"]["tok"]
for ids, expected in zip(out, test_answers[:6]):
    text = "".join("·" if i == chars.eot_id else chars.decode([i]) for i in ids.tolist())
    print(f"{text}   expected {expected}")
right_length = np.mean([len(r["answer"]) == len(r["expected"]) for r in runs["mean"]["records"]])
print(f"answers of the right length: {right_length:.3f}")
'''), md(r"""
## Fine-tuning the character model

`train.init_from` starts a run from a trained checkpoint: its weights and its tokenizer, with a
fresh optimiser. Here it starts from a Shakespeare character model: the cell below first trains
one for three minutes with the recipe of `configs/shakespeare_char.yaml` (the model notebook 06
trains for longer), then fine-tunes that checkpoint. Its vocabulary has letters and punctuation
but no digits, so it cannot learn addition; the *facts* task uses letters only. It invents people
and states who mentors whom, as questions and answers:
"""), code('''
facts = tasks.write_task("facts", data_dir / "facts", n_train=pick(1000, 100), n_test=0, seed=0)
for line in facts["train"].read_text().splitlines()[:3]:
    print(line)

pre_minutes, tune_minutes = pick(3.0, 0.05), pick(2.0, 0.05)
shape = pick(["model.conv=3"], ["model.conv=3", "model.n_layer=1", "model.n_embd=32", "model.n_head=2"])
cfg = config.load_config("configs/shakespeare_char.yaml", shape + [
    f"train.max_minutes={pre_minutes}", "train.compile=false", "train.out_dir=runs/notebooks/12_shakespeare"] + pick(
    [], ["train.batch_size=4", "train.warmup_steps=1", "train.eval_batches=1", "train.bound_samples=1"]))
pretrained = train.train(cfg, overwrite=True)
'''), md(r"""
Now the same question-answering pairs twice for the same wall time: once from the Shakespeare
weights, once from scratch. Both runs use the same network (with its short convolution, like the
Shakespeare config) and the SFT config's training settings.
"""), code('''
tune_common = [f"data.data_files={facts['train']}", "model.seq_len=32", "data.val_fraction=0.05",
               f"train.max_minutes={tune_minutes}", "train.eval_every=100", "train.save_every=100000"] + shape + smoke
tuned = {}
for start, extra in (("from Shakespeare", [f"train.init_from={pretrained['checkpoint']}"]), ("from scratch", [])):
    cfg = config.load_config("configs/sft_char.yaml", tune_common + extra + [
        f"train.out_dir=runs/notebooks/12_facts_{'tuned' if extra else 'scratch'}"])
    tuned[start] = dict(cfg=cfg, summary=train.train(cfg, overwrite=True))
'''), code('''
forward_prompts, forward_answers, _ = pairs.read_pairs(facts["test_forward"])
lines = ["| start | steps | validation bound (nats per answer token) | trained facts answered exactly |",
         "| --- | --- | --- | --- |"]
figure, ax = plt.subplots(figsize=(6, 3.5))
for start, run in tuned.items():
    net_f, tok_f, _, _ = train.load_checkpoint(run["summary"]["checkpoint"])
    run["exact"], run["records"] = evaluate.exact_match(net_f, tok_f, forward_prompts, forward_answers)
    lines.append(f"| {start} | {run['summary']['step']:,} | {run['summary']['val_bound']:.3f} | {run['exact']:.3f} |")
    evals = [r for r in train.read_metrics(run["cfg"].train.out_dir) if "val_bound" in r]
    ax.plot([r["step"] for r in evals], [r["val_bound"] for r in evals], "o-", label=start)
ax.set(xlabel="step", ylabel="validation bound (nats per answer token)", title="fine-tuning vs training from scratch")
ax.legend()
plt.show()
display(Markdown("\\n".join(lines)))
for record in tuned["from Shakespeare"]["records"][:4]:
    print(f"{record['prompt']} -> {record['answer']!r} (expected {record['expected']!r})")
'''), md(r"""
The table's last column asks about facts the model was trained on (5% of the pairs were held out
for validation, so a few of these it never saw). The validation pairs hold people the model never
met, so no model can know their mentors: the bound there measures how well it has learned the
*form* of an answer, a capitalised invented name followed by end-of-text, and it rises once a
model starts memorising the training names and answers unseen people with confident guesses.
Compare the two rows at the same wall time, and the two curves: the pretrained model already
knows how English letters follow one another, so it gets to the memorising sooner.

## Scoring with the evaluation command

For scripts and courses, `python -m dllm_lite.evaluate` does both measurements from the command
line. With `--pairs` it answers every prompt of a JSON-lines file and prints the exact-match
accuracy as its last line (`--out` keeps every answer); without it, the bound on the checkpoint's
validation split (or on `--text FILE`), with its standard error.
"""), code('''
checkpoint = runs["mean"]["summary"]["checkpoint"]
for args in (["--pairs", str(files["test"])], ["--samples", str(pick(16, 2))]):
    result = subprocess.run([sys.executable, "-m", "dllm_lite.evaluate", "--checkpoint", checkpoint, *args],
                            capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    print(f"$ python -m dllm_lite.evaluate --checkpoint {checkpoint} {' '.join(args)}")
    print(result.stdout.strip().splitlines()[-1] if result.returncode == 0 else result.stderr)
'''), md(r"""
## Ten minutes per task

`benchmarks/RESULTS.md` records longer runs: each task trained for 10 minutes on 2 CPU cores,
one run at a time, as a diffusion model (`mean` weighting) and as an autoregressive one, both
with the 0.8M-parameter network of `configs/sft_char.yaml`, then scored on held-out prompts with
greedy decoding (diffusion: the most confident position first, one token per step). The
*sudoku* task is 4×4 puzzles with a unique solution; *facts (reverse)* asks about the trained
facts the other way round ("Who is B's mentee?"), which training stated only one way.

The *facts (forward)* row is not the fine-tuning of the section above. That model (0.928 of the
trained facts answered exactly) started from the Shakespeare weights; the diffusion model of
this table was trained from scratch, without the short convolution, on twice as many facts (1,000
pairs against 500). Its 0.004 agrees with the section's own *from scratch* row (0.028): trained
from scratch, this small diffusion model had not memorised the facts within its budget (its
validation bound was still falling), while the autoregressive one had. The one thing the two
fine-tuning rows differ in is the starting point.
"""), code('''
measured = json.loads(Path("benchmarks/sft_tasks.json").read_text())
lines = ["| task | test set | diffusion | autoregressive |", "| --- | --- | --- | --- |"]
for row in measured["rows"]:
    lines.append(f"| {row['task']} | {row['test']} | {row['diffusion']:.3f} | {row['autoregressive']:.3f} |")
display(Markdown("\\n".join(lines)))
print(measured["machine"])
'''), md(r"""
Read the table before you believe any claim about diffusion and autoregression: it is one run
each, on one machine, at one size. The next notebook asks where each kind of model wins, with
experiments designed for the question.

## Summary

- SFT packs a pair into one row: prompt, response, end-of-text, end-of-text padding.
- Diffusion SFT never masks or scores the prompt; it masks the response region at rate
  $1-\alpha(t)$, weights by $w(t)$ and divides by the region's length. The padding is scored:
  that is how the model learns to stop.
- At small batch sizes the $1/t$ weight makes the batch estimate of the loss about four times
  as noisy, relative to its size, as the masked mean (measured above on one batch). In two
  3-minute runs on an idle machine `mean` learned addition both times (0.932 and 0.994 exact
  match) and `elbo` once (0.006 and 0.964): too few runs to rank the two, enough to make `elbo`
  the riskier choice at this size. The bound is what we report, whichever weighting trains.
- `train.init_from` fine-tunes a checkpoint; `python -m dllm_lite.evaluate` scores it.

**Try it:**
- Train the addition model with `train.objective=autoregressive` for the same three minutes and
  score it with the evaluation command: which objective answers more sums?
- Answer with `--strategy left_to_right` instead of `confidence` (`python -m dllm_lite.evaluate
  ... --strategy left_to_right`): does the order in which the digits are written change the score?
""")]


def main() -> int:
    """Write notebooks/12_answering_prompts.ipynb (without outputs)."""
    write_notebook("12_answering_prompts.ipynb", NB12, "12")
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""The speed-quality frontier of parallel decoding: how many tokens per call, at what quality?

Trains four character models for the same wall time on Tiny Shakespeare with
configs/shakespeare_char.yaml (the AR twin, MDLM, block diffusion with K=4 and K=16) and a
stronger AR judge (never one of the judged models: the twin's recipe with its own seed and dropout, trained
twice as long, checkpointed often, and the checkpoint lowest on the validation split kept), then
samples every model in every way the frontier needs, each point `--samples` full sequences
of the models' seq_len:

- MDLM: confidence and ancestral at 1, 2, 4, 8 and 16 tokens per call (steps = L / k);
  threshold at tau in {0.5, 0.7, 0.9, 0.95}; semi-autoregressive blocks of 16 at 1 and 4
  tokens per call, without a cache and with Fast-dLLM's prefix and dual caches;
- block diffusion K=4 and K=16 with their exact cache, at 1 and 4 tokens per call;
- the AR twin with its key/value cache;
- every point at temperature 1.0 and 0.8.

Per point: network calls per token, tokens/s at batch 1 and at batch 16 (wall time: run on
an otherwise idle machine), gen-NLL in nats per character under the judge with its standard
error, unigram entropy, distinct-2/3 and memorisation (dllm_lite/quality.py). Then task
decoding on the held-out Sudoku 6x6 and 4-digit addition sets of benchmarks/diffusion_wins.py
(its checkpoints are reused from its runs folder, or trained as it trains them): exact match
against network calls per answer, for confidence at several step counts and threshold at
several tau, beside the AR model.

    python benchmarks/frontier.py                  # --minutes 9.5 per model, the judge 2x that
    python benchmarks/frontier.py --quick --out /tmp/frontier   # seconds, tiny models: a smoke test

A run folder that already holds latest.pt is reused (--retrain trains again). Writes
<out>/frontier.json and <out>/frontier.png.
"""
import argparse
import inspect
import json
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diffusion_wins  # noqa: E402  (the task checkpoints and held-out sets are made the way notebook 13 makes them)

from dllm_lite.checkpoint import load_checkpoint  # noqa: E402
from dllm_lite.data import load_tokens  # noqa: E402
from dllm_lite.evaluate import exact_match, likelihood, rows_of  # noqa: E402
from dllm_lite.pairs import read_pairs  # noqa: E402
from dllm_lite.quality import load_judge, sample_quality, training_windows  # noqa: E402
from dllm_lite.sample import generate  # noqa: E402
from dllm_lite.tasks import write_task  # noqa: E402

ROOT = diffusion_wins.ROOT
OUT = ROOT / "benchmarks" / "frontier"
# equal wall time: the clock ends every run, never the config's max_steps (the AR twin, at ~0.11 s a step on 2
# cores, would reach its 4,000 steps in ~7.5 of the 9.5 minutes)
EQUAL_TIME = ["train.max_steps=1000000"]
MODELS = {"ar": ["train.objective=autoregressive", *EQUAL_TIME], "mdlm": EQUAL_TIME,
          "bd4": ["train.objective=block_diffusion", "model.block_size=4", "model.conv=0", *EQUAL_TIME],
          "bd16": ["train.objective=block_diffusion", "model.block_size=16", "model.conv=0", *EQUAL_TIME]}
# the judge: the AR twin's recipe with its own seed, trained --judge-minutes (the clock ends it too). Trained
# longer alone it was no judge: an AR model of this size overfits Tiny Shakespeare after ~1,500 steps (a 10-minute
# judge ended at 1.724 nats/char on validation, worse than its own 1.563 at step 3,000 and than the 5-minute twin's
# 1.589). So it trains with dropout, keeps a checkpoint every 750 steps, and best_checkpoint keeps the lowest.
JUDGE = ["train.objective=autoregressive", "train.seed=1", *EQUAL_TIME, "model.dropout=0.1",
         "train.eval_every=750", "train.save_every=750", "train.keep_last=1000"]
TEMPERATURES = (1.0, 0.8)
TOKENS_PER_CALL = (1, 2, 4, 8, 16)
THRESHOLDS = (0.5, 0.7, 0.9, 0.95)
TASK_THRESHOLDS = THRESHOLDS + (0.99, 0.999)  # a task's confident cells are often right: stricter ones pay
SEMI_AR_BLOCK = 16
# task: (write_task options, seq_len, training minutes), as diffusion_wins.main sets them
TASKS = {"sudoku": ({"size": 6, "blanks": 16}, 88, 8), "addition": ({}, 16, 10)}
# two layers, not one: in a single layer a key or value depends only on its own token (and its neighbours, through
# model.conv), so the block caches go (almost) never stale and a --quick run could not show what they cost
QUICK = ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "train.compile=false", "train.max_steps=3",
         "train.eval_every=2", "train.eval_batches=1", "train.bound_samples=1", "train.save_every=100000"]
QUICK_CHAR = QUICK + ["model.seq_len=32", "data.max_tokens=20000", "data.val_tokens=2048", "sample.length=32",
                      "sample.steps=32"]
HAS_BLOCK_CACHE = "block_cache" in inspect.signature(generate).parameters  # Fast-dLLM's caches in sample.generate


# ---- the char models and the judge ------------------------------------------------------------------

def train_models(args) -> dict:
    """Train (or reuse) the four judged models and the judge; return their diffusion_wins.run summaries."""
    extra = QUICK_CHAR if args.quick else []
    runs = {name: diffusion_wins.run(args.runs / name, diffusion_wins.CHAR, overrides + extra, args.minutes,
                                     args.retrain) for name, overrides in MODELS.items()}
    runs["judge"] = diffusion_wins.run(args.runs / "judge", diffusion_wins.CHAR, JUDGE + extra, args.judge_minutes,
                                       args.retrain)
    return runs


def validation_rows(tokenizer, cfg) -> list:
    """The whole validation split as rows of cfg.model.seq_len tokens."""
    return rows_of(load_tokens(cfg.data, tokenizer, "validation").astype("int64"), cfg.model.seq_len)


def validation_loss(net, tokenizer, cfg, rows=None) -> dict:
    """An AR model's exact next-token loss on the whole validation split (or on `rows` of it, read once by the
    caller), nats per character, with its stderr."""
    return likelihood(net, validation_rows(tokenizer, cfg) if rows is None else rows, tokenizer.mask_id)


def best_checkpoint(folder: Path, cfg) -> tuple[Path, dict, list]:
    """An AR run's checkpoint lowest on the whole validation split: (path, its validation loss, every
    checkpoint's {"checkpoint", "step", "loss"}). The judge is chosen so, and the AR twin's early-stopped
    checkpoint ("ar_best") is judged beside the twin as trained."""
    candidates, rows = [], None
    for path in sorted(folder.glob("step_*.pt")) + [folder / "latest.pt"]:
        net, tokenizer, _, state = load_checkpoint(path)
        rows = validation_rows(tokenizer, cfg) if rows is None else rows  # one run: one tokenizer, read once
        candidates.append((validation_loss(net, tokenizer, cfg, rows), path, state.get("step")))
    validation, path, _ = min(candidates, key=lambda c: c[0]["loss"])
    return path, validation, [{"checkpoint": p.name, "step": step, "loss": v["loss"]} for v, p, step in candidates]


def points(L: int) -> list[dict]:
    """Every sampling setting of the frontier for sequences of L tokens: {"model", "sampler", generate's options}."""
    out = []
    for temperature in TEMPERATURES:
        for k in TOKENS_PER_CALL:
            for strategy in ("confidence", "ancestral"):
                out.append({"model": "mdlm", "sampler": strategy, "tokens_per_call": k, "strategy": strategy,
                            "steps": math.ceil(L / k), "temperature": temperature})
        for tau in THRESHOLDS:
            out.append({"model": "mdlm", "sampler": "threshold", "strategy": "threshold", "threshold": tau,
                        "steps": L, "temperature": temperature})
        for k in (1, 4):
            for cache in (None, "prefix", "dual"):
                out.append({"model": "mdlm", "sampler": f"semi-AR blocks of {SEMI_AR_BLOCK}" +
                            (f", {cache} cache" if cache else ""), "tokens_per_call": k, "strategy": "confidence",
                            "steps": math.ceil(L / k), "block_size": SEMI_AR_BLOCK, "block_cache": cache,
                            "temperature": temperature})
            for name in ("bd4", "bd16"):
                out.append({"model": name, "sampler": "block diffusion, exact cache", "tokens_per_call": k,
                            "strategy": "confidence", "steps": math.ceil(L / k), "temperature": temperature})
        out.append({"model": "ar", "sampler": "autoregressive, key/value cache", "tokens_per_call": 1,
                    "steps": L, "temperature": temperature})
        out.append({"model": "ar_best", "sampler": "autoregressive, key/value cache, early-stopped",
                    "tokens_per_call": 1, "steps": L, "temperature": temperature})
    return out


def batch1_speed(net, tokenizer, rows: int, seed: int, **options) -> float:
    """Tokens per second generating `rows` sequences one at a time (wall time of generate alone; a
    compiled sampler is compiled by one untimed sequence first)."""
    generator, seconds = torch.Generator().manual_seed(seed), 0.0
    if options.get("compile"):
        generate(net, mask_id=tokenizer.mask_id, length=net.cfg.seq_len, **options)
    for _ in range(rows):
        start = time.perf_counter()
        generate(net, mask_id=tokenizer.mask_id, length=net.cfg.seq_len, generator=generator, **options)
        seconds += time.perf_counter() - start
    return rows * net.cfg.seq_len / seconds


def measure(point: dict, models: dict, judge, judge_tokenizer, windows, args) -> dict:
    """One point of the frontier: the quality of args.samples sequences at batch 16, and speed at batch 1."""
    net, tokenizer = models[point["model"]]
    options = {key: point[key] for key in ("steps", "strategy", "threshold", "temperature", "block_size", "block_cache")
               if point.get(key) is not None}
    if "block_cache" in options and not HAS_BLOCK_CACHE:
        return {**point, "skipped": "this dllm_lite's sample.generate has no block_cache= (Fast-dLLM caches)"}
    if args.compile and point["model"] != "mdlm":  # the static-cache compiled decoder of AR and block diffusion
        options["compile"] = point["compile"] = True
    result = sample_quality(net, tokenizer, judge, judge_tokenizer, samples=args.samples, batch_size=16,
                            training=windows, generator=torch.Generator().manual_seed(args.seed), **options)
    texts = result.pop("texts")
    result["tokens_per_s_batch16"] = result.pop("tokens_per_s")
    result["tokens_per_s_batch1"] = batch1_speed(net, tokenizer, args.timing_rows, args.seed, **options)
    return {**point, **result, "example": texts[0]}


# ---- task decoding: exact match against calls per answer ------------------------------------------------

class CallCounter(nn.Module):
    """A denoiser that counts the rows it is called on: calls per answer = rows seen / answers."""

    def __init__(self, net):
        super().__init__()
        self.net, self.cfg, self.rows = net, net.cfg, 0

    def forward(self, idx, **kwargs):
        self.rows += idx.shape[0]
        return self.net(idx, **kwargs)

    def new_cache(self, *args, **kwargs):
        return self.net.new_cache(*args, **kwargs)


def task_point(net, tokenizer, prompts, responses, **options) -> dict:
    """Exact match and network calls per answer of greedy answers decoded with `options`."""
    counter = CallCounter(net)
    accuracy, _ = exact_match(counter, tokenizer, prompts, responses, **options)
    return {**options, "exact_match": accuracy, "calls_per_answer": counter.rows / len(prompts)}


def tasks(args) -> dict:
    """Exact match against calls per answer on the held-out Sudoku 6x6 and addition sets."""
    out = {}
    for task, (size, seq_len, minutes) in TASKS.items():
        task_args = SimpleNamespace(runs=args.task_runs, minutes=args.task_minutes or minutes, retrain=args.retrain)
        data = args.task_runs / "data" / task
        write_task(task, data, *((200, 20) if args.quick else (20000, 500)), **size)
        runs = diffusion_wins.sft_pair(task_args, task, data, seq_len, QUICK if args.quick else [])
        prompts, responses, _ = read_pairs(data / "test.jsonl")
        prompts, responses = prompts[: args.task_prompts], responses[: args.task_prompts]
        diffusion = load_checkpoint(Path(runs["diffusion"]["folder"]) / "latest.pt")[:2]
        ar = load_checkpoint(Path(runs["autoregressive"]["folder"]) / "latest.pt")[:2]
        answer_len = seq_len - min(len(p) for p in prompts)  # the most masked positions an answer has
        rows = [{"sampler": "autoregressive", **task_point(*ar, prompts, responses)}]
        for k in (1, 2, 3, 4, 8):
            rows.append({"sampler": "confidence", "tokens_per_call": k,
                         **task_point(*diffusion, prompts, responses, steps=math.ceil(answer_len / k))})
        for tau in TASK_THRESHOLDS:
            rows.append({"sampler": "threshold", **task_point(*diffusion, prompts, responses, strategy="threshold",
                                                               threshold=tau)})
        out[task] = {"runs": runs, "test_prompts": len(prompts), "answer_positions": answer_len, "points": rows}
        print(task, [(r["sampler"], round(r["calls_per_answer"], 1), r["exact_match"]) for r in rows])
    return out


# ---- the answers and the table ----------------------------------------------------------------------------

NLL_MARGIN, ENTROPY_MARGIN = 0.05, 0.02  # "as good as": within 0.05 nats/char of gen-NLL, entropy within 2%


def as_good(point: dict, reference: dict) -> bool:
    """A point's samples are as good as the reference's: gen-NLL at most NLL_MARGIN above it, and entropy within
    ENTROPY_MARGIN of it (a lower gen-NLL bought with repetition does not count)."""
    return (point["gen_nll"] <= reference["gen_nll"] + NLL_MARGIN
            and abs(point["entropy"] - reference["entropy"]) <= ENTROPY_MARGIN * reference["entropy"])


def versus_ar(result: dict, reference: str = "ar") -> list[dict]:
    """Per temperature, the frontier question: the fewest calls per token of any diffusion point as good as the
    AR model `reference` ("ar": the twin as trained; "ar_best": early-stopped), and its speed against AR's; or,
    if there is none, the diffusion point at AR's entropy that comes closest, and by how much it misses."""
    measured = [p for p in result["points"] if "gen_nll" in p]
    out = []
    for temperature in sorted({p["temperature"] for p in measured}, reverse=True):
        here = [p for p in measured if p["temperature"] == temperature]
        ar = next((p for p in here if p["model"] == reference), None)
        if ar is None:
            continue
        diffusion = [p for p in here if not p["model"].startswith("ar")]
        good = [p for p in diffusion if as_good(p, ar)]
        row = {"temperature": temperature, "reference": reference, "ar_gen_nll": ar["gen_nll"],
               "ar_entropy": ar["entropy"], "ar_tokens_per_s_batch1": ar["tokens_per_s_batch1"],
               "ar_tokens_per_s_batch16": ar["tokens_per_s_batch16"]}
        if good:
            best = min(good, key=lambda p: (p["calls_per_token"], p["gen_nll"]))
            row.update(answer="found", point=best, speedup_batch1=best["tokens_per_s_batch1"] / ar["tokens_per_s_batch1"],
                       speedup_batch16=best["tokens_per_s_batch16"] / ar["tokens_per_s_batch16"])
        else:
            entropic = [p for p in diffusion if abs(p["entropy"] - ar["entropy"]) <= ENTROPY_MARGIN * ar["entropy"]]
            closest = min(entropic or diffusion, key=lambda p: p["gen_nll"])
            row.update(answer="never", closest=closest, entropy_matched=bool(entropic),
                       miss=closest["gen_nll"] - ar["gen_nll"])
        out.append(row)
    return out


def parallel_target(result: dict) -> list[dict]:
    """Parallel decoding's promise, per diffusion model, sampler and temperature: the point with the fewest calls
    per token (at least 4 tokens per call) as good as the same model and sampler at 1 token per call (threshold
    is measured against confidence); where none is, the fast point that misses by least."""
    measured = [p for p in result["points"] if "gen_nll" in p and not p["model"].startswith("ar")]
    out = []
    for one in [p for p in measured if p.get("tokens_per_call") == 1]:
        same = [p for p in measured if p["model"] == one["model"] and p["temperature"] == one["temperature"] and (
            p["sampler"] == one["sampler"] or (one["sampler"] == "confidence" and p["sampler"] == "threshold"))]
        fast = [p for p in same if p["calls_per_token"] <= 0.25]
        good = [p for p in fast if as_good(p, one)]
        if good:  # the fastest that meets it; else the one that misses by least
            best = min(good, key=lambda p: (p["calls_per_token"], p["gen_nll"]))
        else:
            best = min(fast, key=lambda p: p["gen_nll"], default=None)
        out.append({"model": one["model"], "sampler": one["sampler"], "temperature": one["temperature"],
                    "one_per_call": one["gen_nll"], "met": bool(good), "best": best,
                    "miss": None if best is None else best["gen_nll"] - one["gen_nll"]})
    return out


def label(point: dict) -> str:
    """A point's sampler in a few words: 'confidence, 4 per call', 'threshold 0.9', ..."""
    text = point["sampler"] + (f" τ={point['threshold']}" if point.get("threshold") else "")
    return text + (f", {point['tokens_per_call']} per call" if point.get("tokens_per_call") else "")


def table(result: dict) -> str:
    """Every measured point as a markdown table (for RESULTS.md)."""
    lines = ["| model | sampler | T | calls/token | gen-NLL (nats/char) | entropy | distinct-2 | memorisation | "
             "tokens/s batch 1 | tokens/s batch 16 |", "|" + " --- |" * 10]
    for p in result["points"]:
        if "gen_nll" in p:
            lines.append(f"| {p['model']} | {label(p)} | {p['temperature']} | {p['calls_per_token']:.3f} | "
                         f"{p['gen_nll']:.3f} ± {p['gen_nll_stderr']:.3f} | {p['entropy']:.3f} | {p['distinct2']:.3f} | "
                         f"{p['memorisation']:.3f} | {p['tokens_per_s_batch1']:,.0f} | {p['tokens_per_s_batch16']:,.0f} |")
    return "\n".join(lines)


def report(result: dict) -> str:
    """The answers, in words, one line each: the frontier question against both AR references, then the
    parallel-decoding target."""
    lines = []
    for reference in ("ar", "ar_best"):
        for row in versus_ar(result, reference):
            head = (f"T={row['temperature']} vs {reference} (gen-NLL {row['ar_gen_nll']:.3f}, entropy "
                    f"{row['ar_entropy']:.3f}): ")
            if row["answer"] == "found":
                p = row["point"]
                lines.append(head + f"{p['model']} {label(p)} at {p['calls_per_token']:.3f} calls/token, gen-NLL "
                             f"{p['gen_nll']:.3f}, entropy {p['entropy']:.3f}; speed vs AR {row['speedup_batch1']:.2f}x "
                             f"at batch 1, {row['speedup_batch16']:.2f}x at batch 16")
            else:
                p = row["closest"]
                lines.append(head + f"never; closest {'at AR entropy' if row['entropy_matched'] else 'of all'}: "
                             f"{p['model']} {label(p)}, gen-NLL {p['gen_nll']:.3f} (+{row['miss']:.3f}), entropy "
                             f"{p['entropy']:.3f}, {p['calls_per_token']:.3f} calls/token")
    for row in parallel_target(result):
        best = row["best"]
        lines.append(f"target >=4 tokens/call, {row['model']} {row['sampler']} T={row['temperature']} (1 per call "
                     f"{row['one_per_call']:.3f}): " + ("no point at <= 0.25 calls/token" if best is None else
                     f"{'met' if row['met'] else 'missed'} by {label(best)}: {best['gen_nll']:.3f} "
                     f"({row['miss']:+.3f}), entropy {best['entropy']:.3f}, {best['calls_per_token']:.3f} calls/token"))
    return "\n".join(lines)


# ---- the plot -----------------------------------------------------------------------------------------------

def plot(result: dict, path: Path) -> None:
    """Calls per token and tokens/s (batch 1) against gen-NLL, coloured by entropy; AR's points starred."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    measured = [p for p in result["points"] if "gen_nll" in p]
    entropy = [p["entropy"] for p in measured]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, label in [(axes[0], "calls_per_token", "network calls per token"),
                           (axes[1], "tokens_per_s_batch1", "tokens / s at batch 1")]:
        for is_ar, marker, size in [(False, "o", 30), (True, "*", 160)]:
            group = [p for p in measured if p["model"].startswith("ar") == is_ar]
            shown = ax.scatter([p[key] for p in group], [p["gen_nll"] for p in group], s=size, marker=marker,
                               c=[p["entropy"] for p in group], cmap="viridis", vmin=min(entropy), vmax=max(entropy),
                               edgecolors="black" if is_ar else "none", label="AR, key/value cache" if is_ar else
                               "diffusion samplers")
        ax.axhline(result["judge"]["validation"]["loss"], color="grey", ls="--", lw=1,
                   label="validation text under the judge")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 0.1, 1, 1000 rather than powers of ten
        ax.xaxis.set_minor_formatter(NullFormatter())  # unlabelled minor ticks: their labels overlapped
        ax.set_xlabel(label)
    axes[0].set_ylabel("gen-NLL under the judge (nats / character)")
    axes[0].legend(fontsize=8)
    fig.colorbar(shown, ax=axes, label="unigram entropy (nats)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=None, help="train.max_minutes of each judged model (9.5)")
    parser.add_argument("--judge-minutes", type=float, default=None, help="the judge's (default: 2 x --minutes)")
    parser.add_argument("--samples", type=int, default=None, help="sequences per point (64; --quick 16)")
    parser.add_argument("--timing-rows", type=int, default=None, help="sequences timed at batch 1 per point (4)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "frontier", help="the char models' run folders")
    parser.add_argument("--task-runs", type=Path, default=None, help="the task models' run folders (default: "
                        "diffusion_wins' own, runs/diffusion_wins, so its checkpoints are reused)")
    parser.add_argument("--task-minutes", type=float, default=None, help="for task models not yet trained "
                        "(default: diffusion_wins' 8 for Sudoku, 10 for addition)")
    parser.add_argument("--task-prompts", type=int, default=500, help="held-out prompts scored per task")
    parser.add_argument("--out", type=Path, default=OUT, help="where frontier.json and frontier.png go")
    parser.add_argument("--retrain", action="store_true", help="train again even where latest.pt exists")
    parser.add_argument("--no-tasks", action="store_true", help="skip the Sudoku and addition part")
    parser.add_argument("--report", action="store_true", help="print the answers and the markdown table of the "
                        "frontier.json in --out, and exit")
    parser.add_argument("--resume", action="store_true", help="keep the points already measured in "
                        "--out/frontier.json (same models, same judge) and measure only the rest")
    parser.add_argument("--tasks-only", action="store_true", help="run only the task part and add it to the "
                        "frontier.json already in --out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="decode AR and block diffusion with the compiled "
                        "static-cache step (sample.generate(compile=True)); compilation is never timed")
    parser.add_argument("--quick", action="store_true", help="tiny models trained for a second: checks it all runs")
    args = parser.parse_args(argv)
    quick = args.quick
    args.minutes = args.minutes or (0.01 if quick else 9.5)
    args.judge_minutes = args.judge_minutes or 2 * args.minutes
    args.samples = args.samples or (16 if quick else 64)
    if args.samples % 16:
        parser.error(f"--samples must be a multiple of 16, the batch that tokens/s at batch 16 is timed at; "
                     f"got {args.samples}")
    args.timing_rows = args.timing_rows or (1 if quick else 4)
    args.task_minutes = args.task_minutes or (0.01 if quick else None)
    args.task_runs = args.task_runs or (args.runs / "tasks" if quick else ROOT / "runs" / "diffusion_wins")
    if args.tasks_only:
        return tasks_only(args)
    if args.report:
        result = previous_result(args.out)
        if not result["points"]:
            sys.exit(f"error: --report reads {args.out / 'frontier.json'}, which does not exist or holds no points")
        print(report(result) + "\n\n" + table(result))
        return 0

    print(f"plan: up to {4 * args.minutes + args.judge_minutes:g} minutes of training for the four models and the "
          f"judge, then {len(points(128))} points of {args.samples} samples each" + ("" if args.no_tasks else
          ", then the tasks (their models trained only where --task-runs lacks them)"))
    runs = train_models(args)
    models = {name: load_checkpoint(args.runs / name / "latest.pt")[:2] for name in MODELS}  # (net, tokenizer)
    judge_cfg = load_checkpoint(args.runs / "judge" / "latest.pt")[2]
    judge_path, validation, candidates = best_checkpoint(args.runs / "judge", judge_cfg)
    judge, judge_tokenizer = load_judge(judge_path, model=models["ar"][0])  # refuses the twin itself
    twin = validation_loss(*models["ar"], judge_cfg)  # the same split, the same way
    twin_best_path, twin_best, twin_candidates = best_checkpoint(args.runs / "ar", judge_cfg)
    models["ar_best"] = load_checkpoint(twin_best_path)[:2]
    if validation["loss"] >= twin["loss"]:
        print(f"warning: the judge's validation loss {validation['loss']:.4f} is not below the AR twin's "
              f"{twin['loss']:.4f}: train it longer (--judge-minutes)")
    tokenizer = models["mdlm"][1]
    windows = training_windows(tokenizer.decode(load_tokens(judge_cfg.data, tokenizer, "train")))
    result = {"minutes": args.minutes, "samples": args.samples, "seq_len": models["mdlm"][0].cfg.seq_len,
              "quick": quick, "gen_nll_unit": "nats per character", "runs": runs,
              "judge": {"folder": runs["judge"]["folder"], "checkpoint": judge_path.name, "minutes": args.judge_minutes,
                        "validation": validation, "ar_twin_validation": twin, "checkpoints": candidates},
              "ar_best": {"checkpoint": twin_best_path.name, "validation": twin_best, "checkpoints": twin_candidates},
              "points": []}
    before = previous_result(args.out) if args.resume else {"points": []}
    measured = {settings(p): p for p in before["points"] if "gen_nll" in p}
    for point in points(result["seq_len"]):
        key = settings(point)
        if key in measured:
            result["points"].append(measured[key])
            continue
        result["points"].append(measure(point, models, judge, judge_tokenizer, windows, args))
        done = result["points"][-1]
        print(f"{done['model']:5} {done['sampler']:38} T={done['temperature']} " +
              (f"skipped: {done['skipped']}" if "skipped" in done else
               f"calls/token={done['calls_per_token']:.3f} gen_nll={done['gen_nll']:.3f}"
               f"±{done['gen_nll_stderr']:.3f} entropy={done['entropy']:.3f}"))
    write(result, args.out)  # before the tasks, so that a failure there loses none of this
    print(report(result))
    if not args.no_tasks:
        result["tasks"] = tasks(args)
        write(result, args.out)
    elif "tasks" in before:  # --resume --no-tasks keeps the task part measured before
        result["tasks"] = before["tasks"]
        write(result, args.out)
    return 0


def write(result: dict, out: Path) -> None:
    """Write out/frontier.json and its plot out/frontier.png."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot(result, out / "frontier.png")
    print(f"wrote {out / 'frontier.json'} and {out / 'frontier.png'}")


def settings(point: dict) -> str:
    """A point's sampling settings (the keys points() gives it) as one comparable string."""
    keys = ("model", "sampler", "tokens_per_call", "strategy", "steps", "threshold", "block_size", "block_cache",
            "temperature")
    return json.dumps({key: point.get(key) for key in keys}, sort_keys=True)


def previous_result(out: Path) -> dict:
    """out/frontier.json as an earlier run left it ({"points": []} if there is none)."""
    path = out / "frontier.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"points": []}


def tasks_only(args) -> int:
    """Add (or redo) the task part of an existing out/frontier.json."""
    path = args.out / "frontier.json"
    if not path.is_file():
        sys.exit(f"error: --tasks-only adds to {path}, which does not exist; run without --tasks-only first")
    result = previous_result(args.out)
    result["tasks"] = tasks(args)
    write(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""Where diffusion beats autoregression, and where it does not: the four experiments of notebook 13.

Each experiment trains a diffusion model and an autoregressive (AR) model of the same size for
the same wall time, one after the other, scores both on held-out prompts (or held-out text),
and writes what it measured to benchmarks/diffusion_wins/<experiment>.json, which notebook 13
reads. Run one experiment at a time on an otherwise idle machine: the runs are stopped by the
clock, so anything else running steals their steps.

    python benchmarks/diffusion_wins.py addition   # 4-digit sums written most-significant digit first
    python benchmarks/diffusion_wins.py sudoku     # 6x6 Sudoku, 16 blanks; three decoding orders
    python benchmarks/diffusion_wins.py reversal   # "A's mentor is B." -> who is B's mentee?
    python benchmarks/diffusion_wins.py data       # a 25K..1M-character slice of Tiny Shakespeare

A run whose folder already holds latest.pt is not trained again (delete the folder, or pass
--retrain); the task files are rewritten each time (they are seeded, so they come out the same).
--minutes shortens every run, --runs moves the run folders (default runs/diffusion_wins), --out
the results (default benchmarks/diffusion_wins).
"""
import argparse
import json
import random
import sys
from pathlib import Path

import torch

from dllm_lite.checkpoint import load_checkpoint
from dllm_lite.config import load_config
from dllm_lite.evaluate import exact_match, text_nats
from dllm_lite.pairs import read_pairs
from dllm_lite.sample import generate
from dllm_lite.tasks import write_task
from dllm_lite.train import read_metrics, train

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "diffusion_wins"
SFT = ROOT / "configs" / "sft_char.yaml"
CHAR = ROOT / "configs" / "shakespeare_char.yaml"
OBJECTIVES = ("diffusion", "autoregressive")


# ---- shared helpers ---------------------------------------------------------------------------

def run(folder: Path, config: Path, overrides: list[str], minutes: float, retrain: bool) -> dict:
    """Train config + overrides into folder for `minutes` (unless it holds latest.pt); return its summary."""
    if (folder / "latest.pt").is_file() and not retrain:
        print(f"reusing {folder} (delete it or pass --retrain to train again)")
    else:
        cfg = load_config(config, overrides + [f"train.out_dir={folder}", f"train.max_minutes={minutes}"])
        train(cfg, overwrite=True)
    records = read_metrics(folder)
    evals = [r for r in records if "val_loss" in r]
    key = "val_bound" if any("val_bound" in r for r in evals) else "val_loss"
    curve = [{"step": r["step"], "elapsed": r["elapsed"], "value": r[key]} for r in evals]
    best = min(curve, key=lambda point: point["value"]) if curve else None
    steps = max(r["step"] for r in records if "step" in r)
    return {"folder": str(folder), "steps": steps, "metric": key, "curve": curve, "best": best,
            "last": curve[-1] if curve else None}


def score(net, tokenizer, pairs_file: Path, **options) -> dict:
    """Exact match of a model's greedy answers to the pairs of a JSON-lines file."""
    prompts, responses, _ = read_pairs(pairs_file)
    if net.cfg.causal:
        options.pop("strategy", None)
    options["generator"] = torch.Generator().manual_seed(0)  # a random order is drawn the same way each time
    accuracy, records = exact_match(net, tokenizer, prompts, responses, **options)
    return {"exact_match": accuracy, "n": len(records), "examples": records[:5]}


def write(args, name: str, result: dict) -> None:
    """Write result as args.out/<name>.json."""
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def sft_pair(args, task: str, data: Path, seq_len: int, extra: list[str] = ()) -> dict:
    """Train a diffusion and an AR model on data/train.jsonl for args.minutes each."""
    runs = {}
    for objective in OBJECTIVES:
        runs[objective] = run(args.runs / f"{task}_{objective}", SFT,
                              [f"data.data_files={data / 'train.jsonl'}", f"model.seq_len={seq_len}",
                               f"train.objective={objective}", *extra], args.minutes, args.retrain)
    return runs


# ---- 1 and 2: answer order (addition) and the easiest cell first (Sudoku) -------------------------

@torch.no_grad()
def reveal_order(net, tokenizer, pairs_file: Path, n: int = 200) -> list[float]:
    """For a diffusion model decoding by confidence, the mean step at which each answer position is
    revealed (0: first), over up to n prompts whose answers are the longest."""
    prompts, responses, _ = read_pairs(pairs_file)
    width = max(len(r) for r in responses)  # addition: the sums with the most digits (a carry out of the top)
    prompts = [p for p, r in zip(prompts, responses) if len(r) == width][:n]
    prompts = torch.tensor(tokenizer.encode_batch(prompts))  # (n, P), all one length
    length = net.cfg.seq_len - prompts.shape[1]
    _, trajectory = generate(net, mask_id=tokenizer.mask_id, length=length, steps=length, prompt=prompts,
                             strategy="confidence", temperature=0.0, return_trajectory=True)
    states = torch.stack([s[:, prompts.shape[1]:] for s in trajectory])  # (steps + 1, n, length)
    revealed_at = (states == tokenizer.mask_id).sum(0).float()  # steps a position stayed masked
    return revealed_at[:, :width].mean(0).tolist()


def ordered(args, task: str, size: dict, seq_len: int) -> None:
    data = args.runs / "data" / task
    write_task(task, data, 20000, 500, **size)
    runs = sft_pair(args, task, data, seq_len)
    diffusion, ar = (load_checkpoint(Path(runs[o]["folder"]) / "latest.pt")[:2] for o in OBJECTIVES)  # (net, tokenizer)
    result = {"task": task, "options": size, "minutes": args.minutes, "runs": runs,
              "autoregressive": score(*ar, data / "test.jsonl"),
              "diffusion": {s: score(*diffusion, data / "test.jsonl", strategy=s)
                            for s in ("confidence", "left_to_right", "random")}}
    if task == "addition":
        result["reveal_step"] = reveal_order(*diffusion, data / "test.jsonl")
    write(args, task, result)


# ---- 3: the reversal test -----------------------------------------------------------------------

def rank_accuracy(net, tokenizer, facts: list[dict], people: list[str], template: str, field: str,
                  candidates: int, samples: int) -> float:
    """Share of facts whose true name scores best among `candidates` names put into `template`."""
    rng, hits = random.Random(0), 0
    for index, fact in enumerate(facts):
        truth = fact[field]
        names = [truth] + rng.sample([p for p in people if p != truth], candidates - 1)
        scores = text_nats(net, tokenizer, [template.format(**{**fact, field: name}) for name in names],
                           samples=samples, seed=index)  # the same noise for every candidate of a fact
        hits += min(range(len(names)), key=scores.__getitem__) == 0
    return hits / len(facts)


@torch.no_grad()
def left_infill(net, tokenizer, facts: list[dict]) -> float:
    """Diffusion only: fill "[k masks]'s mentor is B." given the mentee's length k in tokens."""
    hits = 0
    for fact in facts:
        k = len(tokenizer.encode(fact["mentee"]))
        rest = tokenizer.encode(f"'s mentor is {fact['mentor']}.") + [tokenizer.eot_id]
        row = [tokenizer.mask_id] * k + rest
        row += [tokenizer.eot_id] * (net.cfg.seq_len - len(row))
        ids = generate(net, mask_id=tokenizer.mask_id, length=0, steps=k, prompt=torch.tensor(row),
                       strategy="confidence", temperature=0.0)
        hits += tokenizer.decode(ids[0, :k].tolist()) == fact["mentee"]
    return hits / len(facts)


def reversal(args) -> None:
    data = args.runs / "data" / "facts"
    paths = write_task("facts", data, 400, 0, form="statement")
    lines = paths["train"].read_text(encoding="utf-8")
    paths["train"].write_text(lines + lines, encoding="utf-8")  # twice: a validation draw leaves one copy trained
    runs = sft_pair(args, "facts", data, 32, ["data.val_fraction=0.002"])
    prompts, responses, _ = read_pairs(paths["test_forward"])  # "A's mentor is " -> "B."
    facts = [{"mentee": p.split("'s mentor is ")[0], "mentor": r[:-1]} for p, r in zip(prompts, responses)]
    people = sorted({f["mentee"] for f in facts} | {f["mentor"] for f in facts})
    result = {"minutes": args.minutes, "runs": runs, "n_facts": len(facts), "candidates": args.candidates}
    for objective in OBJECTIVES:
        net, tokenizer, _, _ = load_checkpoint(Path(runs[objective]["folder"]) / "latest.pt")
        row = {side: score(net, tokenizer, paths[f"test_{side}"])["exact_match"] for side in ("forward", "reverse")}
        row["rank_right"] = rank_accuracy(net, tokenizer, facts, people, "{mentee}'s mentor is {mentor}.",
                                          "mentor", args.candidates, args.samples)
        row["rank_left"] = rank_accuracy(net, tokenizer, facts, people, "{mentee}'s mentor is {mentor}.",
                                         "mentee", args.candidates, args.samples)
        row["rank_reverse"] = rank_accuracy(net, tokenizer, facts, people, "{mentor}'s mentee is {mentee}.",
                                            "mentee", args.candidates, args.samples)
        if not net.cfg.causal:
            row["left_infill"] = left_infill(net, tokenizer, facts)
        result[objective] = row
        print(objective, row)
    write(args, "reversal", result)


# ---- 4: the data-constrained regime -------------------------------------------------------------

DATA_RUNS = {"diffusion": [], "autoregressive": [],
             "autoregressive, dropout 0.1": ["model.dropout=0.1"], "autoregressive, dropout 0.2": ["model.dropout=0.2"],
             "autoregressive, weight decay 0.1": ["train.weight_decay=0.1"]}


def data_constrained(args) -> None:
    common = ["data.val_tokens=12288", "train.eval_every=50", "train.eval_batches=6", "train.bound_samples=2",
              "train.save_every=100000", "sample.length=32", "sample.steps=32",
              "train.compile=false"]  # compiling a dropout model takes ~20 s longer: none is compiled, to be fair
    result = {"minutes": args.minutes, "validation_tokens": 12288, "sizes": {}}
    regularised = None
    for size in args.sizes:  # the size of the first one decides AR's regularisation for the others
        names = list(DATA_RUNS) if regularised is None else ["diffusion", "autoregressive", regularised]
        runs = {}
        for name in dict.fromkeys(names):
            objective = "diffusion" if name == "diffusion" else "autoregressive"
            folder = args.runs / f"chars{size // 1000}k_{name.replace(', ', '_').replace(' ', '')}"
            runs[name] = run(folder, CHAR, [f"data.max_tokens={size}", f"train.objective={objective}",
                                            *common, *DATA_RUNS[name]], args.minutes, args.retrain)
        if regularised is None:
            ar = [name for name in runs if name != "diffusion"]
            regularised = min(ar, key=lambda name: runs[name]["best"]["value"])
            result["regularisation"] = regularised
        result["sizes"][str(size)] = runs
        write(args, "data", result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=["addition", "sudoku", "reversal", "data"])
    parser.add_argument("--minutes", type=float, default=None, help="each run's train.max_minutes")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "diffusion_wins")
    parser.add_argument("--out", type=Path, default=OUT, help="where the <experiment>.json files go")
    parser.add_argument("--retrain", action="store_true", help="train again even where latest.pt exists")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 25_000, 100_000, 1_000_000])
    parser.add_argument("--candidates", type=int, default=50, help="reversal: names ranked per fact")
    parser.add_argument("--samples", type=int, default=16, help="reversal: noise draws per diffusion score")
    args = parser.parse_args(argv)
    defaults = {"addition": 10, "sudoku": 8, "reversal": 10, "data": 4}
    args.minutes = args.minutes or defaults[args.experiment]
    if args.experiment == "addition":
        ordered(args, "addition", {}, 16)
    elif args.experiment == "sudoku":
        ordered(args, "sudoku", {"size": 6, "blanks": 16}, 88)
    elif args.experiment == "reversal":
        reversal(args)
    else:
        data_constrained(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

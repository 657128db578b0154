r"""Benchmark reporting: ratios between rows, the targets, the table, merged runs, the JSON and the commit.

Nothing here times anything: it reads the rows that `bench_timing` measured (a list of dicts
per section of {meta, training, sampling, targets, notes}) and says what they mean.

- **Ratios.** `vs_base`: a lever row's tokens/s over the base row of its objective; `vs_ar`:
  a diffusion row over the AR row with the same settings (training) or over the AR model with
  its key/value cache at the same batch size and length (sampling); `vs_ref`: the base
  diffusion row over the plain GPT-2 reference of the same shape timed in the same run.
- **Targets** (CUDA only), printed as met / missed lines, never asserted: see `check_targets`.
- **The commit** is the HEAD of the git checkout that holds the `dllm_lite` package
  directory, and only if that checkout tracks the package: a plain copy of the package inside
  some other repository (a device's work folder, say) gets no commit and a reason instead.
"""

import json
import os
import subprocess
from pathlib import Path

__all__ = ["add_ratios", "check_targets", "format_table", "row_line", "merge_results", "write_json",
           "package_commit"]

PACKAGE_DIR = Path(__file__).resolve().parent
TINY_STEPS, TINY_SECONDS = 3000, 60.0  # tiny.yaml's run and its training-time goal on an H100/H200


def add_ratios(results) -> None:
    """Fill in vs_base, vs_ar and vs_ref on every row of `results`, in place (see the module docstring)."""
    train = {r["name"]: r for r in results["training"] if r["error"] is None}
    reference = train.get("reference")
    for r in results["training"]:
        if r["error"] is not None:
            continue
        base = train.get(r["objective"]) if r["lever"] not in (None, "medium") else None
        r["vs_base"] = r["tokens_per_s"] / base["tokens_per_s"] if base else None
        twin = train.get(r["name"].replace("diffusion", "autoregressive", 1))
        usable = r["objective"] == "diffusion" and twin is not None and twin["objective"] == "autoregressive"
        r["vs_ar"] = r["tokens_per_s"] / twin["tokens_per_s"] if usable else None
        like = (reference is not None and _eager_base(r) and r["batch_size"] == reference["batch_size"]
                and r["dtype"] == reference["dtype"])
        r["vs_ref"] = r["tokens_per_s"] / reference["tokens_per_s"] if like else None
    cached = {(r["batch_size"], r["length"]): r for r in results["sampling"] if r["objective"] == "autoregressive"
              and r["use_cache"] and not r.get("compiled") and r["error"] is None}
    for r in results["sampling"]:
        ref = cached.get((r["batch_size"], r["length"]))
        usable = ref is not None and r is not ref and r["error"] is None
        r["vs_ar"] = r["tokens_per_s"] / ref["tokens_per_s"] if usable else None


def _eager_base(row):
    """The config's own diffusion step, eager: the base row, or its eager twin when the base compiles."""
    return row["objective"] == "diffusion" and row["lever"] in (None, "compile") and not row["compile"]


def _fastest(rows):
    return max((r for r in rows if r["error"] is None), key=lambda r: r["tokens_per_s"], default={})


def check_targets(results) -> list[dict]:
    """The targets as [{name, value, shown, goal, passed, row}]; checked on CUDA only (else []).

    Training (the config's shape): diffusion MFU >= 45% and the tokens/s that means, the
    fastest base diffusion row (eager or compiled); diffusion / AR >= 1.05x; eager diffusion >=
    0.95x the plain GPT-2 reference of the same shape; peak memory <= 22 GiB (small and medium);
    with --config tiny.yaml, its 3,000 steps <= 60 s of training time. Sampling (batch 1, the
    run's length): AR with its cache >= 300 tokens/s eager and >= 1,000 compiled; block
    diffusion's cost per network call within 2x of AR's; at batch 16, the largest sampling
    working set (peak over what was allocated before the row) <= 2x the forward activations of
    the same net at that batch; the older sampling lines (256 steps vs AR, cached ancestral).
    A row stopped by its time limit gives no value, and its target reads "no result".
    """
    if results["meta"]["device_type"] != "cuda":
        return []
    targets = []

    def add(name, value, shown, goal, passed, row):
        targets.append(dict(name=name, value=value, shown=shown if value is not None else "no result",
                            goal=goal, passed=bool(value is not None and passed), row=row))

    training = results["training"]
    eligible = [r for r in training if r["objective"] == "diffusion" and r["lever"] in (None, "compile")]
    if eligible:  # the fastest of the config's default settings, eager or compiled
        best = _fastest(eligible)
        mfu, tps, gib, ratio = (best.get(k) for k in ("mfu", "tokens_per_s", "peak_gib", "vs_ar"))
        row = best.get("name")
        add("diffusion training MFU", mfu, f"{100 * (mfu or 0):.1f}%", ">= 45%", (mfu or 0) >= 0.45, row)
        goal = 0.45 * (results["meta"]["peak_tflops"] or 0) * 1e12 / best["flops_per_token"] if best else 0.0
        add("diffusion training tokens/s", tps, f"{tps or 0:,.0f}", f">= {goal:,.0f} (45% MFU)", (tps or 0) >= goal > 0,
            row)
        add("diffusion / AR training tokens/s", ratio, f"{ratio or 0:.2f}x", ">= 1.05x", (ratio or 0) >= 1.05, row)
        config = results["meta"].get("options", {}).get("config_name") or "small"
        add(f"{config} config training peak memory", gib, f"{gib or 0:.2f} GiB", "<= 22 GiB", (gib or 99) <= 22, row)
    eager = [r for r in training if _eager_base(r)]
    if eager and any(r["objective"] == "reference" for r in training):
        ratio = eager[0].get("vs_ref") if eager[0]["error"] is None else None
        add("eager diffusion step vs the plain GPT-2 reference", ratio, f"{ratio or 0:.2f}x", ">= 0.95x",
            (ratio or 0) >= 0.95, eager[0]["name"])
    for r in training:
        if r["lever"] == "medium":
            gib = r.get("peak_gib")
            add("medium config training peak memory", gib, f"{gib or 0:.2f} GiB", "<= 22 GiB", (gib or 99) <= 22, r["name"])
    if results["meta"].get("options", {}).get("config_name") == "tiny" and eligible:
        best = _fastest(eligible)
        seconds = TINY_STEPS * best["step_ms"] / 1000 if best else None
        add(f"tiny.yaml: {TINY_STEPS:,} steps of training time (steps only)", seconds, f"{seconds or 0:.1f} s",
            f"<= {TINY_SECONDS:g} s", (seconds or 1e9) <= TINY_SECONDS, best.get("name"))
    _sampling_targets(results["sampling"], add)
    return targets


def _sampling_targets(rows, add):
    """The sampling targets (see check_targets), each through add(name, value, shown, goal, passed, row)."""
    ar = [r for r in rows if r["objective"] == "autoregressive" and r["use_cache"] and r["batch_size"] == 1]
    length = max((r["length"] for r in ar), default=None)
    for compiled, goal in ((False, 300), (True, 1000)):
        found = [r for r in ar if r["length"] == length and bool(r.get("compiled")) == compiled]
        if found:
            tps = found[0]["tokens_per_s"]
            add(f"AR decode with its cache, {'compiled' if compiled else 'eager'}, batch 1, L={length}", tps,
                f"{tps or 0:,.0f} tokens/s", f">= {goal:,} tokens/s", (tps or 0) >= goal, found[0]["name"])
    ar_eager = next((r for r in ar if r["length"] == length and not r.get("compiled")), None)
    blocks = [r for r in rows if r["objective"] == "block_diffusion" and r["use_cache"] and r["batch_size"] == 1
              and not r.get("compiled") and r["length"] == length]
    if blocks and ar_eager is not None:
        block = max(blocks, key=lambda r: r["steps"])  # the most calls: the steadiest per-call figure
        usable = block["error"] is None and ar_eager["error"] is None
        ratio = block["ms_per_call"] / ar_eager["ms_per_call"] if usable else None
        add(f"block diffusion K={block['block_size']} with its cache: ms per network call over AR's", ratio,
            f"{ratio or 0:.2f}x ({block['ms_per_call'] or 0:.2f} vs {ar_eager['ms_per_call'] or 0:.2f} ms)", "<= 2x",
            (ratio or 99) <= 2, block["name"])
    wide = [r for r in rows if r["batch_size"] == 16 and r["objective"] != "autoregressive" and r.get("forward_gib")]
    if wide:
        worst = max(wide, key=lambda r: r.get("extra_gib") or 0)
        ratio = worst["extra_gib"] / worst["forward_gib"] if worst.get("extra_gib") is not None else None
        add(f"sampling working set at batch 16, L={worst['length']}, over the forward activations", ratio,
            f"{ratio or 0:.2f}x ({worst.get('extra_gib') or 0:.2f} vs {worst['forward_gib']:.2f} GiB)", "<= 2x",
            (ratio or 99) <= 2, worst["name"])
    for r in rows:
        if r["objective"] == "diffusion" and r["steps"] == 256 and r["batch_size"] == 1:
            ratio = r.get("vs_ar")
            add(f"{r['name']} sampling vs AR kv-cache, batch 1, L={r['length']}", ratio, f"{ratio or 0:.2f}x", "> 1x",
                (ratio or 0) > 1, r["name"])
        if r["strategy"] == "ancestral" and r["steps"] == 1024 and r["batch_size"] == 1 and r["block_size"] is None:
            fewer = r["steps"] / r["network_calls"] if r["error"] is None and r["network_calls"] else None
            add(f"cached ancestral: steps / network calls at 1024 steps, L={r['length']}", fewer, f"{fewer or 0:.2f}x",
                ">= 2.5x", (fewer or 0) >= 2.5, r["name"])


def _cell(value, spec):
    return "-" if value is None else format(value, spec)


COLUMNS = (("kind", "<6"), ("variant", "<32"), ("B", ">3"), ("tokens/s", ">11"), ("ms", ">8"), ("calls", ">6"),
           ("GiB", ">6"), ("MFU", ">6"), ("vs base", ">8"), ("vs AR", ">7"), ("vs ref", ">7"))


def format_table(results) -> str:
    """One compact table: training rows, then sampling rows (ms: per optimiser step / per network call).

    A sampling row stopped by its time limit shows what it measured (ms per call, calls so
    far, memory) and "stopped" in place of tokens/s; a failed row shows its error.
    """
    lines = [" ".join(format(title, spec) for title, spec in COLUMNS)]
    lines.append("-" * len(lines[0]))
    for r in results["training"] + results["sampling"]:
        head = [format(r["kind"], "<6"), format(r["name"][:32], "<32"), format(r["batch_size"], ">3")]
        stopped = r.get("stopped_at_limit")
        if r["error"] is not None and not stopped:
            lines.append(" ".join(head + [f"error: {r['error']}"[:60]]))
            continue
        train = r["kind"] == "train"
        mfu = None if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"
        ratios = [None if r.get(k) is None else f"{r[k]:.2f}x" for k in ("vs_base", "vs_ar", "vs_ref")]
        cells = ["stopped" if stopped else _cell(r["tokens_per_s"], ",.0f"),
                 _cell(r["step_ms"] if train else r["ms_per_call"], ".1f"),
                 _cell(None if train else r["network_calls"], "d"), _cell(r["peak_gib"], ".2f"), _cell(mfu, "s"),
                 *(_cell(ratio, "s") for ratio in ratios)]
        lines.append(" ".join(head + [format(c, spec) for c, (_, spec) in zip(cells, COLUMNS[3:])]))
    return "\n".join(lines)


def row_line(row) -> str:
    """A one-line progress report of a finished row."""
    where = f"{row['kind']} {row['name']}" + ("" if "B=" in row["name"] else f" B={row['batch_size']}")
    gib = "" if row.get("peak_gib") is None else f", {row['peak_gib']:.2f} GiB"
    if row.get("stopped_at_limit"):
        per_call = "" if row["ms_per_call"] is None else f", {row['ms_per_call']:.2f} ms/call"
        return (f"{where}: STOPPED at its {row['limit_s']:g} s limit: {row['network_calls']} network calls in "
                f"{row['seconds']:.2f} s{per_call}{gib}")
    if row["error"] is not None:
        return f"{where}: error: {row['error']}"
    if row["kind"] == "train":
        mfu = "" if row["mfu"] is None else f", MFU {100 * row['mfu']:.1f}%"
        return f"{where}: {row['tokens_per_s']:,.0f} tokens/s, {row['step_ms']:.1f} ms/step{gib}{mfu}"
    compiled = "" if row.get("graphs_compiled") is None else \
        f", compiled {row['graphs_compiled']} graphs and skipped CUDA graphs {row['cudagraph_skips']} times while timed"
    return (f"{where}: {row['tokens_per_s']:,.0f} tokens/s, {row['network_calls']} network calls, "
            f"{row['ms_per_call']:.2f} ms/call, {row['seconds']:.2f} s{gib}{compiled}")


def merge_results(parts: list[dict]) -> dict:
    """One result from several runs (the sections of benchmarks/gpu_bench.sh): rows joined, targets checked again."""
    if not parts:
        raise ValueError("nothing to merge: pass one or more JSON files written by `python -m dllm_lite.bench --json`")
    merged = {"meta": dict(parts[0]["meta"], merged_from=[p["meta"] for p in parts]), "training": [], "sampling": [],
              "notes": []}
    for part in parts:
        add_ratios(part)  # again: a run stopped by a time limit wrote its rows before the ratios
        merged["training"] += part["training"]
        merged["sampling"] += part["sampling"]
        merged["notes"] += [n for n in part["notes"] if n not in merged["notes"]]
    add_ratios(merged)  # across parts too: the reference row may come from another section
    merged["targets"] = check_targets(merged)
    return merged


def write_json(results, path) -> None:
    """Write atomically (temporary file, then rename), so a run stopped mid-way leaves the rows it finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _git(folder, *args):
    return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)


def package_commit(package_dir=None) -> tuple:
    """(commit, None): the HEAD of the git checkout that tracks the package; or (None, why not).

    package_dir defaults to this package's own folder. Git is asked from there, never from the
    working directory, and the answer counts only if that checkout tracks the package's files:
    a plain copy of the package inside another repository gets (None, a reason), not that
    repository's HEAD.
    """
    folder = Path(package_dir or PACKAGE_DIR).resolve()
    try:
        top = _git(folder, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            return None, f"{folder} is not inside a git checkout"
        tracked = _git(folder, "ls-files", "--error-unmatch", "--", "__init__.py")
        if tracked.returncode != 0:
            return None, (f"{folder} is not tracked by the enclosing git repository {top.stdout.strip()} "
                          f"(a copy of the package?)")
        head = _git(folder, "rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"git could not be run ({type(error).__name__})"
    return (head.stdout.strip(), None) if head.returncode == 0 else (None, "the package's checkout has no commit yet")

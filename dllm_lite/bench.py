r"""The benchmark command: training throughput, MFU and memory, and sampling speed, diffusion next to AR.

    python -m dllm_lite.bench --tiny --device cpu          # a CPU-sized preset, seconds
    python -m dllm_lite.bench --config configs/small.yaml   # the small shape (the default)
    python -m dllm_lite.bench --merge out/*.json            # one table from earlier runs
    python -m dllm_lite.bench --tiny --profile              # torch.profiler tables, nothing timed

The work is split by concern: `bench_suite` (the options, which rows a run times, the loop),
`bench_timing` (measuring one training configuration or one sampling call),
`bench_reference` (the plain GPT-2 the diffusion step is compared with), `bench_report`
(ratios, targets, the table, merging, the JSON and its commit) and `bench_profile` (the
profiler tables). This module is the command line, and keeps the names earlier code imports
from `dllm_lite.bench`. See benchmarks/README.md for what each number means.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from .bench_profile import profile_tables
from .bench_report import check_targets, format_table, merge_results, write_json
from .bench_suite import LEVERS, TINY, BenchOptions, run_bench
from .bench_timing import TrainSpec, peak_tflops_of, time_sampling, time_training
from .config import load_config
from .sample import STRATEGIES

__all__ = ["BenchOptions", "TrainSpec", "run_bench", "time_training", "time_sampling", "check_targets",
           "format_table", "merge_results", "peak_tflops_of", "TINY", "main"]


def _int_list(text):
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 16,32, got {text!r}") from None


def _name_list(text):
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dllm_lite.bench", description=__doc__.split("\n\n")[0],
                                epilog="Defaults: the small config's shape (12 layers, 12 heads, 768 wide, seq 1024, "
                                       "batch 16), 10 timed steps after 3, sampling length 1024 at 64/256/1024 steps, "
                                       "batch 1 and 16. See benchmarks/README.md.")
    p.add_argument("--tiny", action="store_true", help="a CPU-sized preset that runs in seconds")
    p.add_argument("--config", help="read the model shape, train.batch_size and train.compile from this YAML config")
    for flag in ("n-layer", "n-head", "n-embd", "seq-len", "batch-size", "vocab-size", "steps", "warmup"):
        p.add_argument(f"--{flag}", type=int, help="overrides --tiny and --config")
    p.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the base rows")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), help="auto: bf16 autocast on CUDA, else float32")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--compare", type=_name_list, help=f"levers timed next to the base: {','.join(LEVERS)}")
    p.add_argument("--batch-sizes", type=_int_list, help="extra training batch sizes, e.g. 16,32")
    p.add_argument("--objectives", type=_name_list, help="training objectives: diffusion,autoregressive (default both)")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction, default=None,
                   help="time the plain GPT-2 of the same shape next to the base rows (default: on)")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-sampling", action="store_true")
    p.add_argument("--sample-length", type=int)
    p.add_argument("--sample-steps", type=_int_list, help="e.g. 64,256,1024")
    p.add_argument("--sample-batch-sizes", type=_int_list, help="e.g. 1,16")
    p.add_argument("--strategies", type=_name_list, help=f"from {','.join(STRATEGIES)}")
    p.add_argument("--threshold", type=float, help="confidence threshold of the threshold strategy (0.9)")
    p.add_argument("--sample-block-size", type=int, help="adds a semi-autoregressive confidence variant")
    p.add_argument("--block-caches", type=_name_list, help="prefix,dual: that variant again with Fast-dLLM's cache")
    p.add_argument("--block-size", type=int, help="adds block diffusion rows with this K (training and cached sampling)")
    p.add_argument("--ar-nocache-length", type=int, help="length of the AR-without-cache comparison (0: skip)")
    p.add_argument("--compile-sampling", action="store_true", default=None)
    p.add_argument("--compile-decode", type=_int_list, help="batch sizes (e.g. 1) at which AR and block diffusion "
                                                            "also decode compiled: generate(compile=True)")
    p.add_argument("--sample-limit-s", type=float, help="stop every sampling row (AR included) after this many seconds "
                                                        "(default 30); a stopped row shows what it measured")
    p.add_argument("--medium-memory", action="store_true", default=None, help="peak memory of a few medium steps")
    p.add_argument("--medium-config", help="the medium shape, batch size and checkpointing from this config")
    p.add_argument("--peak-tflops", type=float, help="peak TFLOP/s for MFU (default: 989 on H100/H200, else none)")
    p.add_argument("--json", help="where to write the results (default: bench.json in --out or the current folder)")
    p.add_argument("--out", help="folder for bench.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="print one table from earlier runs' JSON files")
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables of one diffusion training step "
                                                          "and one AR decode step at this shape; time nothing else")
    p.add_argument("--profile-rows", type=int, default=15, help="rows of each profiler table (15)")
    return p


def _options(args) -> dict:
    """Preset, then config file, then explicit flags, each overriding the one before."""
    options = {k: v for k, v in TINY.items()} if args.tiny else {}
    if args.config:
        cfg = load_config(args.config)
        options.update({k: getattr(cfg.model, k) for k in ("n_layer", "n_head", "n_embd", "seq_len",
                                                         "activation_checkpointing")},
                       batch_size=cfg.train.batch_size, compile=cfg.train.compile, config_name=cfg.name)
    if args.medium_config:
        m = load_config(args.medium_config)
        options["medium"] = dict({k: getattr(m.model, k) for k in ("n_layer", "n_head", "n_embd", "seq_len",
                                                                   "activation_checkpointing")},
                                 batch_size=m.train.batch_size)
    for key in ("n_layer", "n_head", "n_embd", "seq_len", "batch_size", "vocab_size", "steps", "warmup",
                "activation_checkpointing", "compile", "dtype", "device", "compare", "batch_sizes", "sample_length",
                "sample_steps", "sample_batch_sizes", "strategies", "threshold", "sample_block_size", "block_caches", "block_size",
                "ar_nocache_length", "compile_sampling", "compile_decode", "sample_limit_s", "medium_memory", "peak_tflops", "reference",
                "objectives"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    options.update(training=not args.skip_training, sampling=not args.skip_sampling, progress=not args.no_progress)
    return options


def _json_path(args) -> str:
    return args.json or str(Path(args.out or ".") / "bench.json")


def _profile(args, parser) -> int:
    """--profile: print the two profiler tables at the shape the other flags give; return 0."""
    o = BenchOptions(**{k: v for k, v in _options(args).items() if k not in ("training", "sampling", "progress")})
    device = torch.device("cuda" if o.device == "auto" and torch.cuda.is_available() else
                          "cpu" if o.device == "auto" else o.device)
    dtype = o.dtype if o.dtype != "auto" else "bfloat16" if device.type == "cuda" else "float32"
    if args.profile_rows < 1:
        parser.error(f"--profile-rows must be at least 1, got {args.profile_rows}")
    tables = profile_tables(n_layer=o.n_layer, n_head=o.n_head, n_embd=o.n_embd, seq_len=o.seq_len,
                            batch_size=o.batch_size, vocab_size=o.vocab_size, device=device, dtype=dtype,
                            rows=args.profile_rows)
    order = "self device (CUDA) time" if device.type == "cuda" else "self CPU time"
    shape = f"{o.n_layer} layers, {o.n_embd} wide, vocab {o.vocab_size}, {device}, {dtype}"
    print(f"== one diffusion training step, batch {o.batch_size} x {o.seq_len} ({shape}), top ops by {order}")
    print(tables["train_step"])
    print(f"== one AR decode step: 1 token against a cache of {tables['decode_cache_length']}, batch 1 "
          f"({shape}), top ops by {order}")
    print(tables["decode_step"], flush=True)
    return 0


def main(argv=None) -> int:
    """The command line: run (or --merge, or --profile) the benchmark, print notes, targets and, last, the table."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.profile:
        try:
            return _profile(args, parser)
        except ValueError as error:
            parser.error(str(error))
    if args.merge:
        missing = [path for path in args.merge if not Path(path).is_file()]
        for path in missing:
            print(f"skipping {path}: no such file (did that section fail or time out?)")
        try:
            results = merge_results([json.loads(Path(path).read_text(encoding="utf-8"))
                                     for path in args.merge if path not in missing])
        except ValueError as error:
            parser.error(str(error))
        write_json(results, _json_path(args))
    else:
        try:
            results = run_bench(**_options(args), json_path=_json_path(args))
        except ValueError as error:
            parser.error(str(error))
    meta = results["meta"]
    for note in results["notes"]:
        print(f"note: {note}")
    if meta["device_type"] != "cuda":
        print("targets: checked on CUDA only")
    for t in results["targets"]:
        print(f"{'met' if t['passed'] else 'missed':<6}  {t['name']}: {t['shown']} (goal {t['goal']}; row: {t['row']})")
    commit = (meta.get("commit") or "")[:10] or f"none ({meta.get('commit_note') or 'not recorded'})"
    print(f"\n{meta['device_name']}, {meta['dtype']}, torch {meta['torch']}, commit {commit}, written to {_json_path(args)}")
    print(format_table(results), flush=True)
    rows = results["training"] + results["sampling"]
    return 1 if rows and all(r["error"] is not None for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

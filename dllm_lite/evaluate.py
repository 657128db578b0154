r"""Score a trained checkpoint, on the command line: its likelihood on text, or its answers to prompts.

    python -m dllm_lite.evaluate --checkpoint runs/shakespeare_char/latest.pt                # validation split
    python -m dllm_lite.evaluate --checkpoint runs/shakespeare_char/latest.pt --text my.txt
    python -m dllm_lite.evaluate --checkpoint runs/sft_char/latest.pt --pairs data/addition/test.jsonl

**Likelihood** (`--text FILE`, or without it the validation split of the checkpoint's own
config). The text is tokenized with the checkpoint's tokenizer, followed by end-of-text as in
training, and cut into rows of the model's length (the tail that fills no row is dropped).
A diffusion model reports its NLL bound (`loss.nll_bound`, MDLM's NELBO; block diffusion:
the block NELBO) averaged over `--samples` noise draws per row, an AR model its exact
next-token loss; both in nats per token with a standard error, and the last line reads

    nll_bound=1.8812 stderr=0.0071 samples=6960 rows=435 tokens=55680

For a checkpoint trained on pairs, the validation split holds pairs and the number is the
bound (AR: the loss) of the answers given their prompts, per answer token.

**Answers** (`--pairs FILE.jsonl`, records {"prompt": ..., "response": ...}). Every prompt is
answered (`sample.answer`: greedy, one token per step unless told otherwise), and an answer
counts when it equals the response exactly. The last line reads `exact_match=0.873 n=500`;
`--out results.json` keeps every prompt, expected response and answer. A pair whose prompt,
response and end-of-text do not fit in the model's rows is skipped and counted, as training
skips it (the model could not produce that answer): `exact_match=0.873 n=497 skipped=3`,
after a line naming the `seq_len` that would fit them all.

`--out` is checked before any work (its folder must exist and take a new file), the last line
is printed before the file is written, and the file is written whole or not at all (a
temporary file in the same folder, then a rename), so an earlier results file is never left
half overwritten. `--offset` shifts text rows; pairs are scored one pair per row, so it is
refused for them.

**Samples** (`--samples N --judge AR_CHECKPOINT`, with the sampling options `--steps`,
`--strategy`, `--threshold`, `--temperature` (default 1 here), `--block-size`,
`--block-cache`, `--cache-refresh`, `--compile`, `--batch-size`, `--seed`). N unconditional
sequences of the model's length are generated and scored by `quality.judge_report`: their
exact NLL under the judge, a separate autoregressive model, in nats per character, with their
entropy, distinct n-grams, memorisation of the training split, and the sampler's cost. The last line reads
`gen_nll=2.0412 entropy=3.0115 distinct2=0.2510 calls_per_token=0.2500 tokens_per_s=812.3000`.

Both are precise rather than fast: every row of the file, not a sample of them.
"""

import argparse
import json
import math
import os
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import torch

from .data import DataError, load_tokens
from .data_checks import check_utf8
from .load import load_checkpoint
from .loss import ar_loss, ar_sft_loss, nll_bound
from .pairs import load_pairs, pack_pairs, read_pairs
from .quality import judge_report
from .sample import STRATEGIES, answer
from .devices import resolve_device

__all__ = ["text_rows", "rows_of", "likelihood", "pair_likelihood", "text_nats", "exact_match", "check_out_path",
           "write_results", "fitting_pairs", "check_offset", "main"]


def text_rows(text: str, tokenizer, seq_len: int, offset: int = 0) -> torch.Tensor:
    """The text's token ids, end-of-text appended, cut into rows (n, seq_len) from token `offset` on."""
    try:
        ids = tokenizer.encode(text) + ([] if tokenizer.eot_id is None else [tokenizer.eot_id])
    except ValueError as error:
        raise ValueError(f"{error}; the checkpoint's tokenizer cannot encode this text") from None
    return rows_of(ids, seq_len, offset)


def rows_of(ids, seq_len: int, offset: int = 0) -> torch.Tensor:
    """Token ids (a list or array) cut into rows (n, seq_len) from position `offset` on; the tail is dropped."""
    ids = torch.as_tensor(ids[offset:], dtype=torch.long)
    n = len(ids) // seq_len
    if n == 0:
        raise ValueError(f"the text is {len(ids)} tokens, less than one row of the model's {seq_len}; use more text")
    return ids[: n * seq_len].view(n, seq_len)


@torch.no_grad()
def likelihood(net, rows, mask_id, schedule="linear", samples=16, batch_size=64, seed=0) -> dict:
    """{"nll_bound" or "loss", "stderr", "samples", "rows", "tokens"} over rows (n, L), in nats per token.

    Diffusion (and block diffusion): `nll_bound` with `samples` noise draws per row. AR: the
    exact next-token loss of each row; the standard error is over rows.
    """
    device = next(net.parameters()).device
    rows = rows.to(device)
    if net.cfg.causal:
        per_row = torch.cat([ar_loss(net, rows[i : i + batch_size], mask_id, per_row=True)
                             for i in range(0, len(rows), batch_size)])  # (n,)
        stderr = per_row.std().item() / math.sqrt(len(per_row)) if len(per_row) > 1 else float("inf")
        return {"loss": per_row.mean().item(), "stderr": stderr, "samples": len(rows), "rows": len(rows),
                "tokens": rows.numel()}
    generator = torch.Generator(device=device).manual_seed(seed)
    mean, stderr = nll_bound(net, rows, schedule, mask_id, n_samples=samples, generator=generator,
                             batch_size=batch_size, return_stderr=True, block_size=net.cfg.block_size)
    return {"nll_bound": mean, "stderr": stderr, "samples": samples * len(rows), "rows": len(rows),
            "tokens": rows.numel()}


@torch.no_grad()
def pair_likelihood(net, pairs, mask_id, schedule="linear", samples=16, batch_size=64, seed=0) -> dict:
    """The bound (AR: the loss) of the answers of packed `pairs` given their prompts, per answer token."""
    device = next(net.parameters()).device
    ids, prompt_len, answer_len = pairs.ids.to(device), pairs.prompt_len.to(device), pairs.answer_len.to(device)
    tokens = int(answer_len.sum())
    if net.cfg.causal:
        total = sum(ar_sft_loss(net, ids[i : i + batch_size], prompt_len[i : i + batch_size],
                                answer_len[i : i + batch_size], mask_id).item() * int(answer_len[i : i + batch_size].sum())
                    for i in range(0, len(ids), batch_size))
        return {"loss": total / tokens, "rows": len(ids), "tokens": tokens}
    generator = torch.Generator(device=device).manual_seed(seed)
    mean, stderr = nll_bound(net, ids, schedule, mask_id, n_samples=samples, generator=generator,
                             batch_size=batch_size, return_stderr=True, prompt_len=prompt_len, answer_len=answer_len)
    return {"nll_bound": mean, "stderr": stderr, "samples": samples * len(ids), "rows": len(ids), "tokens": tokens}


@torch.no_grad()
def text_nats(net, tokenizer, texts, samples=16, seed=0) -> list[float]:
    """-log p(text, eot) in nats for each text, as one row of a model trained on pairs with an empty prompt.

    Each text is followed by end-of-text and padded with end-of-text to the model's length, the
    row `pairs.pack_pairs` makes of ("", text). AR: the exact negative log-likelihood of the
    text and its eot (the padding is never scored). Diffusion: its bound (`loss.nll_bound`,
    `samples` noise draws; the padding is part of the region it bounds), with the same noise
    (`seed`) for every text, so that two texts of one length differ only through the model:
    that is what ranking candidate texts by likelihood needs.
    """
    texts = list(texts)
    packed = pack_pairs(tokenizer, [""] * len(texts), texts, net.cfg.seq_len)
    if packed.skipped:
        lengths = [len(ids) + 1 for ids in tokenizer.encode_batch(texts)]  # with the eot
        index = next(i for i, n in enumerate(lengths) if n > net.cfg.seq_len)
        raise ValueError(f"text {index} is {lengths[index]} tokens with its eot and the model's rows hold {net.cfg.seq_len}; "
                         f"shorten it")
    device = next(net.parameters()).device
    ids, prompt_len, answer_len = packed.ids.to(device), packed.prompt_len.to(device), packed.answer_len.to(device)
    scores = []
    for i in range(len(texts)):
        row = ids[i : i + 1], prompt_len[i : i + 1], answer_len[i : i + 1]  # (1, L), (1,), (1,)
        if net.cfg.causal:
            per_token = ar_sft_loss(net, *row, tokenizer.mask_id).item()
        else:
            generator = torch.Generator(device=device).manual_seed(seed)
            per_token = nll_bound(net, row[0], "linear", tokenizer.mask_id, n_samples=samples, generator=generator,
                                  prompt_len=row[1], answer_len=row[2])
        scores.append(per_token * int(answer_len[i]))
    return scores


def exact_match(net, tokenizer, prompts, responses, **options) -> tuple[float, list[dict]]:
    """(share of answers equal to their response, one record per pair); options go to `sample.answer`."""
    answers = answer(net, tokenizer, prompts, **options)
    records = [{"prompt": p, "expected": r, "answer": a, "correct": a == r} for p, r, a in zip(prompts, responses, answers)]
    return sum(r["correct"] for r in records) / len(records), records


def _check_prompts(path, prompts, lines, tokenizer, seq_len: int) -> None:
    """Every prompt must encode with the checkpoint's tokenizer and leave room for an answer; else name the line."""
    for prompt, line in zip(prompts, lines):
        try:
            n = len(tokenizer.encode(prompt))
        except ValueError as error:
            raise ValueError(f"{path}: line {line}: {error}; the checkpoint's tokenizer cannot encode this prompt") from None
        if n >= seq_len:
            raise ValueError(f"{path}: line {line}: the prompt is {n} tokens and the model's rows hold {seq_len}, "
                             f"leaving no room for an answer; shorten it")


def check_out_path(out: str) -> Path:
    """The --out path, checked before any work: not empty, not a folder, in an existing folder that takes a
    new file (a file is created and removed there: permission bits say nothing for root or /proc)."""
    if not out:
        raise ValueError("--out is empty; name a JSON file, e.g. --out results.json")
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; name a file in it, e.g. --out {path / 'results.json'}")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"--out {path}: its folder {folder} {what}; create the folder or write elsewhere")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"--out {path}: cannot write in {folder} ({error.strerror or error}); "
                         f"write elsewhere") from None
    return path


def write_results(path: Path, result: dict) -> None:
    """Write `result` as JSON to `path` whole or not at all: a temporary file beside it, then a rename.

    A full disk or a kill during the write leaves any earlier file at `path` as it was.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=1, ensure_ascii=False)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fitting_pairs(tokenizer, prompts, responses, seq_len: int, log=print) -> tuple[list[str], list[str], int]:
    """(prompts, responses, skipped): the pairs whose prompt + response + end-of-text fit in `seq_len`.

    The rest are skipped and counted, as training skips them (`pairs.pack_pairs`): no answer that
    long fits in the model's rows, so scoring it would count the row's length, not the model. A
    skip is said in one line by `log`, naming the seq_len that would fit every pair.
    """
    kept_prompts, kept_responses, longest = [], [], 0
    for prompt, response, p, r in zip(prompts, responses, tokenizer.encode_batch(prompts),
                                      tokenizer.encode_batch(responses)):
        used = len(p) + len(r) + 1
        longest = max(longest, used)
        if used <= seq_len:
            kept_prompts.append(prompt)
            kept_responses.append(response)
    skipped = len(prompts) - len(kept_prompts)
    if not kept_prompts:
        raise ValueError(f"no pair fits in the model's seq_len={seq_len} (prompt + response + end-of-text, the "
                         f"longest {longest} tokens); a model with seq_len={longest} would fit them")
    if skipped:
        log(f"skipped {skipped} of {len(prompts)} pairs longer than the model's seq_len={seq_len} (prompt + "
            f"response + end-of-text, the longest {longest}); a model with seq_len={longest} would fit them all")
    return kept_prompts, kept_responses, skipped


def check_offset(offset: int, pairs: bool) -> None:
    """--offset shifts text rows; a pairs file or a checkpoint trained on pairs is scored one pair per row."""
    if offset < 0:
        raise ValueError(f"--offset must be at least 0, got {offset}")
    if offset and pairs:
        raise ValueError(f"--offset {offset} shifts text rows, and pairs are scored one pair per row; drop --offset "
                         f"(or score text with --text)")


def _line(result: dict) -> str:
    """The last line: key=value pairs, the number first."""
    key = "nll_bound" if "nll_bound" in result else "loss"
    parts = [f"{key}={result[key]:.4f}"] + [f"{k}={result[k]:.4f}" if isinstance(result[k], float) else f"{k}={result[k]}"
                                            for k in ("stderr", "samples", "rows", "tokens") if k in result]
    return " ".join(parts)


def main(argv=None) -> int:
    """Command line: python -m dllm_lite.evaluate --checkpoint FILE [--text FILE | --pairs FILE]; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m dllm_lite.evaluate", description="Score a dllm_lite checkpoint: "
                                     "the NLL bound (AR: loss) on text, or the exact match of its answers to prompts.")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file or exported folder")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--text", help="a UTF-8 text file to score (default: the checkpoint config's validation split)")
    what.add_argument("--pairs", help="a JSON-lines file of {\"prompt\", \"response\"} records to answer")
    what.add_argument("--judge", help="an autoregressive checkpoint that scores --samples generated sequences")
    parser.add_argument("--samples", type=int, default=16, help="noise draws per row for the bound; with --judge, the "
                        "sequences to generate (default 16)")
    parser.add_argument("--offset", type=int, default=0, help="start the rows this many tokens in (half a row gives "
                        "a second, almost independent, measurement)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="confidence", help="how answers are decoded")
    parser.add_argument("--steps", type=int, help="network calls per answer (default: one per masked position)")
    parser.add_argument("--temperature", type=float, help="0 is greedy, the default for answers; 1 for --judge")
    parser.add_argument("--threshold", type=float, help="confidence threshold of the 'threshold' strategy")
    parser.add_argument("--block-size", type=int, help="--judge: decode in blocks of this many positions")
    parser.add_argument("--block-cache", choices=["prefix", "dual"], help="--judge with --block-size: Fast-dLLM's "
                        "approximate key/value cache")
    parser.add_argument("--cache-refresh", type=int, help="--judge with --block-cache: recompute it every this many "
                        "calls")
    parser.add_argument("--compile", action="store_true", help="--judge: decode an AR or block diffusion checkpoint "
                        "with a static key/value cache and a compiled step (the compilation is not timed)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", help="write the per-example answers (or the numbers) to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args(argv)
    if args.temperature is None:
        args.temperature = 1.0 if args.judge else 0.0
    try:
        out = check_out_path(args.out) if args.out is not None else None
        check_offset(args.offset, pairs=bool(args.pairs))
        prompts, responses, lines = read_pairs(args.pairs) if args.pairs else (None, None, None)  # before the model
        for key in ("samples", "batch_size"):
            if getattr(args, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
        if args.steps is not None and args.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {args.steps}")
        device = resolve_device(args.device, key="--device")
        net, tokenizer, cfg, _ = load_checkpoint(args.checkpoint, device)
        check_offset(args.offset, pairs=not args.text and cfg.data.prompt_field is not None)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
        common = dict(batch_size=args.batch_size, seed=args.seed)
        with autocast:
            if args.judge:
                result, last = judge_report(net, tokenizer, cfg, args.judge, checkpoint=args.checkpoint,
                                            device=device, samples=args.samples, batch_size=args.batch_size,
                                            generator=torch.Generator(device=device).manual_seed(args.seed),
                                            steps=args.steps, strategy=args.strategy, threshold=args.threshold,
                                            temperature=args.temperature, block_size=args.block_size,
                                            block_cache=args.block_cache, cache_refresh=args.cache_refresh,
                                            compile=args.compile or None, schedule=cfg.train.schedule)
            elif args.pairs:
                _check_prompts(args.pairs, prompts, lines, tokenizer, cfg.model.seq_len)
                prompts, responses, skipped = fitting_pairs(tokenizer, prompts, responses, cfg.model.seq_len)
                generator = torch.Generator(device=device).manual_seed(args.seed)
                score, records = exact_match(net, tokenizer, prompts, responses, steps=args.steps,
                                             strategy=args.strategy, temperature=args.temperature,
                                             threshold=args.threshold, schedule=cfg.train.schedule,
                                             batch_size=args.batch_size, generator=generator, progress=True)
                result, last = {"exact_match": score, "n": len(records)}, f"exact_match={score:.3f} n={len(records)}"
                if skipped:
                    result["skipped"], last = skipped, f"{last} skipped={skipped}"
                if args.out:
                    result["examples"] = records
            elif args.text:
                path = Path(args.text)
                if not path.is_file():
                    raise ValueError(f"no text file at {path}")
                check_utf8([str(path)])  # names the file and the byte, where read_text would not
                rows = text_rows(path.read_text(encoding="utf-8"), tokenizer, cfg.model.seq_len, args.offset)
                result = likelihood(net, rows, tokenizer.mask_id, cfg.train.schedule, args.samples, **common)
                last = _line(result)
            elif cfg.data.prompt_field is not None:
                pairs = load_pairs(cfg.data, tokenizer, "validation", cfg.model.seq_len)
                result = pair_likelihood(net, pairs, tokenizer.mask_id, cfg.train.schedule, args.samples, **common)
                last = _line(result)
            else:
                tokens = load_tokens(cfg.data, tokenizer, "validation").astype("int64")
                rows = rows_of(tokens, cfg.model.seq_len, args.offset)
                result = likelihood(net, rows, tokenizer.mask_id, cfg.train.schedule, args.samples, **common)
                last = _line(result)
    except (ValueError, DataError, UnicodeDecodeError) as error:  # ConfigError, CheckpointError are ValueErrors
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(last, flush=True)  # the score first: a failed write below cannot take it away
    if out is not None:
        try:
            write_results(out, {"checkpoint": args.checkpoint, **result})
        except OSError as error:
            print(f"error: could not write {out} ({error.strerror or error}); the score above stands, and any "
                  f"earlier {out.name} is as it was", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

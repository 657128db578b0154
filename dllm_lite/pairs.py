r"""Prompt/response pairs: the rows a model learns to answer from, and how they are read.

**One pair, one row.** A pair (prompt p, response r) of token ids becomes one row of the
model's length L:

    [ p_1 ... p_P | r_1 ... r_R  eot | eot ... eot ]
      prompt        answer (R + 1)     padding to L

The prompt is what the model is given; everything after it, the *response region* of
L - P positions, is what it must produce: the answer, its end-of-text token, and end-of-text
padding. A pair that does not fit (P + R + 1 > L) is skipped and counted, never cut: a cut
response would teach the model to stop in the middle of an answer.

**Diffusion SFT** (LLaDA, Nie et al. 2025, sec. 2.3). The prompt is never masked; each
position of the response region is masked with probability $1 - \alpha(t)$, and

$$ \mathcal{L}_{SFT} = \mathbb{E}_t\, \mathbb{E}_{r_t} \Big[ \frac{w(t)}{L - P}
   \sum_{i \ge P:\ r_t^i = m} -\log p_\theta(x_0^i \mid p, r_t) \Big] $$

bounds $-\log p_\theta(r, \text{eot}, \text{padding} \mid p)$ divided by the region's length.
The padding is masked and scored like any answer token: predicting end-of-text at a position
is how the model says "the answer is over by here", so the padding teaches it where to stop.
`loss.sft_loss` computes it; `weighting="mean"` averages the masked cross-entropy instead.

**Autoregressive SFT.** The same rows read left to right after a beginning-of-sequence
token; the next-token loss is counted on the answer (the response and its eot), never on
the prompt (`loss.ar_sft_loss`). Padding after the eot is never generated, so never scored.

**Answering.** Give the model the prompt followed by L - P masks and denoise them
(`sample.answer`); the answer is what comes before the first eot.

**Where pairs come from.** JSON-lines files of {"prompt": ..., "response": ...} records
(`data.dataset: json`, `data.data_files`), or any dataset `data.load_splits` reads, its
columns named by `data.prompt_field` (one column, or a list joined with newlines, e.g. an
instruction dataset's [instruction, input]) and `data.response_field`. A dataset without a
validation split gives `data.val_fraction` of its pairs, drawn with a fixed seed.
`tasks.py` writes synthetic pair files to learn on.

**One rule for every field.** Training and `evaluate --pairs` read JSON-lines files with the
same reader (`read_pairs`): each prompt and response field must be present and a string. A
number, `true`/`false`, `null`, a list or a missing field is refused with the file, line and
field, never turned into text ("0", "True", "['a']") or into an empty answer; so are a line
that repeats a key and a file that is not UTF-8. Pairs from other sources (a hub dataset,
parquet) are held to the same rule, row by row.

References: Nie et al. 2025, "Large Language Diffusion Models" (LLaDA), sec. 2.3 and
appendix B; Ouyang et al. 2022 (instruction fine-tuning).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data as data_module
from .data import BlockLoader, DataError
from .data_checks import COMPRESSED, check_utf8
from .sources import resolve_source

__all__ = ["Pairs", "PairBatch", "pack_pairs", "read_pairs", "check_fields", "pair_texts",
           "load_pairs", "PairLoader", "prompt_text", "SPLIT_SEED"]

SPLIT_SEED = 0  # the seeded draw of validation pairs: every run agrees on it


@dataclass
class Pairs:
    """Packed pairs: ids (N, L), prompt_len (N,), answer_len (N,) (response + its eot), and what was skipped."""

    ids: torch.Tensor  # (N, L) long
    prompt_len: torch.Tensor  # (N,) long
    answer_len: torch.Tensor  # (N,) long: response tokens + 1 (the eot)
    skipped: int = 0  # pairs longer than L, left out
    longest: int = 0  # the longest pair, prompt + response + eot, in tokens (kept or not)

    def __len__(self) -> int:
        return self.ids.shape[0]


@dataclass
class PairBatch:
    """A training batch of pairs: ids (B, L), prompt_len (B,), answer_len (B,), on one device."""

    ids: torch.Tensor
    prompt_len: torch.Tensor
    answer_len: torch.Tensor


def pack_pairs(tokenizer, prompts, responses, seq_len: int) -> Pairs:
    """Tokenize and pack pairs of strings into rows of `seq_len`: prompt, response, eot, eot padding.

    Pairs whose prompt + response + eot exceed seq_len are skipped and counted (`Pairs.skipped`).
    """
    if tokenizer.eot_id is None:
        raise ValueError(f"the {tokenizer.name} tokenizer has no end-of-text token, which pairs need to mark where an "
                         f"answer stops; use a tokenizer with one (gpt2, char, byte)")
    prompts, responses = list(prompts), list(responses)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses: give one response per prompt")
    eot = tokenizer.eot_id
    rows, prompt_len, answer_len, longest = [], [], [], 0
    for p, r in zip(tokenizer.encode_batch(prompts), tokenizer.encode_batch(responses)):
        used = len(p) + len(r) + 1
        longest = max(longest, used)
        if used > seq_len:
            continue
        rows.append(p + r + [eot] * (seq_len - len(p) - len(r)))  # answer eot, then padding
        prompt_len.append(len(p))
        answer_len.append(len(r) + 1)
    ids = torch.tensor(rows, dtype=torch.long).reshape(len(rows), seq_len)  # (N, L)
    return Pairs(ids, torch.tensor(prompt_len, dtype=torch.long), torch.tensor(answer_len, dtype=torch.long),
                 skipped=len(prompts) - len(rows), longest=longest)


def prompt_text(record: dict, fields) -> str:
    """The prompt of a record: one field, or several joined with newlines (empty ones left out)."""
    if isinstance(fields, str):
        return str(record.get(fields) or "")
    return "\n".join(str(record[f]) for f in fields if record.get(f))


def check_fields(record, fields: list[str], where: str) -> None:
    """The one rule for a pair's fields: each present and a string; else ValueError naming `where` and the field."""
    missing = [f for f in fields if not isinstance(record, dict) or f not in record]
    if missing:
        raise ValueError(f"{where} has no {missing[0]!r} field; each pair needs {', '.join(map(repr, fields))}")
    bad = [f for f in fields if not isinstance(record[f], str)]
    if bad:
        value = record[bad[0]]
        kind = "null" if value is None else type(value).__name__
        raise ValueError(f"{where}: {bad[0]!r} is {kind} ({json.dumps(value)[:40]}), not a string; write it as a "
                         f"string (\"...\") or leave the pair out")


def _object_without_repeats(items: list) -> dict:
    """json.loads' object_pairs_hook: a key written twice is refused (json would keep the last one silently)."""
    keys = [key for key, _ in items]
    repeated = next((key for key in keys if keys.count(key) > 1), None)
    if repeated is not None:
        raise ValueError(f"the key {repeated!r} appears twice")
    return dict(items)


def read_pairs(path, prompt_field="prompt", response_field="response") -> tuple[list[str], list[str], list[int]]:
    """(prompts, responses, line numbers) from a JSON-lines file of {"prompt": ..., "response": ...} objects.

    The reader of pairs for training and for `evaluate --pairs`. A file that is not UTF-8, or a
    line that is not one JSON object with each field a string (`check_fields`), or that writes a
    key twice, raises ValueError naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no pairs file at {path}; write JSON lines like {{\"prompt\": \"1+2=\", \"response\": \"3\"}}")
    check_utf8([str(path)])
    prompts, responses, lines = [], [], []
    fields = [prompt_field] if isinstance(prompt_field, str) else list(prompt_field)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_object_without_repeats)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not valid JSON ({error.msg}, column {error.colno}); "
                                 f"write one object per line") from None
            except ValueError as error:  # a repeated key
                raise ValueError(f"{path}: line {number}: {error}; keep one") from None
            check_fields(record, fields + [response_field], f"{path}: line {number}")
            prompts.append(prompt_text(record, prompt_field))
            responses.append(record[response_field])
            lines.append(number)
    if not prompts:
        raise ValueError(f"{path} holds no pairs; write one JSON object per line")
    return prompts, responses, lines


def _columns(data_cfg, docs) -> None:
    """Check the dataset has the prompt and response columns the config names."""
    columns = docs.column_names
    for name in _fields(data_cfg):
        if columns is not None and name not in columns:
            key = "data.response_field" if name == data_cfg.response_field else "data.prompt_field"
            raise DataError(f"{data_cfg.dataset!r} has no column {name!r} (it has {', '.join(columns)}); set {key} "
                            f"to the column that holds it")


def pair_texts(data_cfg, split: str) -> tuple[list[str], list[str]]:
    """(prompts, responses) of `split` ("train" | "validation"), the columns of data.prompt_field and response_field.

    Without a validation split of its own, validation is a seeded draw of data.val_fraction of the pairs
    (at least one), and train the rest.
    """
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    _check_pair_files(data_cfg)
    splits, own_validation = data_module.load_splits(data_cfg)
    docs = splits["train" if split == "train" or own_validation is None else own_validation]
    if not hasattr(docs, "select"):
        raise DataError("pairs cannot be streamed: set data.streaming=false")
    _columns(data_cfg, docs)
    if own_validation is None:
        order = np.random.default_rng(SPLIT_SEED).permutation(len(docs))
        n_val = max(1, round(len(docs) * data_cfg.val_fraction))
        if len(docs) <= n_val:
            raise DataError(f"{len(docs)} pair{'s' if len(docs) != 1 else ''} cannot make both a training and a "
                            f"validation split; use more pairs")
        docs = docs.select(sorted(order[:-n_val] if split == "train" else order[-n_val:]))
    records = docs.to_list()
    fields = _fields(data_cfg)
    for row, record in enumerate(records):  # what no file line names (a hub dataset, parquet): the same rule
        try:
            check_fields(record, fields, f"{data_cfg.dataset!r}, {split} row {row}")
        except ValueError as error:
            raise DataError(str(error)) from None
    return ([prompt_text(r, data_cfg.prompt_field) for r in records],
            [r[data_cfg.response_field] for r in records])


def _fields(data_cfg) -> list[str]:
    """Every field a pair is made of: the prompt's (one or several) and the response's."""
    prompt = data_cfg.prompt_field
    return ([prompt] if isinstance(prompt, str) else list(prompt)) + [data_cfg.response_field]


def _check_pair_files(data_cfg) -> None:
    """Local JSON-lines pair files go through `read_pairs` first, so that a bad field, a repeated key or a
    non-UTF-8 byte is named by file and line, as `evaluate --pairs` names it. (A .json file holding one
    document, not lines, is checked row by row after loading.)"""
    src = resolve_source(data_cfg)
    if src.kind != "files" or src.path != "json":
        return
    prompt = data_cfg.prompt_field
    for file in src.files:
        if file.endswith(COMPRESSED) or not _json_lines(file):
            continue
        try:
            read_pairs(file, prompt if isinstance(prompt, str) else list(prompt), data_cfg.response_field)
        except ValueError as error:
            missing = "has no" in str(error)
            hint = " (or set data.prompt_field / data.response_field to the fields it has)" if missing else ""
            raise DataError(f"{error}{hint}") from None


def _json_lines(file: str) -> bool:
    """Is this JSON file one object per line? (.jsonl / .ndjson, or a first line that is a whole object)"""
    if file.endswith((".jsonl", ".ndjson")):
        return True
    with open(file, encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def load_pairs(data_cfg, tokenizer, split: str, seq_len: int, log=print) -> Pairs:
    """The pairs of `split` packed into rows of seq_len; a skip of too-long pairs is said in one line by `log`."""
    prompts, responses = pair_texts(data_cfg, split)
    try:
        pairs = pack_pairs(tokenizer, prompts, responses, seq_len)
    except ValueError as error:  # a char vocabulary without a character of these pairs
        missing = sorted(set("".join(prompts + responses)) - set(getattr(tokenizer, "chars", ())))
        hint = f" ({', '.join(map(repr, missing[:8]))})" if missing else ""
        raise DataError(f"{split} pairs: {error}{hint}; the tokenizer cannot encode them: use data.tokenizer=byte, or "
                        f"a checkpoint whose vocabulary holds these characters") from None
    if pairs.skipped:
        log(f"data: {split}: skipped {pairs.skipped:,} of {len(prompts):,} pairs longer than model.seq_len={seq_len} "
            f"(prompt + response + end-of-text, the longest {pairs.longest}); raise model.seq_len to {pairs.longest} "
            f"to keep them all")
    if len(pairs) == 0:
        raise DataError(f"no {split} pair fits in model.seq_len={seq_len} (the longest is {pairs.longest} tokens); "
                        f"raise model.seq_len")
    return pairs


class PairLoader(BlockLoader):
    """Batches of packed pairs (`PairBatch`), in the seeded, resumable order of `BlockLoader` (one row = one block)."""

    def __init__(self, pairs: Pairs, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 device="cpu"):
        self.pairs = pairs
        rows, seq_len = pairs.ids.shape
        try:
            super().__init__(pairs.ids.reshape(-1).numpy(), seq_len, batch_size, seed, rank, world_size, device)
        except DataError:
            raise DataError(f"{rows:,} pairs are fewer than one batch of {batch_size * world_size} (train.batch_size="
                            f"{batch_size} x {world_size} ranks); lower train.batch_size or use more pairs") from None

    def next_batch(self) -> PairBatch:
        """The next batch of this rank: ids (B, L), prompt_len (B,), answer_len (B,), on the loader's device."""
        rows = torch.from_numpy(np.asarray(self.next_blocks(), dtype=np.int64))  # (B,)
        p = self.pairs
        return PairBatch(self.to_device(p.ids[rows]), self.to_device(p.prompt_len[rows]),
                         self.to_device(p.answer_len[rows]))

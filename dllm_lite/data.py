r"""Text in, packed token blocks out: Hugging Face `datasets` -> one flat array of ids -> (B, T) batches.

Where the text comes from (`data.dataset`):

- ``tiny_shakespeare``: the corpus bundled with the package, read as one document; the
  last `val_fraction` of its characters is the validation split (a contiguous cut, as
  nanoGPT does, so no scene leaks from training into validation).
- ``text`` | ``json`` | ``parquet`` with `data.data_files` (a path, a glob or a list): the
  `datasets` builders of those names. A text file is one document (``sample_by="document"``).
- a hub short name from `HUB_DATASETS` (openwebtext, wikitext, c4, the_pile), any hub id
  ``owner/name``, or a local folder laid out like a hub repository (a README.md whose
  YAML header lists `configs:` with their `data_files`): all go through the same
  ``datasets.load_dataset(path, name=subset)`` call. The big ones are streamed and read
  only up to `data.max_tokens`. A hub dataset is read at `data.revision` (a branch, tag or
  commit sha; null: the default branch).

A dataset without a validation split gets one carved out, by characters, so that its
share is the `val_fraction` asked whatever the number and sizes of the documents. The
documents are put in a seeded order and read as one text of C characters: training keeps
the first ``int(C * (1 - val_fraction))``, validation the rest, and the one document that
straddles the cut is cut at a character (its head ends training, its tail starts
validation). One document gives the contiguous cut above; two files give validation
`val_fraction` of their text, not one file of the two as a split by document count would.
Characters stand in for tokens: the token share matches to within how much denser one
document tokenizes than another. The seeded order keeps validation from always being the
last files of a glob. A stream is cut by tokens instead: its first
``val_fraction * max_tokens`` tokens are validation, training starting after them.
`data.val_tokens` caps validation on its own: with max_tokens it slices the training text
while validation stays the same tokens (how the data-constrained experiments compare slices).

Packing. Each document is tokenized and followed by the end-of-text id (gpt2, char and
byte all have one; only a tiktoken encoding without <|endoftext|> has none) and all of
them are concatenated into one flat array,

    [doc 1] eot [doc 2] eot [doc 3] eot ...

cut into non-overlapping blocks of `seq_len` tokens (the tail that fills no block is
dropped). Blocks cross document boundaries on purpose: there is no padding, so every
position of every batch is a real token the loss learns from, and the eot separator marks
where one text ends and an unrelated one begins. A bidirectional denoiser sees both sides
of that boundary and learns from the eot that they do not belong together.

The flat array is written once per (source, split, tokenizer, val_fraction, max_tokens)
into `data.cache_dir` as raw ``uint16`` (``uint32`` when an id exceeds 65,535) with a JSON
sidecar, atomically (temporary file, then rename), and read back as a `np.memmap`:
the second run starts at once. The file name hashes everything that changes the tokens
(see `_cache_paths`), and `CACHE_VERSION` changes whenever the way tokens are made does.
Local files are keyed by their sizes and modification times. A hub dataset is keyed by
`data.revision` and by the commit the Hugging Face cache last resolved it to (its
``refs/`` folder, read without a network): when a later download moves the branch to a new
commit, the next run tokenizes again. A branch that moved on the hub since the Hugging Face
cache last looked is only seen once something downloads it again; pin a commit sha in
`data.revision` for data that cannot change under you.

The sidecar also holds the token file's SHA-256, checked on every read (one pass over the
file, about a second per GB), and its smallest and largest id, checked against the
tokenizer. A file that no longer matches (overwritten, truncated, bit rot) or a sidecar
without a checksum (written before there was one) is tokenized again, with a line saying
so; when the text is gone too, the error says both. `usable_folder` checks that
`data.cache_dir` is a folder this process can write in before anything is read or tokenized.

References: nanoGPT data/openwebtext/prepare.py (map-tokenize, one uint16 memmap) and
data/shakespeare_char/prepare.py; the MDLM code base (kuleshov-group/mdlm, dataloader.py),
whose `wrap` option packs OpenWebText the same way; the Hugging Face `datasets`
documentation on `load_dataset`, streaming and repository `configs:` metadata.
"""
from __future__ import annotations

import codecs
import difflib
import hashlib
import json
import logging
import os
import reprlib
import socket
import tempfile
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import datasets
import huggingface_hub
import numpy as np
import pyarrow.compute as pc
import torch
from datasets.data_files import DataFilesList

from . import tokenize

__all__ = ["HUB_DATASETS", "DataError", "build_tokenizer", "load_text", "load_tokens", "load_splits", "BlockLoader",
           "describe", "usable_folder"]

# short name -> (hub id, default subset, stream by default)
HUB_DATASETS = {
    "openwebtext": ("Skylion007/openwebtext", None, True),
    "wikitext": ("Salesforce/wikitext", "wikitext-2-raw-v1", False),
    "c4": ("allenai/c4", "en", True),
    "the_pile": ("monology/pile-uncopyrighted", None, True),
}
LOCAL_BUILDERS = ("text", "json", "parquet")
VALIDATION_SPLITS = ("validation", "valid", "val", "dev")
SPLIT_SEED = 0  # the seed of the validation carve: fixed, so every run agrees on it
CHUNK_DOCS = 50_000  # documents per map() call: bounds memory, lets max_tokens stop early
STREAM_BATCH = 1_000  # documents encoded together when streaming
HUB_TIMEOUT_S = 3.0
CACHE_VERSION = 2  # 2: validation carved by characters, not by document count
CHECK_CHUNK = 1 << 24  # bytes read at a time when checksumming a token file
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")  # local files read through a decompressor: not checked by hand
SHORT_VALIDATION = 1_000  # characters: a char missing from training in a validation split this short means "too short"
OFFLINE_FIX = ("train offline on the bundled corpus with data.dataset=tiny_shakespeare, or on your own files "
               "with data.dataset=text data.data_files=path/*.txt")


class DataError(ValueError):
    """Data that cannot be read or used; the message names the problem and the fix."""


_SHORT = reprlib.Repr()  # repr for messages: a long path list or string is cut, never quoted whole
_SHORT.maxstring, _SHORT.maxlist, _SHORT.maxother = 200, 4, 200


def usable_folder(path, key: str) -> None:
    """Make sure `path` is a folder this process can write files in, creating it if missing; else a DataError.

    `key` names the setting that holds the path (``data.cache_dir``, ``train.out_dir``) so the
    one-line message says what to change. Writing a temporary file is the only test that
    holds everywhere: permission bits say nothing for root, for /proc and /sys, or for a
    read-only mount.
    """
    folder = Path(path)
    shown = _SHORT.repr(str(path))
    blocker = next((p for p in (folder, *folder.parents) if os.path.lexists(p) and not os.path.isdir(p)), None)
    if blocker == folder:
        reason = "is a file, not a folder"
    elif blocker is not None:
        reason = f"is inside {blocker}, which is a file, not a folder"
    else:
        existed = os.path.isdir(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                return
        except OSError as error:
            reason = f"cannot be {'written in' if existed else 'created'} ({error.strerror or error})"
    raise DataError(f"{key}={shown} {reason}; set {key} to a writable folder")


@dataclass(frozen=True)
class _Source:
    kind: str  # "bundled" | "files" | "folder" | "hub"
    path: str  # what load_dataset gets first: a builder name, a folder or a hub id
    subset: str | None
    files: tuple[str, ...]  # resolved local files ("bundled", "files"); hub data_files patterns
    streaming: bool
    revision: str | None = None  # hub only: branch, tag or commit sha (None: the default branch)


def _patterns(data_files) -> list[str]:
    return [data_files] if isinstance(data_files, str) else list(data_files or [])


def _source(data_cfg) -> _Source:
    """Decide how `data.dataset` is loaded, resolving local files; no network."""
    name, streaming = data_cfg.dataset, data_cfg.streaming
    hub_like = name not in tokenize.BUNDLED_CORPORA and name not in LOCAL_BUILDERS and \
        (name in HUB_DATASETS or not Path(name).is_dir())
    if data_cfg.revision is not None and not hub_like:
        raise DataError(f"data.revision={data_cfg.revision!r} is for hub datasets, but data.dataset={name!r} is "
                        f"read from local files; remove data.revision")
    if name in tokenize.BUNDLED_CORPORA:
        # a bundled corpus is a small file inside the package: read whole, even where a config (small.yaml) streams
        return _Source("bundled", "text", None, (str(tokenize.bundled_corpus_path(name)),), False)
    if name in LOCAL_BUILDERS:
        patterns = _patterns(data_cfg.data_files)
        if not patterns:
            raise DataError(f"data.dataset={name} needs data.data_files, e.g. data.data_files=path/*.txt")
        try:
            files = DataFilesList.from_patterns(patterns, base_path=os.getcwd())
        except FileNotFoundError:
            files = []
        if not files:
            raise DataError(f"data.data_files={_SHORT.repr(data_cfg.data_files)} matches no file "
                            f"(relative to {os.getcwd()}); "
                            f"check the path or the glob")
        return _Source("files", name, None, tuple(files), bool(streaming))
    if name not in HUB_DATASETS and Path(name).is_dir():  # a short name always means the hub; ./name the folder
        return _Source("folder", name, data_cfg.subset, (), bool(streaming))
    if name in HUB_DATASETS or "/" in name:
        hub_id, subset, stream_default = HUB_DATASETS.get(name, (name, None, False))
        streaming = stream_default if streaming is None else streaming
        return _Source("hub", hub_id, data_cfg.subset or subset, tuple(_patterns(data_cfg.data_files)), streaming,
                       data_cfg.revision)
    known = list(tokenize.BUNDLED_CORPORA) + list(LOCAL_BUILDERS) + list(HUB_DATASETS)
    close = difflib.get_close_matches(name, known, n=1)
    raise DataError(f"unknown data.dataset={name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; use one of "
                    f"{', '.join(known)}, a hub id like 'owner/name', or a local dataset folder")


def _hub_reachable(endpoint: str, timeout: float = HUB_TIMEOUT_S) -> bool:
    """Can a TCP connection to the hub (or to the HTTPS proxy in front of it) open within `timeout` s?"""
    url = urlparse(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_url.hostname, proxy_url.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_hub(hub_id: str) -> None:
    """Fail in seconds, not after minutes of retries, when the hub is out of reach."""
    if datasets.config.HF_HUB_OFFLINE:
        return  # load_dataset reads the Hugging Face cache; a miss is reported by _load_splits
    endpoint = datasets.config.HF_ENDPOINT
    if not _hub_reachable(endpoint):
        raise DataError(f"the Hugging Face hub ({endpoint}) cannot be reached, so {hub_id!r} cannot be downloaded; "
                        f"{OFFLINE_FIX} (or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache)")


def _load_splits(data_cfg, src: _Source) -> dict:
    """`datasets.load_dataset` for every source kind: {split name: Dataset or IterableDataset}."""
    kwargs = {"streaming": src.streaming}
    if src.kind == "hub":
        kwargs["revision"] = src.revision
    else:  # Arrow copies of local files live beside our token files
        kwargs["cache_dir"] = str(Path(data_cfg.cache_dir) / "hf")
    if src.files:
        kwargs["data_files"] = list(src.files)
    if src.path == "text":
        kwargs["sample_by"] = "document"
    json_log = logging.getLogger("datasets.packaged_modules.json.json")
    json_level = json_log.level
    if src.path == "json":  # its "Failed to load JSON" log line would repeat the one-line error below
        json_log.setLevel(logging.CRITICAL)
    try:
        return dict(datasets.load_dataset(src.path, name=src.subset, **kwargs))
    except ConnectionError as error:
        mode = "HF_HUB_OFFLINE=1 is set and it is not in the Hugging Face cache" if datasets.config.HF_HUB_OFFLINE \
            else "the hub did not answer"
        raise DataError(f"could not load {src.path!r}: {mode}; {OFFLINE_FIX}") from error
    except (StopIteration, ValueError, FileNotFoundError, datasets.exceptions.DatasetGenerationError) as error:
        if src.path == "json":  # datasets says "StopIteration" or "An error occurred": find the file and line
            _check_json(src.files)
        cause = error.__cause__ if isinstance(error, datasets.exceptions.DatasetGenerationError) else None
        reason = "it holds no records" if isinstance(error, StopIteration) else \
            " ".join(f"{error}{f' ({cause})' if cause else ''}".split())
        raise DataError(f"could not load {src.path!r}{f' (subset {src.subset!r})' if src.subset else ''}: "
                        f"{reason}; check data.dataset and data.subset") from error
    finally:
        json_log.setLevel(json_level)


def _json_problem(file: str) -> str | None:
    """Why a JSON file gives no dataset: "no records", "line N is not valid JSON (...)", or None if it parses.

    A .jsonl / .ndjson file, or one whose first line is a JSON value by itself, is read as
    JSON lines and its first bad line is named; any other file is parsed as one document
    (a pretty-printed .json) and Python's json names the line where it breaks.
    """
    records, parsed = 0, 0
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                if parsed == 0 and not file.endswith((".jsonl", ".ndjson")):
                    break  # the first line is no JSON value alone: one document over many lines
                return f"line {number} is not valid JSON ({error.msg}, column {error.colno})"
            parsed += 1
            records += _records(value)
        else:
            return None if records else "no records"
    try:
        document = json.loads(Path(file).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return f"line {error.lineno} is not valid JSON ({error.msg}, column {error.colno})"
    return None if _records(document) else "no records"


def _records(value) -> int:
    """Records in a parsed JSON value: an object is one (if not empty), a list holds its objects, the rest none."""
    if isinstance(value, list):
        return sum(isinstance(item, dict) and bool(item) for item in value)
    return int(isinstance(value, dict) and bool(value))


def _check_json(files) -> None:
    """After datasets failed on JSON files: name the first bad file and line, or say that none has a record."""
    problems = {file: _json_problem(file) for file in files if not file.endswith(COMPRESSED)}
    broken = [(file, problem) for file, problem in problems.items() if problem not in (None, "no records")]
    if broken:
        file, problem = broken[0]
        raise DataError(f"{file}: {problem}; fix it (JSON lines: one object per line, e.g. {{\"text\": \"...\"}}) "
                        f"or leave the file out of data.data_files")
    if problems and all(problem == "no records" for problem in problems.values()):
        raise DataError(f"no records in {_SHORT.repr(list(problems))[1:-1]}; write one JSON object per line, e.g. "
                        f"{{\"text\": \"...\"}}, or point data.data_files at files that hold some")


def _check_utf8(files) -> None:
    """Name the first local text/json file that is not UTF-8 (pyarrow would store the bad bytes silently)."""
    for file in files:
        if file.endswith(COMPRESSED):
            continue
        decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 24):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    raise DataError(f"{file} is not UTF-8 text (byte 0x{chunk[error.start]:02x} at offset "
                                    f"{offset + error.start}); convert it to UTF-8, e.g. "
                                    f"iconv -f latin1 -t utf-8 {file} > {file}.utf8") from None
                offset += len(chunk)


def _carve(train: datasets.Dataset, split: str, val_fraction: float, field: str) -> datasets.Dataset:
    """Validation out of a train-only dataset: the last val_fraction of its characters, documents in a seeded order.

    With the documents in the order of a permutation seeded by SPLIT_SEED, ending at
    characters ends[0] <= ends[1] <= ... <= ends[-1] = C, training keeps characters [0, cut)
    and validation [cut, C), where cut = int(C * (1 - val_fraction)): validation's share is
    val_fraction to within one character. The document holding character `cut` is split
    there. Returns only the text column. Warns (one line) when rounding to a whole
    character moves the share by more than a tenth of val_fraction: a text that short
    cannot have the share asked.
    """
    if len(train) == 0:
        raise DataError("the dataset has no documents; check data.data_files and data.dataset")
    text_only = train.select_columns([field])
    lengths = pc.fill_null(pc.utf8_length(text_only.with_format("arrow")[field]), 0).to_numpy()  # (n_docs,) characters
    order = np.random.default_rng(SPLIT_SEED).permutation(len(text_only))  # (n_docs,)
    ends = np.cumsum(lengths[order])  # (n_docs,) where each document ends, in characters
    total = int(ends[-1])
    if total == 0:
        raise DataError(f"the dataset has no text (its {len(train)} documents are empty); "
                        f"check data.data_files and data.text_field")
    cut = int(total * (1 - val_fraction))
    share = (total - cut) / total
    if abs(share - val_fraction) > val_fraction / 10:
        warnings.warn(f"data: validation is {total - cut} character{'s' if total - cut > 1 else ''}, {share:.1%} of "
                      f"the text, not data.val_fraction={val_fraction:g} of it: the text is too short for that "
                      f"share; use more text")
    straddling = int(np.searchsorted(ends, cut, side="right"))  # the document that holds character `cut`
    text = text_only[int(order[straddling])][field]
    offset = cut - (int(ends[straddling]) - len(text))  # where that document is cut
    if split == "train":
        whole, piece, piece_first = order[:straddling], text[:offset], False
    else:
        whole, piece, piece_first = order[straddling + 1:], text[offset:], True
    parts = [text_only.select(whole)]
    if piece:
        piece_part = datasets.Dataset.from_dict({field: [piece]}, features=text_only.features)
        parts.insert(0 if piece_first else 1, piece_part)
    return datasets.concatenate_datasets(parts)


def load_splits(data_cfg) -> tuple[dict, "str | None"]:
    """({split name: Dataset or IterableDataset}, the name of its own validation split or None), as loaded.

    Checks first that data.cache_dir is usable, that a hub dataset is reachable and that local
    text/JSON files are UTF-8; the dataset must have a train split.
    """
    src = _source(data_cfg)
    usable_folder(data_cfg.cache_dir, "data.cache_dir")  # before any download or tokenizing
    if src.kind == "hub":
        _check_hub(src.path)
    if src.kind == "files" and src.path in ("text", "json"):
        _check_utf8(src.files)
    splits = _load_splits(data_cfg, src)
    if "train" not in splits:
        raise DataError(f"{data_cfg.dataset!r} has no 'train' split (it has {', '.join(splits)}); "
                        f"pick a subset that has one with data.subset")
    return splits, next((name for name in VALIDATION_SPLITS if name in splits), None)


def _documents(data_cfg, split: str):
    """(documents, tokens to skip first): skip > 0 only for training on a stream whose start is validation."""
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    src = _source(data_cfg)
    splits, own_validation = load_splits(data_cfg)
    docs = splits["train" if split == "train" or own_validation is None else own_validation]
    columns = docs.column_names
    if columns is not None and data_cfg.text_field not in columns:
        raise DataError(f"{data_cfg.dataset!r} has no column {data_cfg.text_field!r} (it has {', '.join(columns)}); "
                        f"set data.text_field to the column that holds the text")
    skip = 0
    if own_validation is None and src.streaming:
        skip = _caps(data_cfg)[1] if split == "train" else 0
    elif own_validation is None:
        docs = _carve(docs, split, data_cfg.val_fraction, data_cfg.text_field)
    return docs, skip


def load_text(data_cfg, split: str):
    """The documents of `split` ("train" | "validation") as a `datasets.Dataset` (an IterableDataset if streamed).

    A stream without its own validation split is returned whole for both splits:
    `load_tokens` takes validation from its first tokens and starts training after them.
    """
    return _documents(data_cfg, split)[0]


def _caps(data_cfg) -> tuple[int | None, int | None]:
    """Token caps (train, validation): max_tokens, and val_tokens or else val_fraction of max_tokens (None: no cap)."""
    if data_cfg.val_tokens is not None:
        return data_cfg.max_tokens, data_cfg.val_tokens
    if data_cfg.max_tokens is None:
        return None, None
    return data_cfg.max_tokens, max(1, int(data_cfg.max_tokens * data_cfg.val_fraction))


def build_tokenizer(data_cfg) -> tokenize.Tokenizer:
    """The tokenizer named by data.tokenizer; "char" takes its vocabulary from the training text."""
    if data_cfg.tokenizer != "char":
        return tokenize.get_tokenizer(data_cfg.tokenizer)
    if _source(data_cfg).streaming:
        raise DataError("data.tokenizer=char needs the whole training text to build its vocabulary, which a stream "
                        "never holds; use data.tokenizer=gpt2 (or byte), or data.streaming=false")
    if data_cfg.prompt_field is None:
        docs, fields = load_text(data_cfg, "train"), [data_cfg.text_field]
    else:  # pairs: every column a prompt or a response is made of, over the whole train split
        docs = load_splits(data_cfg)[0]["train"]
        prompt = data_cfg.prompt_field
        fields = [f for f in ([prompt] if isinstance(prompt, str) else prompt) + [data_cfg.response_field]
                  if f in docs.column_names]
    joined = isinstance(data_cfg.prompt_field, list) and len(data_cfg.prompt_field) > 1
    chars = {"\n"} if joined else set()  # several prompt columns are joined with newlines
    for batch in docs.with_format("arrow").iter(batch_size=STREAM_BATCH):
        for field in fields:
            for text in batch[field].to_pylist():
                chars.update(str(text or ""))
    if not chars:
        raise DataError(f"{describe(data_cfg)}: the training text is empty, so a char vocabulary cannot be built")
    return tokenize.get_tokenizer("char", chars=sorted(chars))


def _encoder(tokenizer, field: str, too_short: str | None = None):
    """A batched map function: {field: [text, ...]} -> {"ids": [ids + [eot], ...]}; empty texts give nothing.

    A char tokenizer fails on a character its training text lacks: the DataError names it,
    and says `too_short` (the text is too short for a validation split) when that is given.
    """
    eot = [] if tokenizer.eot_id is None else [tokenizer.eot_id]

    def encode(batch):
        texts = [text or "" for text in batch[field]]
        try:
            return {"ids": [ids + eot if text else [] for text, ids in zip(texts, tokenizer.encode_batch(texts))]}
        except ValueError as error:  # a char vocabulary without a character of this text
            missing = sorted(set("".join(texts)) - set(getattr(tokenizer, "chars", ())))
            if too_short and missing:
                raise DataError(too_short.format(missing=", ".join(map(repr, missing[:8])))) from None
            raise DataError(f"{error}; this text has a character that the training text lacks: use "
                            f"data.tokenizer=byte or gpt2") from None

    return encode


def _too_short(data_cfg, src: _Source, docs) -> str | None:
    """For a char tokenizer's validation split under SHORT_VALIDATION characters: the error a missing character
    gets (with a {missing} field), since in so little text it says the file is too short, not oddly spelled."""
    if not isinstance(docs, datasets.Dataset):
        return None
    chars = pc.sum(pc.utf8_length(docs.with_format("arrow")[data_cfg.text_field])).as_py() or 0
    if chars >= SHORT_VALIDATION:
        return None
    what = src.files[0] if len(src.files) == 1 else f"the text of data.dataset={data_cfg.dataset}"
    return (f"{what} is too short for a validation split: validation is {chars} character{'s' if chars != 1 else ''} "
            f"(data.val_fraction={data_cfg.val_fraction:g}) and holds {{missing}}, which the training text never "
            f"uses, so the char vocabulary cannot encode them; use a longer text (thousands of characters), or "
            f"data.tokenizer=byte")


def _write(handle, ids: np.ndarray, room: int | None, dtype) -> int:
    """Append ids (at most `room` of them) to the open file; return how many were written."""
    ids = ids if room is None else ids[:room]
    ids.astype(dtype).tofile(handle)
    return len(ids)


def _write_dataset(handle, docs, encode, cap, num_proc, fingerprint, dtype) -> int:
    """Tokenize a Dataset chunk by chunk with map(batched=True, num_proc) and append the ids in order."""
    total = 0
    for start in range(0, len(docs), CHUNK_DOCS):
        chunk = docs.select(range(start, min(start + CHUNK_DOCS, len(docs))))
        procs = min(num_proc, len(chunk)) if num_proc else None
        mapped = chunk.map(encode, batched=True, num_proc=procs if procs and procs > 1 else None,
                           remove_columns=chunk.column_names, keep_in_memory=True,
                           new_fingerprint=f"{fingerprint}{start:x}", desc="tokenizing")
        flat = pc.list_flatten(mapped.with_format("arrow")["ids"]).to_numpy()  # (n_tokens,)
        total += _write(handle, flat, None if cap is None else cap - total, dtype)
        if cap is not None and total >= cap:
            break
    return total


def _write_stream(handle, stream, encode, field, cap, skip, dtype) -> int:
    """Encode a stream in batches; skip whole documents until `skip` tokens passed, then write up to `cap`."""
    skipped = total = 0
    for batch in stream.iter(batch_size=STREAM_BATCH):
        for ids in encode({field: batch[field]})["ids"]:
            if skipped < skip:
                skipped += len(ids)
                continue
            total += _write(handle, np.asarray(ids), cap - total, dtype)
            if total >= cap:
                return total
    return total


def _hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit sha of a hub dataset's `revision` as far as the Hugging Face cache knows; None if unknown.

    A 40-hex revision is a commit already. A branch or tag name is looked up in the cache's
    ``datasets--owner--name/refs/<revision>`` file, which huggingface_hub rewrites with the
    commit each time it downloads from that revision. No network.
    """
    revision = revision or "main"
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    ref = Path(huggingface_hub.constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def _cache_paths(data_cfg, tokenizer, split: str, src: _Source) -> tuple[Path, Path, dict]:
    """(token file, sidecar, key): the name hashes everything that changes the tokens.

    That is the source and its files' sizes and modification times (local data) or its
    revision and resolved commit (hub data), the split, the tokenizer's state, the text
    field, val_fraction, max_tokens, val_tokens, streaming, and CACHE_VERSION.
    """
    if src.kind == "folder":
        root = Path(src.path)
        files = sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.relative_to(root).parts[0].startswith("."))
    else:
        files = list(src.files)
    stamps = [[f, os.stat(f).st_size, os.stat(f).st_mtime_ns] if os.path.exists(f) else [f] for f in files]
    key = {"version": CACHE_VERSION, "kind": src.kind, "path": str(Path(src.path).resolve()) if src.kind == "folder"
           else src.path, "subset": src.subset, "files": stamps, "split": split, "tokenizer": tokenizer.state_dict(),
           "text_field": data_cfg.text_field, "val_fraction": data_cfg.val_fraction,
           "max_tokens": data_cfg.max_tokens, "val_tokens": data_cfg.val_tokens, "streaming": src.streaming, "revision": src.revision,
           "commit": _hub_commit(src.path, src.revision) if src.kind == "hub" else None}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = Path(src.path).name if src.kind == "folder" else data_cfg.dataset
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{name}-{src.subset or ''}")
    stem = Path(data_cfg.cache_dir) / f"{slug.strip('_-')}-{split}-{tokenizer.name}-{digest}"
    return stem.with_suffix(".bin"), stem.with_suffix(".json"), key


def _checksum(path: Path) -> str:
    """The file's SHA-256, read CHECK_CHUNK bytes at a time.

    hashlib's sha256 uses the CPU's SHA instructions where it has them: about 1.2 GB/s on one
    core here, so checking a 1 GB cache adds under a second to a run's start.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHECK_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_cache(bin_path: Path, meta_path: Path, mask_id: int) -> tuple[np.memmap | None, str | None]:
    """(tokens, None) for a sound cache, as a read-only memmap; (None, None) when there is none;
    (None, why) when there is one that cannot be trusted (then it is tokenized again).

    The checksum proves the file is the one written; the id range written beside it then
    proves it fits the tokenizer (text ids stay below the mask id).
    """
    if not meta_path.exists():
        return None, None
    try:
        meta = json.loads(meta_path.read_text())
        dtype, n_tokens, max_id = np.dtype(meta["dtype"]), meta["n_tokens"], meta.get("max_id")
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"its sidecar {meta_path.name} cannot be read"
    if "sha256" not in meta:
        return None, "its sidecar has no checksum (written by an older dllm_lite)"
    try:
        size = bin_path.stat().st_size
        if size != n_tokens * dtype.itemsize:
            return None, f"it holds {size:,} bytes, not the {n_tokens * dtype.itemsize:,} written"
        if _checksum(bin_path) != meta["sha256"]:
            return None, "its checksum does not match: the file changed after it was written"
    except OSError as error:
        return None, f"it cannot be read ({error.strerror or error})"
    if not isinstance(max_id, int) or max_id >= mask_id:
        return None, f"its ids reach {max_id}, past this tokenizer's text ids (0..{mask_id - 1})"
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(n_tokens,)), None


def _cached(bin_path: Path, meta_path: Path, tokenizer, split: str) -> tuple[np.memmap | None, str | None]:
    """`_read_cache`, saying in one printed line that the cache was used, or why it was not."""
    tokens, damage = _read_cache(bin_path, meta_path, tokenizer.mask_id)
    if tokens is not None:
        print(f"data: {split}: {len(tokens):,} tokens from cache {bin_path}")
    elif damage is not None:
        print(f"data: {split}: not using the cached tokens {bin_path}: {damage}; tokenizing again")
    return tokens, damage


def load_tokens(data_cfg, tokenizer, split: str) -> np.ndarray:
    """All token ids of `split` ("train" | "validation") as a flat read-only memmap (n_tokens,).

    Documents are tokenized, each followed by eot_id, concatenated, and cached in
    data.cache_dir; a later call with the same settings reads the cache (no tokenizing)
    once its checksum matches. Prints one line saying which happened (and one more when a
    damaged cache is tokenized again).
    """
    src = _source(data_cfg)
    bin_path, meta_path, key = _cache_paths(data_cfg, tokenizer, split, src)
    tokens, damage = _cached(bin_path, meta_path, tokenizer, split)
    if tokens is not None:
        return tokens
    if src.streaming and data_cfg.max_tokens is None:
        raise DataError(f"{describe(data_cfg)} is streamed and has no end in sight: set data.max_tokens, "
                        f"e.g. data.max_tokens=100000000")
    if src.streaming and tokenizer.name == "char":
        raise DataError("data.tokenizer=char cannot be used with a streamed dataset; use data.tokenizer=gpt2 or byte")
    try:
        return _tokenize(data_cfg, tokenizer, split, src, bin_path, meta_path, key)
    except DataError as error:
        if damage is None:
            raise
        raise DataError(f"the cached tokens {bin_path} cannot be used ({damage}) nor made again: {error}") from None


def _tokenize(data_cfg, tokenizer, split: str, src: _Source, bin_path: Path, meta_path: Path, key: dict) -> np.ndarray:
    """Tokenize `split` into the cache (token file, then its sidecar with the checksum) and return it as a memmap."""
    started = time.time()
    docs, skip = _documents(data_cfg, split)
    if src.kind == "hub":  # loading may have told the Hugging Face cache the branch's commit: key by it now
        bin_path, meta_path, key = _cache_paths(data_cfg, tokenizer, split, src)
        tokens, _ = _cached(bin_path, meta_path, tokenizer, split)
        if tokens is not None:
            return tokens
    train_cap, val_cap = _caps(data_cfg)
    cap = train_cap if split == "train" else val_cap
    dtype = np.uint16 if tokenizer.vocab_size - 1 <= np.iinfo(np.uint16).max else np.uint32
    too_short = _too_short(data_cfg, src, docs) if split == "validation" and tokenizer.name == "char" else None
    encode = _encoder(tokenizer, data_cfg.text_field, too_short)
    with tempfile.NamedTemporaryFile(dir=bin_path.parent, prefix=bin_path.stem, suffix=".tmp", delete=False) as handle:
        try:
            if isinstance(docs, datasets.IterableDataset):
                n_tokens = _write_stream(handle, docs, encode, data_cfg.text_field, cap, skip, dtype)
            else:
                n_tokens = _write_dataset(handle, docs, encode, cap, data_cfg.num_proc, bin_path.stem[-16:], dtype)
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
    if n_tokens == 0:
        os.unlink(handle.name)
        if skip:
            raise DataError(f"{describe(data_cfg)}: the stream ended within its first {skip:,} tokens, which are kept "
                            f"for validation, so nothing is left to train on; for a dataset this small set "
                            f"data.streaming=false (or a smaller data.max_tokens or data.val_tokens)")
        raise DataError(f"{describe(data_cfg)}: the {split} split has no text (0 tokens); "
                        f"check data.data_files and data.text_field")
    written = np.memmap(handle.name, dtype=dtype, mode="r")  # (n_tokens,)
    meta = {"dtype": np.dtype(dtype).name, "n_tokens": n_tokens, "sha256": _checksum(Path(handle.name)),
            "min_id": int(written.min()), "max_id": int(written.max()), "source": describe(data_cfg), "key": key}
    del written  # unmapped before the rename: Windows cannot replace a mapped file
    os.replace(handle.name, bin_path)
    meta_tmp = meta_path.with_suffix(f".json.{os.getpid()}.tmp")
    meta_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(meta_tmp, meta_path)
    print(f"data: {split}: tokenized {n_tokens:,} tokens in {time.time() - started:.1f} s -> {bin_path}")
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(n_tokens,))


def describe(data_cfg) -> str:
    """One line saying what data.* reads: source, subset, streaming, cap, tokenizer (no network)."""
    src = _source(data_cfg)
    if src.kind == "bundled":
        where = f"{data_cfg.dataset} (bundled, {os.path.getsize(src.files[0]) / 1e6:.1f} MB)"
    elif src.kind == "files":
        n_files = f"{len(src.files)} file{'s' if len(src.files) > 1 else ''}"
        where = f"{src.path} files {_SHORT.repr(data_cfg.data_files)} ({n_files})"
    else:
        origin = "local dataset folder" if src.kind == "folder" else "hub dataset"
        where = f"{origin} {src.path}" + (f" [{src.subset}]" if src.subset else "") + \
            (f" at revision {src.revision}" if src.revision else "")
    fraction = f"{data_cfg.val_fraction:.0%}"
    if src.kind == "bundled":
        validation = f"the last {fraction} of the text"
    elif src.streaming:
        validation = f"its own split, else the stream's first {fraction} of max_tokens"
    else:
        validation = f"its own split, else the last {fraction} of the text (documents in a seeded order)"
    parts = [where, "streamed" if src.streaming else None,
             f"first {data_cfg.max_tokens:,} training tokens" if data_cfg.max_tokens else None,
             f"first {data_cfg.val_tokens:,} validation tokens" if data_cfg.val_tokens else None,
             f"tokenizer {data_cfg.tokenizer}", f"validation: {validation}"]
    return ", ".join(part for part in parts if part)


class BlockLoader:
    """Batches of non-overlapping `seq_len` blocks of a flat token array, in a seeded order, resumable.

    Block i is tokens[i * seq_len : (i + 1) * seq_len]; n_blocks = len(tokens) // seq_len
    (the tail is dropped). Epoch e visits the blocks in the permutation drawn from
    numpy's generator seeded with (seed, e). Global step g of an epoch takes blocks
    perm[g*W*B : (g+1)*W*B] for W ranks of batch B, and rank r keeps its slice
    [r*B : (r+1)*B], so W ranks together see exactly what one process with batch W*B sees.
    An epoch has n_blocks // (W*B) steps; the remainder waits for a later epoch's order.
    """

    def __init__(self, tokens, seq_len: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 device="cpu"):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.tokens, self.seq_len, self.batch_size = tokens, seq_len, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        self.n_blocks = len(tokens) // seq_len
        self.global_batch = batch_size * world_size
        if self.n_blocks < self.global_batch:
            raise DataError(f"{len(tokens):,} tokens make {self.n_blocks} blocks of seq_len={seq_len}, fewer than one "
                            f"batch of {self.global_batch} (batch_size={batch_size} x {world_size} ranks); lower "
                            f"train.batch_size or model.seq_len, or use more data")
        self.steps_per_epoch = self.n_blocks // self.global_batch
        self.tokens_per_batch = batch_size * seq_len
        self.epoch, self.position = 0, 0  # position: global steps taken in this epoch
        self._order = None  # (epoch, permutation)

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks))
        return self._order[1]

    def next_blocks(self) -> np.ndarray:
        """The indices (batch_size,) of this rank's next blocks; moves the loader on by one step."""
        if self.position >= self.steps_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        start = self.position * self.global_batch + self.rank * self.batch_size
        self.position += 1
        return self._permutation(self.epoch)[start : start + self.batch_size]  # (B,)

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """A CPU tensor on the loader's device (pinned first on CUDA, so the copy overlaps compute)."""
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device)

    def next_batch(self) -> torch.Tensor:
        """The next (batch_size, seq_len) LongTensor of this rank, on the loader's device."""
        blocks = self.next_blocks()  # (B,)
        offsets = blocks[:, None] * self.seq_len + np.arange(self.seq_len)  # (B, T)
        return self.to_device(torch.from_numpy(np.asarray(self.tokens[offsets], dtype=np.int64)))  # (B, T)

    def state_dict(self) -> dict:
        """Plain ints: where the next batch comes from, plus the sizes that give them meaning."""
        return {"epoch": self.epoch, "position": self.position, "n_blocks": self.n_blocks,
                "global_batch": self.global_batch}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()`: the following batches equal those the saved loader would give."""
        for key in ("n_blocks", "global_batch"):
            if key in state and state[key] != getattr(self, key):
                raise DataError(f"the saved data position is for {key}={state[key]} but this loader has "
                                f"{getattr(self, key)}; resume with the same data, model.seq_len and "
                                f"train.batch_size x number of GPUs")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

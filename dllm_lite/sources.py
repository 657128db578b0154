r"""Text sources (the bundled corpus, local files, a dataset folder, the hub, streams) and the validation split.

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
- a task name from `TASK_DATASETS` (addition, sudoku, facts): the synthetic prompt/response
  task of tasks.py, written as JSON lines into `data.cache_dir`/tasks/<name> the first time
  (``train.jsonl`` and the test files evaluate.py reads) and then read as a ``json`` dataset.

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

`load_splits` returns what `datasets.load_dataset` gives; `load_text` one split's documents
(carved when the dataset has no validation split of its own); `describe` one line saying
what data.* reads. token_cache.py turns those documents into token ids.

References: the Hugging Face `datasets` documentation on `load_dataset`, streaming and
repository `configs:` metadata; nanoGPT data/shakespeare_char/prepare.py (the contiguous cut).
"""
from __future__ import annotations

import difflib
import logging
import os
import shutil
import socket
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets.data_files import DataFilesList

from . import tasks, tokenize
from .data_checks import SHORT, DataError, check_json, check_utf8, usable_folder

__all__ = ["HUB_DATASETS", "load_splits", "load_text", "describe"]

# short name -> (hub id, default subset, stream by default)
HUB_DATASETS = {
    "openwebtext": ("Skylion007/openwebtext", None, True),
    "wikitext": ("Salesforce/wikitext", "wikitext-2-raw-v1", False),
    "c4": ("allenai/c4", "en", True),
    "the_pile": ("monology/pile-uncopyrighted", None, True),
}
LOCAL_BUILDERS = ("text", "json", "parquet")
TASK_DATASETS = tasks.TASK_DATASETS  # the tasks data.dataset may name, and the sizes written
VALIDATION_SPLITS = ("validation", "valid", "val", "dev")
SPLIT_SEED = 0  # the seed of the validation carve: fixed, so every run agrees on it
HUB_TIMEOUT_S = 3.0
OFFLINE_FIX = ("train offline on the bundled corpus with data.dataset=tiny_shakespeare, or on your own files "
               "with data.dataset=text data.data_files=path/*.txt")


@dataclass(frozen=True)
class Source:
    kind: str  # "bundled" | "files" | "task" | "folder" | "hub"
    path: str  # what load_dataset gets first: a builder name, a folder or a hub id
    subset: str | None
    files: tuple[str, ...]  # resolved local files ("bundled", "files", "task"); hub data_files patterns
    streaming: bool
    revision: str | None = None  # hub only: branch, tag or commit sha (None: the default branch)


def _patterns(data_files) -> list[str]:
    return [data_files] if isinstance(data_files, str) else list(data_files or [])


def resolve_source(data_cfg) -> Source:
    """Decide how `data.dataset` is loaded, resolving local files; no network."""
    name, streaming = data_cfg.dataset, data_cfg.streaming
    hub_like = name not in tokenize.BUNDLED_CORPORA and name not in LOCAL_BUILDERS and name not in TASK_DATASETS \
        and (name in HUB_DATASETS or not Path(name).is_dir())
    if data_cfg.revision is not None and not hub_like:
        raise DataError(f"data.revision={data_cfg.revision!r} is for hub datasets, but data.dataset={name!r} is "
                        f"read from local files; remove data.revision")
    if name in tokenize.BUNDLED_CORPORA:
        # a bundled corpus is a small file inside the package: read whole, even where a config (small.yaml) streams
        return Source("bundled", "text", None, (str(tokenize.bundled_corpus_path(name)),), False)
    patterns = _patterns(data_cfg.data_files)
    if name in TASK_DATASETS and not patterns:  # a short name means the task, as it does the hub; ./name the folder
        return Source("task", "json", None, (str(task_files(data_cfg)["train"]),), False)
    if name in LOCAL_BUILDERS or name in TASK_DATASETS:  # a task name with data_files: those JSON lines in its place
        name = "json" if name in TASK_DATASETS else name
        if not patterns:
            raise DataError(f"data.dataset={name} needs data.data_files, e.g. data.data_files=path/*.txt")
        try:
            files = DataFilesList.from_patterns(patterns, base_path=os.getcwd())
        except FileNotFoundError:
            files = []
        if not files:
            raise DataError(f"data.data_files={SHORT.repr(data_cfg.data_files)} matches no file "
                            f"(relative to {os.getcwd()}); "
                            f"check the path or the glob")
        return Source("files", name, None, tuple(files), bool(streaming))
    if name not in HUB_DATASETS and Path(name).is_dir():  # a short name always means the hub; ./name the folder
        return Source("folder", name, data_cfg.subset, (), bool(streaming))
    if name in HUB_DATASETS or "/" in name:
        hub_id, subset, stream_default = HUB_DATASETS.get(name, (name, None, False))
        streaming = stream_default if streaming is None else streaming
        return Source("hub", hub_id, data_cfg.subset or subset, tuple(_patterns(data_cfg.data_files)), streaming,
                       data_cfg.revision)
    known = list(tokenize.BUNDLED_CORPORA) + list(LOCAL_BUILDERS) + list(TASK_DATASETS) + list(HUB_DATASETS)
    close = difflib.get_close_matches(name, known, n=1)
    raise DataError(f"unknown data.dataset={name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; use one of "
                    f"{', '.join(known)}, a hub id like 'owner/name', or a local dataset folder")


def task_files(data_cfg) -> dict[str, Path]:
    """{split: path} of the synthetic task data.dataset names, written by tasks.write_task (seed 0, the sizes of
    TASK_DATASETS) into data.cache_dir/tasks/<name> the first time and found there afterwards.

    The files are written in a temporary folder beside it and moved in one by one, train.jsonl last, so
    a run that is cut short leaves no train.jsonl that a later run would take for whole.
    """
    name = data_cfg.dataset
    folder = Path(data_cfg.cache_dir) / "tasks" / name
    if not (folder / "train.jsonl").is_file():
        usable_folder(folder.parent, "data.cache_dir")
        n_train, n_test = TASK_DATASETS[name]
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}.tmp"))
        try:
            written = tasks.write_task(name, tmp, n_train, n_test, seed=0)
            folder.mkdir(exist_ok=True)
            for path in sorted(written.values(), key=lambda path: path.name == "train.jsonl"):
                os.replace(path, folder / path.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {path.stem: path for path in sorted(folder.glob("*.jsonl"))}


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


def _load_splits(data_cfg, src: Source) -> dict:
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
            check_json(src.files)
        cause = error.__cause__ if isinstance(error, datasets.exceptions.DatasetGenerationError) else None
        reason = "it holds no records" if isinstance(error, StopIteration) else \
            " ".join(f"{error}{f' ({cause})' if cause else ''}".split())
        raise DataError(f"could not load {src.path!r}{f' (subset {src.subset!r})' if src.subset else ''}: "
                        f"{reason}; check data.dataset and data.subset") from error
    finally:
        json_log.setLevel(json_level)


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
    src = resolve_source(data_cfg)
    usable_folder(data_cfg.cache_dir, "data.cache_dir")  # before any download or tokenizing
    if src.kind == "hub":
        _check_hub(src.path)
    if src.kind == "files" and src.path in ("text", "json"):
        check_utf8(src.files)
    splits = _load_splits(data_cfg, src)
    if "train" not in splits:
        raise DataError(f"{data_cfg.dataset!r} has no 'train' split (it has {', '.join(splits)}); "
                        f"pick a subset that has one with data.subset")
    return splits, next((name for name in VALIDATION_SPLITS if name in splits), None)


def documents(data_cfg, split: str):
    """(documents, tokens to skip first): skip > 0 only for training on a stream whose start is validation."""
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    src = resolve_source(data_cfg)
    splits, own_validation = load_splits(data_cfg)
    docs = splits["train" if split == "train" or own_validation is None else own_validation]
    columns = docs.column_names
    if columns is not None and data_cfg.text_field not in columns:
        raise DataError(f"{data_cfg.dataset!r} has no column {data_cfg.text_field!r} (it has {', '.join(columns)}); "
                        f"set data.text_field to the column that holds the text")
    skip = 0
    if own_validation is None and src.streaming:
        skip = token_caps(data_cfg)[1] if split == "train" else 0
    elif own_validation is None:
        docs = _carve(docs, split, data_cfg.val_fraction, data_cfg.text_field)
    return docs, skip


def load_text(data_cfg, split: str):
    """The documents of `split` ("train" | "validation") as a `datasets.Dataset` (an IterableDataset if streamed).

    A stream without its own validation split is returned whole for both splits:
    `load_tokens` takes validation from its first tokens and starts training after them.
    """
    return documents(data_cfg, split)[0]


def token_caps(data_cfg) -> tuple[int | None, int | None]:
    """Token caps (train, validation): max_tokens, and val_tokens or else val_fraction of max_tokens (None: no cap)."""
    if data_cfg.val_tokens is not None:
        return data_cfg.max_tokens, data_cfg.val_tokens
    if data_cfg.max_tokens is None:
        return None, None
    return data_cfg.max_tokens, max(1, int(data_cfg.max_tokens * data_cfg.val_fraction))


def describe(data_cfg) -> str:
    """One line saying what data.* reads: source, subset, streaming, cap, tokenizer (no network)."""
    src = resolve_source(data_cfg)
    if src.kind == "bundled":
        where = f"{data_cfg.dataset} (bundled, {os.path.getsize(src.files[0]) / 1e6:.1f} MB)"
    elif src.kind == "task":
        where = f"the {data_cfg.dataset} task of tasks.py ({Path(src.files[0]).parent})"
    elif src.kind == "files":
        n_files = f"{len(src.files)} file{'s' if len(src.files) > 1 else ''}"
        where = f"{src.path} files {SHORT.repr(data_cfg.data_files)} ({n_files})"
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

r"""The on-disk token cache: documents -> one flat array of ids, tokenized once and read back checked.

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
so; when the text is gone too, the error says both. `data_checks.usable_folder` checks that
`data.cache_dir` is a folder this process can write in before anything is read or tokenized.

References: nanoGPT data/openwebtext/prepare.py (map-tokenize, one uint16 memmap); the MDLM
code base (kuleshov-group/mdlm, dataloader.py), whose `wrap` option packs OpenWebText the same way.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pyarrow.compute as pc

from .data_checks import DataError
from .sources import Source, describe, documents, resolve_source, token_caps

__all__ = ["load_tokens", "CACHE_VERSION"]

CHUNK_DOCS = 50_000  # documents per map() call: bounds memory, lets max_tokens stop early
STREAM_BATCH = 1_000  # documents encoded together when streaming
CACHE_VERSION = 2  # 2: validation carved by characters, not by document count
CHECK_CHUNK = 1 << 24  # bytes read at a time when checksumming a token file
SHORT_VALIDATION = 1_000  # characters: a char missing from training in a validation split this short means "too short"


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


def _too_short(data_cfg, src: Source, docs) -> str | None:
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


def _cache_paths(data_cfg, tokenizer, split: str, src: Source) -> tuple[Path, Path, dict]:
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
    src = resolve_source(data_cfg)
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


def _tokenize(data_cfg, tokenizer, split: str, src: Source, bin_path: Path, meta_path: Path, key: dict) -> np.ndarray:
    """Tokenize `split` into the cache (token file, then its sidecar with the checksum) and return it as a memmap."""
    started = time.time()
    docs, skip = documents(data_cfg, split)
    if src.kind == "hub":  # loading may have told the Hugging Face cache the branch's commit: key by it now
        bin_path, meta_path, key = _cache_paths(data_cfg, tokenizer, split, src)
        tokens, _ = _cached(bin_path, meta_path, tokenizer, split)
        if tokens is not None:
            return tokens
    train_cap, val_cap = token_caps(data_cfg)
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

r"""Text in, packed token blocks out: Hugging Face `datasets` -> one flat array of ids -> (B, T) batches.

This file ties the data path together and is where callers import it from
(`data.load_tokens`, `data.BlockLoader`, ...). Each step has its own file:

    sources.py      where the text comes from (bundled corpus, local files, a local dataset
                    folder, the Hugging Face hub, streaming) and how it splits into training
                    and validation
    token_cache.py  documents -> token ids, packed with end-of-text separators, written once
                    into data.cache_dir and read back as a checked memmap
    loader.py       the BlockLoader: seeded, resumable (B, T) batches of the flat token array
    data_checks.py  DataError, a writable cache folder, UTF-8 and JSON-lines checks

`build_tokenizer`, the one function defined here, makes the tokenizer data.tokenizer names;
a char tokenizer takes its vocabulary from the training text that sources.py reads.
"""
from __future__ import annotations

from . import tokenize
from .data_checks import DataError, usable_folder
from .loader import BlockLoader
from .sources import HUB_DATASETS, describe, load_splits, load_text, resolve_source
from .token_cache import STREAM_BATCH, load_tokens

__all__ = ["HUB_DATASETS", "DataError", "build_tokenizer", "load_text", "load_tokens", "load_splits", "BlockLoader",
           "describe", "usable_folder"]


def build_tokenizer(data_cfg) -> tokenize.Tokenizer:
    """The tokenizer named by data.tokenizer; "char" takes its vocabulary from the training text."""
    if data_cfg.tokenizer != "char":
        return tokenize.get_tokenizer(data_cfg.tokenizer)
    if resolve_source(data_cfg).streaming:
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

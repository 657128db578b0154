"""Checks on data before it is read, and the one error every data file raises.

- `DataError`: data that cannot be read or used; its one-line message names the problem and the fix.
- `usable_folder`: a folder this process can write in (data.cache_dir, train.out_dir), checked
  before anything is downloaded or tokenized.
- `check_utf8`, `check_json`: local text and JSON files, read by hand to name the first bad
  file, byte or line, where `datasets` would store bad bytes silently or fail with a bare
  "StopIteration".

sources.py, token_cache.py and loader.py import this file; it imports nothing from the package.
"""
from __future__ import annotations

import codecs
import json
import os
import reprlib
import tempfile
from pathlib import Path

__all__ = ["DataError", "usable_folder", "check_json", "check_utf8"]

COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")  # local files read through a decompressor: not checked by hand


class DataError(ValueError):
    """Data that cannot be read or used; the message names the problem and the fix."""


SHORT = reprlib.Repr()  # repr for messages: a long path list or string is cut, never quoted whole
SHORT.maxstring, SHORT.maxlist, SHORT.maxother = 200, 4, 200


def usable_folder(path, key: str) -> None:
    """Make sure `path` is a folder this process can write files in, creating it if missing; else a DataError.

    `key` names the setting that holds the path (``data.cache_dir``, ``train.out_dir``) so the
    one-line message says what to change. Writing a temporary file is the only test that
    holds everywhere: permission bits say nothing for root, for /proc and /sys, or for a
    read-only mount.
    """
    folder = Path(path)
    shown = SHORT.repr(str(path))
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


def check_json(files) -> None:
    """After datasets failed on JSON files: name the first bad file and line, or say that none has a record."""
    problems = {file: _json_problem(file) for file in files if not file.endswith(COMPRESSED)}
    broken = [(file, problem) for file, problem in problems.items() if problem not in (None, "no records")]
    if broken:
        file, problem = broken[0]
        raise DataError(f"{file}: {problem}; fix it (JSON lines: one object per line, e.g. {{\"text\": \"...\"}}) "
                        f"or leave the file out of data.data_files")
    if problems and all(problem == "no records" for problem in problems.values()):
        raise DataError(f"no records in {SHORT.repr(list(problems))[1:-1]}; write one JSON object per line, e.g. "
                        f"{{\"text\": \"...\"}}, or point data.data_files at files that hold some")


def check_utf8(files) -> None:
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

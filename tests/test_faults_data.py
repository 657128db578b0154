"""Faults injected into the data path: a damaged token cache, an unusable data.cache_dir, empty or
malformed JSON, a char corpus too short for its validation split. Each must be caught with one line
that names the problem and the fix (or, for the cache, repaired with one line that says so)."""
import hashlib
import json
import os

import datasets
import numpy as np
import pytest

from conftest import CORPUS, assert_one_line_error, write_config
from dllm_lite import data, token_cache, tokenize, train
from dllm_lite.config import DataSection


def char_corpus(tmp_path) -> DataSection:
    """A char-level data section over conftest's corpus, caching in tmp_path/cache."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    return DataSection(dataset="text", data_files=str(corpus), tokenizer="char", cache_dir=str(tmp_path / "cache"))


def same_size_valid_ids(bin_path, meta, tok):
    """Overwrite the tokens with other ids of the vocabulary: same size, every id valid, the text gone."""
    ids = np.fromfile(bin_path, dtype=meta["dtype"])
    np.random.default_rng(0).permutation(ids).tofile(bin_path)


def random_bytes(bin_path, meta, tok):
    bin_path.write_bytes(os.urandom(bin_path.stat().st_size))  # ids far past the vocabulary: an IndexError before


def truncated(bin_path, meta, tok):
    bin_path.write_bytes(bin_path.read_bytes()[:-2])


def old_sidecar(bin_path, meta, tok):
    """The sidecar as the version before checksums wrote it (and tokens no longer matching it)."""
    same_size_valid_ids(bin_path, meta, tok)
    old = {key: meta[key] for key in ("dtype", "n_tokens", "source", "key")}
    bin_path.with_suffix(".json").write_text(json.dumps(old))


def foreign_ids(bin_path, meta, tok):
    """A sidecar whose id range does not fit this tokenizer (as a cache copied from another one would have)."""
    bin_path.with_suffix(".json").write_text(json.dumps({**meta, "max_id": tok.mask_id}))


DAMAGES = [(same_size_valid_ids, "checksum does not match"), (random_bytes, "checksum does not match"),
           (truncated, "not the"), (old_sidecar, "no checksum (written by an older dllm_lite)"),
           (foreign_ids, "past this tokenizer's text ids")]


@pytest.mark.parametrize("damage, why", DAMAGES, ids=[damage.__name__ for damage, _ in DAMAGES])
def test_a_damaged_token_cache_is_seen_said_and_tokenized_again(tmp_path, capsys, damage, why):
    cfg = char_corpus(tmp_path)
    tok = data.build_tokenizer(cfg)
    first = np.array(data.load_tokens(cfg, tok, "train"))
    (bin_path,) = (tmp_path / "cache").glob("*-train-*.bin")
    meta = json.loads(bin_path.with_suffix(".json").read_text())
    damage(bin_path, meta, tok)
    capsys.readouterr()
    again = data.load_tokens(cfg, tok, "train")
    cut = int(len(CORPUS) * 0.95)
    assert tok.decode(again[:-1]) == CORPUS[:cut] and np.array_equal(again, first)  # the real text, not the damage
    notice, tokenized = capsys.readouterr().out.splitlines()
    assert notice.startswith("data: train: not using the cached tokens") and why in notice
    assert notice.endswith("tokenizing again") and tokenized.startswith("data: train: tokenized")
    assert json.loads(bin_path.with_suffix(".json").read_text()) == meta
    assert (meta["min_id"], meta["max_id"]) == (int(first.min()), int(first.max())) and len(meta["sha256"]) == 64
    data.load_tokens(cfg, tok, "train")
    assert "from cache" in capsys.readouterr().out  # repaired: trusted again


def test_a_damaged_cache_whose_text_is_gone_is_one_line_naming_both(tmp_path, monkeypatch):
    cfg = char_corpus(tmp_path)
    tok = data.build_tokenizer(cfg)
    data.load_tokens(cfg, tok, "train")
    (bin_path,) = (tmp_path / "cache").glob("*-train-*.bin")
    random_bytes(bin_path, None, tok)

    def gone(*args, **kwargs):
        raise data.DataError("could not load 'owner/corpus': HF_HUB_OFFLINE=1 is set and it is not cached")

    monkeypatch.setattr(token_cache, "documents", gone)
    with pytest.raises(data.DataError) as error:
        data.load_tokens(cfg, tok, "train")
    message = str(error.value)
    assert "\n" not in message and str(bin_path) in message
    assert "checksum does not match" in message and "nor made again: could not load 'owner/corpus'" in message


def test_the_checksum_reads_the_file_in_chunks(tmp_path, monkeypatch):
    path = tmp_path / "tokens.bin"
    np.arange(1000, dtype=np.uint16).tofile(path)
    whole = token_cache._checksum(path)
    monkeypatch.setattr(token_cache, "CHECK_CHUNK", 6)  # 334 reads, the last one short
    assert token_cache._checksum(path) == whole == hashlib.sha256(path.read_bytes()).hexdigest()


def blocked_paths(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("a file, not a folder")
    return [(afile, "is a file, not a folder"), (afile / "cache", f"is inside {afile}, which is a file"),
            ("/proc/dllm_lite_cache", "cannot be created"), ("/sys/dllm_lite_cache", "cannot be created"),
            ("/proc", "cannot be written in")]


def test_an_unusable_cache_dir_is_one_line_before_anything_is_read(tmp_path, monkeypatch):
    cfg = char_corpus(tmp_path)

    def never(*args, **kwargs):
        raise AssertionError("nothing may be loaded or tokenized into an unusable cache_dir")

    monkeypatch.setattr(datasets, "load_dataset", never)
    byte = tokenize.get_tokenizer("byte")
    for path, reason in blocked_paths(tmp_path):
        cfg.cache_dir = str(path)
        for call in (lambda: data.build_tokenizer(cfg), lambda: data.load_tokens(cfg, byte, "train")):
            with pytest.raises(data.DataError) as error:
                call()
            message = str(error.value)
            assert "\n" not in message and message.startswith(f"data.cache_dir={str(path)!r} {reason}")
            assert message.endswith("; set data.cache_dir to a writable folder")
    assert not os.path.exists("/proc/dllm_lite_cache") and not os.path.exists("/sys/dllm_lite_cache")


def test_usable_folder_creates_a_missing_folder_and_names_the_key_it_checks(tmp_path):
    folder = tmp_path / "runs" / "new"
    assert data.usable_folder(folder, "train.out_dir") is None and folder.is_dir()
    assert list(folder.iterdir()) == []  # the probe file is gone
    with pytest.raises(data.DataError, match=r"^train.out_dir='/proc/x' cannot be created .*set train.out_dir to"):
        data.usable_folder("/proc/x", "train.out_dir")


def test_the_train_command_says_one_line_for_an_unusable_cache_dir(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("a file")
    code = train.main(["--config", str(write_config(tmp_path)), f"data.cache_dir={afile}"])
    assert_one_line_error(code, capsys.readouterr().err, "data.cache_dir=", "is a file", "writable folder")


def load_json(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return data.load_text(DataSection(dataset="json", data_files=str(path), cache_dir=str(tmp_path / "cache")),
                          "train")


@pytest.mark.parametrize("name, text", [("empty.jsonl", ""), ("blank.jsonl", "\n  \n"), ("empty.json", "[]"),
                                        ("object.json", "{}")])
def test_a_json_file_without_records_is_named(tmp_path, capfd, name, text):
    with pytest.raises(data.DataError) as error:
        load_json(tmp_path, name, text)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"no records in '{tmp_path / name}'")
    assert "one JSON object per line" in message


@pytest.mark.parametrize("name, text, line", [
    ("broken.jsonl", '{"text": "one"}\n{"text": "two"\n{"text": "three"}\n', 2),
    ("first.jsonl", '{"text": "one",}\n{"text": "two"}\n', 1),
    ("pretty.json", '{\n  "text": "one",\n  "id": 1,,\n  "more": 2\n}\n', 3),
    ("quote.jsonl", '{"text": "one"}\n\n{"text": "it\'s ok"}\n{\'text\': \'single quotes\'}\n', 4),
])
def test_malformed_json_names_the_file_and_the_line(tmp_path, capfd, name, text, line):
    with pytest.raises(data.DataError) as error:
        load_json(tmp_path, name, text)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / name}: line {line} is not valid JSON (")
    assert "data.data_files" in message
    assert "Failed to load JSON" not in capfd.readouterr().err  # datasets' own log line would be a second line


def test_an_empty_json_file_beside_a_good_one_is_fine(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "good.jsonl").write_text("\n".join(json.dumps({"text": f"record {i}"}) for i in range(20)))
    cfg = DataSection(dataset="json", data_files=str(tmp_path / "*.jsonl"), cache_dir=str(tmp_path / "cache"))
    assert len(data.load_text(cfg, "train")) >= 19


def test_a_char_corpus_too_short_for_a_validation_split_says_so(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be, that is the question.\n")  # validation: its last 3 characters, 'n.\n'
    cfg = DataSection(dataset="text", data_files=str(short), tokenizer="char", cache_dir=str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="too short"):
        tok = data.build_tokenizer(cfg)
        data.load_tokens(cfg, tok, "train")
        with pytest.raises(data.DataError) as error:
            data.load_tokens(cfg, tok, "validation")
    message = str(error.value)
    assert "\n" not in message and "not in this char tokenizer" not in message
    assert message.startswith(f"{short} is too short for a validation split: validation is 3 characters")
    assert "'\\n', '.'" in message and "use a longer text" in message

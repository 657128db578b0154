"""Tests for dllm_lite.data: every source kind, the cache, offline failures, and the BlockLoader.

No test touches the network: hub names are either stopped by a closed connection check or
replaced by a local folder laid out like a hub repository. Every file lives in tmp_path.
"""
import json
import re
import time
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from dllm_lite import data, sources, token_cache, tokenize
from dllm_lite.config import ConfigError, DataSection, config_from_dict


def section(tmp_path, **kwargs) -> DataSection:
    """A data section whose caches live in tmp_path."""
    return DataSection(cache_dir=str(tmp_path / "cache"), **kwargs)


def test_bundled_shakespeare_gpt2_is_a_contiguous_character_split(tmp_path, gpt2, shakespeare):
    cfg = section(tmp_path)
    train, val = data.load_tokens(cfg, gpt2, "train"), data.load_tokens(cfg, gpt2, "validation")
    cut = int(len(shakespeare) * 0.95)  # the last 5 % of the characters is validation
    encoding = gpt2.encoding
    assert train.dtype == np.uint16 and train.ndim == 1
    assert train.tolist() == encoding.encode_ordinary(shakespeare[:cut]) + [gpt2.eot_id]
    assert val.tolist() == encoding.encode_ordinary(shakespeare[cut:]) + [gpt2.eot_id]
    # 338,025 tokens for the whole text; the cut splits one word into 3 tokens (+2) and each split ends in eot (+2)
    assert len(train) + len(val) == 338_025 + 2 + 2


def test_bundled_shakespeare_char_vocabulary_and_round_trip(tmp_path, shakespeare):
    cfg = section(tmp_path, tokenizer="char")
    tok = data.build_tokenizer(cfg)
    assert (tok.vocab_size, tok.eot_id, tok.mask_id) == (67, 65, 66)  # 65 characters, eot, [MASK]
    train, val = data.load_tokens(cfg, tok, "train"), data.load_tokens(cfg, tok, "validation")
    assert len(train) + len(val) == len(shakespeare) + 2 == 1_115_396  # each split ends in eot
    assert train[-1] == val[-1] == tok.eot_id
    assert tok.decode(train[:-1]) + tok.decode(val[:-1]) == shakespeare


def test_char_vocabulary_comes_from_training_text_only(tmp_path):
    path = tmp_path / "abz.txt"
    path.write_text("ab" * 1000 + "z" * 2000)  # the last half (from character 2000 on) holds the only z's
    cfg = section(tmp_path, dataset="text", data_files=str(path), tokenizer="char", val_fraction=0.5)
    tok = data.build_tokenizer(cfg)
    assert tok.chars == ["a", "b"] and len(data.load_tokens(cfg, tok, "train")) == 2000 + 1  # + eot
    with pytest.raises(data.DataError, match="'z'.*training text lacks.*data.tokenizer=byte"):
        data.load_tokens(cfg, tok, "validation")  # 2000 characters of validation: not too short, just unseen


def test_second_load_reads_the_cache_without_tokenizing(tmp_path, monkeypatch, capsys, gpt2):
    cfg = section(tmp_path, val_fraction=0.5)
    first = np.array(data.load_tokens(cfg, gpt2, "validation"))
    assert "tokenized" in capsys.readouterr().out

    def no_loading(*args, **kwargs):
        raise AssertionError("the second load must come from the cache")

    monkeypatch.setattr(token_cache, "documents", no_loading)
    monkeypatch.setattr(datasets, "load_dataset", no_loading)
    again = data.load_tokens(cfg, gpt2, "validation")
    out = capsys.readouterr().out
    assert "from cache" in out and out.count("\n") == 1
    assert isinstance(again, np.memmap) and np.array_equal(again, first)
    files = sorted(p.suffix for p in (tmp_path / "cache").iterdir() if p.is_file())
    assert files == [".bin", ".json"]  # no temporary file left behind
    meta = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert meta["dtype"] == "uint16" and meta["n_tokens"] == len(first)


def test_changed_settings_or_files_give_a_new_cache_entry(tmp_path, gpt2):
    doc = tmp_path / "doc.txt"
    doc.write_text("one two three four five six seven eight nine ten")
    cfg = section(tmp_path, dataset="text", data_files=str(doc), tokenizer="byte")
    full = data.load_tokens(cfg, tokenize.get_tokenizer("byte"), "train")
    capped = data.load_tokens(section(tmp_path, dataset="text", data_files=str(doc), max_tokens=5),
                              tokenize.get_tokenizer("byte"), "train")
    assert len(capped) == 5 and np.array_equal(capped, full[:5])
    new_text = "completely different text, and longer than before"
    doc.write_text(new_text)
    byte = tokenize.get_tokenizer("byte")
    changed = data.load_tokens(cfg, byte, "train")
    assert byte.decode(changed) == new_text[:len(changed) - 1] + "<|endoftext|>"


def test_val_tokens_slices_training_and_keeps_the_same_validation(tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("".join(chr(97 + i % 26) for i in range(2000)))
    byte = tokenize.get_tokenizer("byte")
    whole = data.load_tokens(section(tmp_path, dataset="text", data_files=str(doc), tokenizer="byte"), byte, "validation")
    for max_tokens in (50, 500):
        cfg = section(tmp_path, dataset="text", data_files=str(doc), tokenizer="byte", max_tokens=max_tokens, val_tokens=80)
        assert len(data.load_tokens(cfg, byte, "train")) == max_tokens
        validation = data.load_tokens(cfg, byte, "validation")
        assert len(validation) == 80 and np.array_equal(validation, whole[:80])
    assert "first 80 validation tokens" in data.describe(cfg)


def test_local_text_glob_and_list_each_file_is_one_document(tmp_path, gpt2):
    folder = tmp_path / "texts"
    folder.mkdir()
    docs = {f"{i}.txt": f"file {i}\nsecond line of file {i}\n" for i in range(6)}
    for name, text in docs.items():
        (folder / name).write_text(text)
    cfg = section(tmp_path, dataset="text", data_files=str(folder / "*.txt"), val_fraction=0.34)
    train, val = list(data.load_text(cfg, "train")["text"]), list(data.load_text(cfg, "validation")["text"])
    total = sum(len(text) for text in docs.values())
    assert sum(len(text) for text in val) == total - int(total * 0.66)  # the last 34 % of the characters
    joined = "".join(train + val)  # the documents in the seeded order, one of them cut between the splits
    assert len(joined) == total
    assert sorted(re.findall(r"file \d\nsecond line of file \d\n", joined)) == sorted(docs.values())
    listed = section(tmp_path, dataset="text", data_files=[str(folder / "0.txt"), str(folder / "1.txt")])
    train, val = (data.load_tokens(listed, gpt2, split) for split in ("train", "validation"))
    # training: a whole file and the head of the other, each followed by eot; validation: the tail and its eot
    assert (np.asarray(train) == gpt2.eot_id).sum() == 2 and (np.asarray(val) == gpt2.eot_id).sum() == 1
    whole, cut_file, rest = gpt2.decode(np.concatenate([train[:-1], val])).split("<|endoftext|>")
    assert sorted([whole, cut_file]) == [docs["0.txt"], docs["1.txt"]] and rest == ""


def test_validation_of_a_multi_file_corpus_is_val_fraction_of_its_text(tmp_path, gpt2):
    folder = tmp_path / "two"
    folder.mkdir()
    texts = ["the first file is about apples and pears. " * 70, "the second file is about ships at sea. " * 40]
    for i, text in enumerate(texts):
        (folder / f"{i}.txt").write_text(text)
    cfg = section(tmp_path, dataset="text", data_files=str(folder / "*.txt"))  # val_fraction 0.05
    train, val = data.load_tokens(cfg, gpt2, "train"), data.load_tokens(cfg, gpt2, "validation")
    assert 0.045 < len(val) / (len(train) + len(val)) < 0.055  # a split by documents gives one file of two: ~40 %
    train_text, val_text = data.load_text(cfg, "train")["text"], data.load_text(cfg, "validation")["text"]
    total = sum(len(text) for text in texts)
    assert sum(len(text) for text in val_text) == total - int(total * 0.95)  # exact to the character
    joined = "".join(list(train_text) + list(val_text))  # the cut file's head ends training, its tail starts validation
    assert joined in (texts[0] + texts[1], texts[1] + texts[0])
    assert (np.asarray(train) == gpt2.eot_id).sum() == 2 and (np.asarray(val) == gpt2.eot_id).sum() == 1


def test_a_text_too_short_for_the_validation_share_warns(tmp_path):
    for name, text in (("a.txt", "abc"), ("b.txt", "de")):
        (tmp_path / name).write_text(text)
    cfg = section(tmp_path, dataset="text", data_files=str(tmp_path / "*.txt"))
    with pytest.warns(UserWarning, match=r"validation is 1 character, 20\.0% .*not data.val_fraction=0.05") as caught:
        val = data.load_text(cfg, "validation")
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert len("".join(val["text"])) == 1


def test_local_json_with_a_text_field_and_a_seeded_split(tmp_path, gpt2):
    path = tmp_path / "docs.jsonl"
    records = [{"id": i, "body": f"record number {i}"} for i in range(40)]
    path.write_text("\n".join(json.dumps(record) for record in records))
    cfg = section(tmp_path, dataset="json", data_files=str(path), text_field="body", val_fraction=0.1)
    val = data.load_text(cfg, "validation")
    assert list(data.load_text(cfg, "validation")["body"]) == list(val["body"])  # the same split every time
    total = sum(len(record["body"]) for record in records)  # 630 characters
    assert sum(len(text) for text in val["body"]) == total - int(total * 0.9) == 63
    train = data.load_tokens(cfg, gpt2, "train")
    assert (np.asarray(train) == gpt2.eot_id).sum() == len(data.load_text(cfg, "train"))  # one eot per document
    with pytest.raises(data.DataError, match="no column 'text'.*data.text_field"):
        data.load_text(section(tmp_path, dataset="json", data_files=str(path)), "train")


def test_local_parquet(tmp_path):
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"text": ["ab", "cd", "ef", "gh"]}), path)
    cfg = section(tmp_path, dataset="parquet", data_files=str(path), tokenizer="byte", val_fraction=0.25)
    byte = tokenize.get_tokenizer("byte")
    train, val = data.load_tokens(cfg, byte, "train"), data.load_tokens(cfg, byte, "validation")
    assert len(train) == 6 + 3 and len(val) == 2 + 1  # each document followed by the byte tokenizer's eot (256)
    assert sorted(byte.decode(np.concatenate([train, val])).split("<|endoftext|>")) == ["", "ab", "cd", "ef", "gh"]


def make_hub_folder(root, splits=("train", "validation", "test"), docs_per_split=5):
    """A folder laid out like the hub's Salesforce/wikitext: README `configs:` header + parquet per config/split."""
    header = ["---", "configs:"]
    for subset in ("wikitext-2-raw-v1", "wikitext-103-raw-v1"):
        (root / subset).mkdir(parents=True)
        header += [f"- config_name: {subset}", "  data_files:"]
        for split in splits:
            texts = [f"{subset} {split} document {i} " * 3 for i in range(docs_per_split)]
            pq.write_table(pa.table({"text": texts}), root / subset / f"{split}-00000-of-00001.parquet")
            header += [f"  - split: {split}", f"    path: {subset}/{split}-*"]
    (root / "README.md").write_text("\n".join(header + ["---", "# a stand-in for a hub dataset", ""]))
    return root


def test_hub_layout_folder_loads_its_subset_and_own_validation_split(tmp_path, gpt2):
    folder = make_hub_folder(tmp_path / "wikitext")
    cfg = section(tmp_path, dataset=str(folder), subset="wikitext-103-raw-v1")
    val = data.load_text(cfg, "validation")
    assert val["text"][0].startswith("wikitext-103-raw-v1 validation document 0")
    tokens = data.load_tokens(cfg, gpt2, "train")
    assert gpt2.decode(tokens).count("wikitext-103-raw-v1 train document") == 15
    with pytest.raises(data.DataError, match="data.subset"):
        data.load_text(section(tmp_path, dataset=str(folder), subset="nope"), "train")


def test_hub_names_go_through_the_same_load_dataset_call(tmp_path, monkeypatch):
    calls = []

    def record(path, **kwargs):
        calls.append((path, kwargs))
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(sources, "_hub_reachable", lambda endpoint: True)
    monkeypatch.setattr(datasets, "load_dataset", record)
    folder = make_hub_folder(tmp_path / "wikitext")
    for dataset in ("wikitext", str(folder)):
        with pytest.raises(data.DataError, match="stop here"):
            data.load_text(section(tmp_path, dataset=dataset, subset="wikitext-2-raw-v1"), "train")
    (hub_path, hub_kwargs), (folder_path, folder_kwargs) = calls
    assert (hub_path, folder_path) == ("Salesforce/wikitext", str(folder))
    assert hub_kwargs["name"] == folder_kwargs["name"] == "wikitext-2-raw-v1"
    assert hub_kwargs["streaming"] is folder_kwargs["streaming"] is False
    assert hub_kwargs["revision"] is None and "revision" not in folder_kwargs  # a folder has no revision


def serve_hub_dataset(monkeypatch, tmp_path, texts_at):
    """Stand in for the hub: load_dataset('owner/corpus', revision=r) gives one document of texts_at(r), and
    records the commit it resolved r to in the Hugging Face cache's refs/ as hf_hub_download does."""
    calls = []
    hub_cache = tmp_path / "hf_hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(sources, "_hub_reachable", lambda endpoint: True)

    def load_dataset(path, name=None, revision=None, **kwargs):
        calls.append((path, revision))
        text, commit = texts_at(revision)
        ref = hub_cache / "datasets--owner--corpus" / "refs" / (revision or "main")
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": [text]}),
                                     "validation": datasets.Dataset.from_dict({"text": [text.upper()]})})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls, hub_cache / "datasets--owner--corpus" / "refs" / "main"


def test_each_hub_revision_is_loaded_and_cached_on_its_own(tmp_path, monkeypatch):
    versions = {"v1": ("the corpus as it was at first", "1" * 40), "v2": ("the corpus once it was edited", "2" * 40)}
    calls, _ = serve_hub_dataset(monkeypatch, tmp_path, versions.get)
    byte = tokenize.get_tokenizer("byte")
    for revision, (text, _) in versions.items():
        tokens = data.load_tokens(section(tmp_path, dataset="owner/corpus", revision=revision), byte, "train")
        assert byte.decode(tokens) == text + "<|endoftext|>"
    assert calls == [("owner/corpus", "v1"), ("owner/corpus", "v2")]
    assert len(list((tmp_path / "cache").glob("*.bin"))) == 2
    again = data.load_tokens(section(tmp_path, dataset="owner/corpus", revision="v1"), byte, "train")
    assert byte.decode(again) == versions["v1"][0] + "<|endoftext|>" and len(calls) == 2  # from the cache
    assert "at revision v1" in data.describe(section(tmp_path, dataset="owner/corpus", revision="v1"))


def test_a_new_commit_of_the_default_branch_is_tokenized_again(tmp_path, monkeypatch):
    hub = {"text": "the main branch at its first commit", "commit": "a" * 40}
    calls, main_ref = serve_hub_dataset(monkeypatch, tmp_path, lambda revision: (hub["text"], hub["commit"]))
    byte, cfg = tokenize.get_tokenizer("byte"), section(tmp_path, dataset="owner/corpus")
    first = byte.decode(data.load_tokens(cfg, byte, "train"))
    assert data.load_tokens(cfg, byte, "train").tolist() == byte.encode(first, allow_eot=True)  # cached under "a"*40
    assert len(calls) == 1 and main_ref.read_text() == "a" * 40
    hub.update(text="the main branch after a new commit", commit="b" * 40)
    main_ref.write_text("b" * 40)  # what any later download from the hub records
    assert byte.decode(data.load_tokens(cfg, byte, "train")) == hub["text"] + "<|endoftext|>"
    assert len(calls) == 2 and len(list((tmp_path / "cache").glob("*.bin"))) == 2
    assert token_cache._hub_commit("owner/corpus", "c" * 40) == "c" * 40  # a commit sha needs no lookup


def test_the_cache_key_follows_the_tokenizer_and_the_files(tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("some text to tokenize")
    cfg = section(tmp_path, dataset="text", data_files=str(doc))
    tokenizers = [tokenize.get_tokenizer("gpt2"), tokenize.get_tokenizer("byte"),
                  tokenize.get_tokenizer("char", text="abc"), tokenize.get_tokenizer("char", text="abd"),
                  tokenize.tokenizer_from_state({"name": "byte", "vocab_size": 257})]  # the layout without eot
    paths = {token_cache._cache_paths(cfg, tok, "train", sources.resolve_source(cfg))[0] for tok in tokenizers}
    assert len(paths) == len(tokenizers)
    before = token_cache._cache_paths(cfg, tokenizers[0], "train", sources.resolve_source(cfg))[0]
    doc.write_text("other text, same tokenizer")
    assert token_cache._cache_paths(cfg, tokenizers[0], "train", sources.resolve_source(cfg))[0] != before


def test_revision_is_only_for_hub_datasets(tmp_path):
    with pytest.raises(ConfigError, match="data.revision is for hub datasets.*remove data.revision"):
        config_from_dict({"data": {"dataset": "tiny_shakespeare", "revision": "main"}})
    with pytest.raises(ConfigError, match="data.revision is empty"):
        config_from_dict({"data": {"dataset": "wikitext", "revision": " "}})
    assert config_from_dict({"data": {"dataset": "wikitext", "revision": "main"}}).data.revision == "main"
    with pytest.raises(data.DataError, match="data.revision.*remove data.revision"):
        data.describe(section(tmp_path, dataset=str(make_hub_folder(tmp_path / "folder")), revision="v1"))


def test_a_stream_without_validation_carves_its_first_tokens(tmp_path, gpt2):
    folder = make_hub_folder(tmp_path / "stream", splits=("train",), docs_per_split=40)
    cfg = section(tmp_path, dataset=str(folder), subset="wikitext-2-raw-v1", streaming=True, max_tokens=500,
                  val_fraction=0.1)
    assert isinstance(data.load_text(cfg, "train"), datasets.IterableDataset)
    val, train = data.load_tokens(cfg, gpt2, "validation"), data.load_tokens(cfg, gpt2, "train")
    assert len(val) == 50 and len(train) == 500
    doc_tokens = len(gpt2.encode("wikitext-2-raw-v1 train document 0 " * 3)) + 1  # 1-digit doc numbers
    assert gpt2.decode(val).startswith("wikitext-2-raw-v1 train document 0 ")
    # validation took whole documents 0 and 1 (the second cut short); training starts at document 2
    assert doc_tokens < 50 < 2 * doc_tokens
    assert gpt2.decode(train).startswith("wikitext-2-raw-v1 train document 2 ")
    with pytest.raises(data.DataError, match="data.max_tokens"):
        data.load_tokens(section(tmp_path, dataset=str(folder), subset="wikitext-2-raw-v1", streaming=True),
                         gpt2, "train")
    with pytest.raises(data.DataError, match="char.*stream"):
        data.build_tokenizer(section(tmp_path, dataset="openwebtext", tokenizer="char"))


def test_a_stream_used_up_by_validation_says_so_and_names_the_fix(tmp_path, gpt2):
    # small.yaml streams with max_tokens=2e9: its validation slice (5%) swallows a small local text whole
    text = tmp_path / "small.txt"
    text.write_text("a short local text, far below the validation slice.\n" * 20)
    cfg = section(tmp_path, dataset="text", data_files=str(text), streaming=True, max_tokens=2_000_000_000)
    with pytest.raises(data.DataError, match="kept for validation.*data.streaming=false"):
        data.load_tokens(cfg, gpt2, "train")


def test_a_bundled_corpus_is_read_whole_even_when_the_config_streams(tmp_path, gpt2, shakespeare):
    cfg = section(tmp_path, streaming=True, max_tokens=2_000_000_000)
    assert "streamed" not in data.describe(cfg) and "the last 5% of the text" in data.describe(cfg)
    val, train = data.load_tokens(cfg, gpt2, "validation"), data.load_tokens(cfg, gpt2, "train")
    assert len(train) > 10 * len(val) > 0


def test_unreachable_hub_fails_fast_with_the_offline_options(tmp_path, monkeypatch, gpt2):
    def refused(*args, **kwargs):
        raise ConnectionRefusedError("closed")

    def never(*args, **kwargs):
        raise AssertionError("load_dataset must not run when the hub is unreachable")

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(sources.socket, "create_connection", refused)
    monkeypatch.setattr(datasets, "load_dataset", never)
    started = time.time()
    with pytest.raises(data.DataError) as error:
        data.load_tokens(section(tmp_path, dataset="openwebtext", max_tokens=1000), gpt2, "train")
    message = str(error.value)
    assert time.time() - started < 10 and "\n" not in message
    assert "cannot be reached" in message and "data.dataset=tiny_shakespeare" in message
    assert "data.dataset=text data.data_files=path/*.txt" in message


def test_offline_mode_names_itself_when_the_dataset_is_not_cached(tmp_path, monkeypatch, gpt2):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    started = time.time()
    with pytest.raises(data.DataError, match="HF_HUB_OFFLINE=1.*tiny_shakespeare") as error:
        data.load_tokens(section(tmp_path, dataset="dllm-lite-tests/never-published"), gpt2, "train")
    assert time.time() - started < 10 and "\n" not in str(error.value)


def test_a_file_that_is_not_utf8_is_named(tmp_path, gpt2):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(data.DataError, match=r"latin1.txt is not UTF-8 .*offset 3.*convert it to UTF-8"):
        data.load_tokens(section(tmp_path, dataset="text", data_files=str(bad)), gpt2, "train")


def test_empty_or_missing_data_is_a_clear_error(tmp_path, gpt2):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(data.DataError, match="no text"):
        data.load_tokens(section(tmp_path, dataset="text", data_files=str(empty)), gpt2, "train")
    with pytest.raises(data.DataError, match="matches no file"):
        data.load_tokens(section(tmp_path, dataset="text", data_files=str(tmp_path / "*.md")), gpt2, "train")
    with pytest.raises(data.DataError, match="did you mean 'openwebtext'"):
        data.describe(section(tmp_path, dataset="openwebtxt"))


def test_describe_is_one_line(tmp_path):
    line = data.describe(section(tmp_path))
    assert "tiny_shakespeare" in line and "gpt2" in line and "\n" not in line
    assert "streamed" in data.describe(section(tmp_path, dataset="c4", max_tokens=10**6))


TOKENS = np.arange(10 * 7 + 3, dtype=np.uint16)  # 10 blocks of 7 and a 3-token tail


def take(loader, n):
    return [loader.next_batch() for _ in range(n)]


def test_block_loader_batches_are_whole_blocks_in_a_seeded_order():
    loader = data.BlockLoader(TOKENS, seq_len=7, batch_size=2, seed=3)
    assert loader.n_blocks == 10 and loader.steps_per_epoch == 5 and loader.tokens_per_batch == 14
    epoch = torch.cat(take(loader, 5))  # (10, 7)
    assert epoch.dtype == torch.long and epoch.shape == (10, 7)
    assert sorted(row[0].item() // 7 for row in epoch) == list(range(10))  # every block once
    assert all(torch.equal(row, torch.arange(row[0], row[0] + 7)) for row in epoch)
    same = torch.cat(take(data.BlockLoader(TOKENS, 7, 2, seed=3), 5))
    other = torch.cat(take(data.BlockLoader(TOKENS, 7, 2, seed=4), 5))
    assert torch.equal(epoch, same) and not torch.equal(epoch, other)


def test_block_loader_epochs_wrap_with_a_new_order():
    loader = data.BlockLoader(TOKENS, seq_len=7, batch_size=3)  # 3 steps of 9 blocks per epoch
    first, second = torch.cat(take(loader, 3)), torch.cat(take(loader, 3))
    assert loader.state_dict()["epoch"] == 1
    assert len({row[0].item() for row in second}) == 9 and not torch.equal(first, second)


def test_two_ranks_see_exactly_what_one_process_sees():
    single = data.BlockLoader(TOKENS, seq_len=7, batch_size=4, seed=1)
    ranks = [data.BlockLoader(TOKENS, seq_len=7, batch_size=2, seed=1, rank=r, world_size=2) for r in range(2)]
    for _ in range(5):  # crosses two epoch boundaries (2 steps per epoch)
        assert torch.equal(single.next_batch(), torch.cat([rank.next_batch() for rank in ranks]))


def test_state_dict_resume_gives_the_same_batches():
    loader = data.BlockLoader(TOKENS, seq_len=7, batch_size=3, seed=5)
    take(loader, 4)
    state = loader.state_dict()
    assert all(type(value) is int for value in state.values())
    expected = take(loader, 5)
    resumed = data.BlockLoader(TOKENS, seq_len=7, batch_size=3, seed=5)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    assert all(torch.equal(a, b) for a, b in zip(expected, take(resumed, 5)))
    with pytest.raises(data.DataError, match="global_batch=3.*train.batch_size"):
        data.BlockLoader(TOKENS, seq_len=7, batch_size=2, seed=5).load_state_dict(state)


def test_too_few_blocks_for_one_batch_is_a_clear_error():
    with pytest.raises(data.DataError, match=r"73 tokens make 2 blocks of seq_len=32.*batch_size=2 x 2 ranks"):
        data.BlockLoader(TOKENS, seq_len=32, batch_size=2, world_size=2)


def test_num_proc_workers_give_the_same_tokens(tmp_path, gpt2):
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"record {i} " * (i % 5 + 1)}) for i in range(50)))
    cfg = section(tmp_path, dataset="json", data_files=str(path))
    one = data.load_tokens(cfg, gpt2, "train")
    two = data.load_tokens(DataSection(dataset="json", data_files=str(path), num_proc=2,
                                       cache_dir=str(tmp_path / "other_cache")), gpt2, "train")
    assert np.array_equal(one, two) and (np.asarray(two) == gpt2.eot_id).sum() == len(data.load_text(cfg, "train"))


def test_a_task_name_is_written_into_the_cache_once_and_read_as_pairs(tmp_path):
    cfg = section(tmp_path, dataset="addition", prompt_field="prompt", tokenizer="char")
    files = sources.task_files(cfg)
    folder = tmp_path / "cache" / "tasks" / "addition"
    assert files == {"test": folder / "test.jsonl", "train": folder / "train.jsonl"}
    lines = files["train"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == 20_000 and json.loads(lines[0]).keys() == {"prompt", "response"}
    assert len(files["test"].read_text(encoding="utf-8").splitlines()) == 500
    written = files["train"].stat().st_mtime_ns
    src = sources.resolve_source(cfg)
    assert (src.kind, src.path, src.files, src.streaming) == ("task", "json", (str(files["train"]),), False)
    assert files["train"].stat().st_mtime_ns == written  # found, not written again
    assert sorted(p.name for p in (tmp_path / "cache" / "tasks").iterdir()) == ["addition"]  # no temporary folder
    assert data.describe(cfg).startswith(f"the addition task of tasks.py ({folder})")
    splits, own_validation = data.load_splits(cfg)
    assert own_validation is None and len(splits["train"]) == 20_000


def test_a_task_cut_short_leaves_no_training_file(tmp_path, monkeypatch):
    cfg = section(tmp_path, dataset="sudoku")

    def cut_short(name, out_dir, n_train, n_test, seed=0):
        (Path(out_dir) / "train.jsonl").write_text('{"prompt": "1', encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(sources.tasks, "write_task", cut_short)
    with pytest.raises(KeyboardInterrupt):
        sources.task_files(cfg)
    assert list((tmp_path / "cache" / "tasks").iterdir()) == []  # neither a half file nor the temporary folder


def test_sft_char_trains_as_shipped_on_its_generated_task(tmp_path):
    from dllm_lite import evaluate, train

    config = Path(__file__).resolve().parent.parent / "configs" / "sft_char.yaml"
    tiny = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "train.batch_size=8", "train.max_steps=2",
            "train.eval_every=2", "train.eval_batches=1", "train.bound_samples=1", "train.log_every=1",
            "train.save_every=2", f"train.out_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}"]
    assert train.main(["--config", str(config), *tiny]) == 0
    task = tmp_path / "cache" / "tasks" / "addition"
    assert sorted(p.name for p in task.iterdir()) == ["test.jsonl", "train.jsonl"]
    test_pairs = task / "test.jsonl"  # the file the config's comment names
    assert evaluate.main(["--checkpoint", str(tmp_path / "run" / "latest.pt"), "--pairs", str(test_pairs),
                          "--steps", "1", "--batch-size", "500"]) == 0


def test_a_task_name_with_data_files_reads_those_pairs_in_its_place(tmp_path):
    # sft_char.yaml names the addition task; `data.data_files=my/pairs.jsonl` on the command line (the README's
    # and the experiments' way to train on a written task) must read that file, not refuse or write the task
    from dllm_lite.config import load_config

    pairs = tmp_path / "mine.jsonl"
    pairs.write_text('{"prompt": "ab", "response": "ba"}\n' * 40, encoding="utf-8")
    config = Path(__file__).resolve().parent.parent / "configs" / "sft_char.yaml"
    cfg = load_config(config, [f"data.data_files={pairs}", f"data.cache_dir={tmp_path / 'cache'}"])
    src = sources.resolve_source(cfg.data)
    assert (src.kind, src.path, src.files) == ("files", "json", (str(pairs),))
    assert not (tmp_path / "cache" / "tasks").exists()  # the task was not generated

"""Tests for dllm_lite.tokenize: bundled files, GPT-2 parity with tiktoken, char/byte, state round trips.

No test touches the network: tiktoken's downloads are pointed at a local cache
folder, and proxies at a closed local port so that a miss fails at once.
"""
import hashlib
import shutil
import time

import numpy as np
import pytest
import tiktoken
import tiktoken.registry
import torch

from dllm_lite import tokenize

ASSET_SHA256 = {
    "gpt2/vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "gpt2/encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "tinyshakespeare.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
}
# where tiktoken_ext/openai_public.py downloads GPT-2 from; tiktoken caches each under sha1(url)
GPT2_URLS = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}
UNICODE_TEXT = "naïve café, Ærøskøbing — 東京タワー 🙂👍🏽 é (e + \u0301) ∑x² \t\n  end"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty tiktoken cache folder, and every HTTP(S) request sent to a closed local port."""
    cache = tmp_path / "tiktoken_cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    return cache


@pytest.mark.parametrize("relative_path", sorted(ASSET_SHA256))
def test_bundled_files_have_expected_sha256(relative_path):
    data = (tokenize.ASSETS_DIR / relative_path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == ASSET_SHA256[relative_path]


def test_bundled_corpus_path(shakespeare):
    assert tokenize.bundled_corpus_path().name == "tinyshakespeare.txt"
    assert len(shakespeare) == 1_115_394 and len(set(shakespeare)) == 65
    with pytest.raises(ValueError, match="tiny_shakespeare"):
        tokenize.bundled_corpus_path("war_and_peace")


def test_gpt2_ids_equal_tiktoken_gpt2(offline, monkeypatch, gpt2, shakespeare):
    for filename, url in GPT2_URLS.items():
        shutil.copy(tokenize.ASSETS_DIR / "gpt2" / filename, offline / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "gpt2", raising=False)  # build it from the cache now
    reference = tiktoken.get_encoding("gpt2")
    ids = gpt2.encode(shakespeare)
    assert len(ids) == 338_025
    assert ids == reference.encode_ordinary(shakespeare)
    assert gpt2.encode(UNICODE_TEXT) == reference.encode_ordinary(UNICODE_TEXT)
    assert gpt2.encode("a<|endoftext|>b", allow_eot=True) == reference.encode("a<|endoftext|>b", allowed_special="all")


def test_gpt2_special_ids(gpt2):
    assert (gpt2.name, gpt2.vocab_size, gpt2.mask_id, gpt2.eot_id) == ("gpt2", 50258, 50257, 50256)
    assert gpt2.decode([gpt2.eot_id]) == "<|endoftext|>"
    assert gpt2.encode("<|endoftext|>") != [gpt2.eot_id]  # plain text unless allow_eot=True
    assert gpt2.encode("x<|endoftext|>", allow_eot=True)[-1] == gpt2.eot_id
    assert gpt2.decode(gpt2.encode("Hello") + [gpt2.mask_id]) == "Hello[MASK]"
    assert gpt2.decode([gpt2.mask_id] * 2, mask_text="_") == "__"


def test_gpt2_unicode_round_trip_and_batch(gpt2):
    texts = [UNICODE_TEXT, "", "plain ascii", "<|endoftext|>"]
    assert [gpt2.decode(gpt2.encode(text)) for text in texts] == texts
    assert gpt2.encode_batch(texts) == [gpt2.encode(text) for text in texts]


def test_decode_accepts_tensors_and_arrays(gpt2):
    ids = gpt2.encode("Masked diffusion") + [gpt2.mask_id]
    expected = gpt2.decode(ids)
    assert gpt2.decode(torch.tensor(ids)) == expected
    assert gpt2.decode(np.array(ids, dtype=np.int64)) == expected
    assert gpt2.decode(tuple(ids)) == expected
    with pytest.raises(ValueError, match="1-D"):
        gpt2.decode(torch.tensor([ids, ids]))
    with pytest.raises(ValueError, match="outside"):
        gpt2.decode([gpt2.vocab_size])


def test_char_round_trip_and_errors(shakespeare):
    char = tokenize.get_tokenizer("char", text=shakespeare)
    assert (char.vocab_size, char.mask_id, char.eot_id) == (67, 66, 65)  # 65 characters, then eot, then [MASK]
    assert char.chars == sorted(set(shakespeare))
    sample = shakespeare[:500]
    assert char.decode(char.encode(sample)) == sample
    assert char.decode([char.mask_id, char.encode("A")[0]]) == "[MASK]A"
    with pytest.raises(ValueError, match=r"'é'.*get_tokenizer\('char', text="):
        char.encode("café")
    with pytest.raises(ValueError, match="text="):
        tokenize.get_tokenizer("char")
    with pytest.raises(TypeError, match="char"):
        tokenize.get_tokenizer("byte", text="abc")
    unicode_char = tokenize.get_tokenizer("char", text=UNICODE_TEXT)
    assert unicode_char.decode(unicode_char.encode(UNICODE_TEXT)) == UNICODE_TEXT


def test_byte_round_trip_and_invalid_utf8():
    byte = tokenize.get_tokenizer("byte")
    assert (byte.vocab_size, byte.mask_id, byte.eot_id) == (258, 257, 256)  # 256 bytes, then eot, then [MASK]
    assert byte.encode("é") == [0xC3, 0xA9]
    assert byte.decode(byte.encode(UNICODE_TEXT)) == UNICODE_TEXT
    assert byte.decode([0xE2, 0x82]) == "\ufffd"  # a cut-off character does not raise
    assert byte.decode([0xFF, 257, 65], mask_text="_") == "\ufffd_A"


@pytest.mark.parametrize("name", ["char", "byte"])
def test_char_and_byte_eot_behaves_like_gpt2s(name, gpt2):
    tok = tokenize.get_tokenizer(name, **({"text": "ab<|endoftext|>"} if name == "char" else {}))
    assert tok.eot_id == tok.mask_id - 1 == tok.vocab_size - 2  # the mask stays last, eot just before it
    text = "ab<|endoftext|>ba<|endoftext|>"
    assert tok.encode(text, allow_eot=True) == tok.encode("ab") + [tok.eot_id] + tok.encode("ba") + [tok.eot_id]
    assert tok.eot_id not in tok.encode(text)  # plain text unless allow_eot=True, as for gpt2
    assert tok.decode(tok.encode(text, allow_eot=True)) == text == gpt2.decode(gpt2.encode(text, allow_eot=True))
    assert tok.decode([tok.eot_id, tok.mask_id, tok.eot_id], mask_text="_") == "<|endoftext|>_<|endoftext|>"


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="gpt2.*char.*byte.*cl100k_base"):
        tokenize.get_tokenizer("gpt5")


def test_undownloadable_tiktoken_encoding_fails_fast_with_offline_hint(offline, monkeypatch):
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "cl100k_base", raising=False)  # not loaded earlier
    start = time.monotonic()
    with pytest.raises(tokenize.EncodingDownloadError, match="could not download.*'gpt2'") as caught:
        tokenize.get_tokenizer("cl100k_base")
    assert time.monotonic() - start < 10
    assert isinstance(caught.value, RuntimeError) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["gpt2", "char", "byte"])
def test_state_dict_survives_weights_only_checkpoint(name, tmp_path, shakespeare):
    kwargs = {"text": shakespeare} if name == "char" else {}
    original = tokenize.get_tokenizer(name, **kwargs)
    torch.save({"tokenizer": original.state_dict()}, tmp_path / "checkpoint.pt")
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["tokenizer"]
    restored = tokenize.tokenizer_from_state(state)
    assert type(restored) is type(original)
    for attribute in ("name", "vocab_size", "mask_id", "eot_id"):
        assert getattr(restored, attribute) == getattr(original, attribute)
    sample = shakespeare[:300]
    assert restored.encode(sample) == original.encode(sample)
    assert restored.decode(original.encode(sample)) == sample


@pytest.mark.parametrize("name", ["char", "byte"])
def test_state_saved_before_the_eot_rebuilds_the_old_layout(name, tmp_path, shakespeare):
    old_state = {"name": "byte", "vocab_size": 257}  # what a byte checkpoint stored before the eot existed
    if name == "char":
        old_state = {"name": "char", "vocab_size": 66, "chars": sorted(set(shakespeare))}
    torch.save({"tokenizer": old_state}, tmp_path / "old.pt")
    state = torch.load(tmp_path / "old.pt", weights_only=True)["tokenizer"]
    old = tokenize.tokenizer_from_state(state)
    assert (old.vocab_size, old.mask_id, old.eot_id) == (old_state["vocab_size"], old_state["vocab_size"] - 1, None)
    assert old.state_dict() == old_state  # saved again, it is still the old layout
    sample = shakespeare[:300]
    new = tokenize.get_tokenizer(name, **({"text": shakespeare} if name == "char" else {}))
    assert old.encode(sample) == new.encode(sample)  # real ids are unchanged; only eot and mask were added/moved
    assert old.decode(old.encode(sample) + [old.mask_id]) == sample + "[MASK]"
    if name == "byte":  # no eot to parse the marker into: it stays plain text
        assert old.encode("<|endoftext|>", allow_eot=True) == list(b"<|endoftext|>")


def test_state_with_wrong_vocab_size_is_refused():
    state = tokenize.get_tokenizer("byte").state_dict()
    with pytest.raises(ValueError, match="different vocabulary"):
        tokenize.tokenizer_from_state({**state, "vocab_size": 300})

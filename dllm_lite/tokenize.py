"""Text <-> token ids, plus the extra [MASK] id that masked diffusion needs.

A masked diffusion language model (MDLM, Sahoo et al. 2024; LLaDA, Nie et al.
2025) corrupts text by replacing tokens with a special mask token m, so every
tokenizer here is an ordinary vocabulary with one id appended at the end:

    real ids: 0 .. vocab_size - 2        mask_id == vocab_size - 1  (always)

Three families, all with the same interface (``encode``, ``encode_batch``,
``decode``, ``vocab_size``, ``mask_id``, ``eot_id``, ``name``, ``state_dict``):

- ``"gpt2"``: GPT-2's byte-level BPE (Radford et al. 2019) run by tiktoken from the
  files bundled in ``dllm_lite/assets/gpt2``, never touching the network. Ids equal
  ``tiktoken.get_encoding("gpt2")``; <|endoftext|> = 50256, mask = 50257.
- any other tiktoken encoding (``"cl100k_base"``, ...): downloaded by tiktoken on
  first use, so it needs a network or a filled ``TIKTOKEN_CACHE_DIR``.
- ``"char"``: the sorted characters of a text (as in char-rnn / nanoGPT's
  shakespeare_char), then <|endoftext|>, then the mask. Tiny Shakespeare's 65
  characters give ids 0..64, eot 65, mask 66, vocab_size 67.
- ``"byte"``: the 256 UTF-8 byte values 0..255, then <|endoftext|> = 256, mask = 257.

The end-of-text id separates documents when a corpus is packed into one stream
(see data.py), and behaves exactly like GPT-2's: ``decode`` writes it as the text
"<|endoftext|>", and ``encode(text, allow_eot=True)`` reads that text back as the
id (without allow_eot it is ordinary text). Only a tiktoken encoding that lacks
<|endoftext|> has ``eot_id = None``.

``state_dict()`` holds only str / int / list values, so it can live inside a
checkpoint read with ``torch.load(weights_only=True)``; ``tokenizer_from_state``
rebuilds the tokenizer from it. Char and byte states record their ``eot_id``; a
state without one was written before they had an end-of-text token and rebuilds
that older layout (no eot, one id fewer: char = characters then mask, byte mask =
256), so old checkpoints keep loading.

References: tiktoken (github.com/openai/tiktoken, tiktoken_ext/openai_public.py);
GPT-2 encoder (github.com/openai/gpt-2, src/encoder.py); nanoGPT
data/shakespeare_char/prepare.py for the char-level vocabulary.
"""
from __future__ import annotations

import functools
import itertools
from pathlib import Path

import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public

__all__ = ["Tokenizer", "TiktokenTokenizer", "CharTokenizer", "ByteTokenizer", "get_tokenizer", "available_tokenizers",
           "tokenizer_from_state", "bundled_corpus_path", "EncodingDownloadError", "ASSETS_DIR", "BUNDLED_CORPORA",
           "EOT_TEXT"]

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
BUNDLED_CORPORA = {"tiny_shakespeare": "tinyshakespeare.txt"}
# sha256 of the bundled GPT-2 files: the same hashes tiktoken checks after a download
GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
EOT_TEXT = "<|endoftext|>"  # how every tokenizer writes (and, with allow_eot=True, reads) its end-of-text id


class EncodingDownloadError(RuntimeError):
    """A tiktoken encoding other than "gpt2" could not be downloaded (e.g. offline)."""


def bundled_corpus_path(name: str = "tiny_shakespeare") -> Path:
    """Path of a text corpus shipped inside the package (only "tiny_shakespeare" so far).

    Tiny Shakespeare is karpathy/char-rnn's input.txt: 1,115,394 characters,
    65 distinct characters, 338,025 GPT-2 tokens.
    """
    if name not in BUNDLED_CORPORA:
        raise ValueError(f"unknown bundled corpus {name!r}; choose one of {sorted(BUNDLED_CORPORA)}")
    path = ASSETS_DIR / BUNDLED_CORPORA[name]
    if not path.is_file():
        raise FileNotFoundError(f"bundled corpus missing at {path}; reinstall dllm_lite (pip install -e .)")
    return path


def _ids_to_list(ids) -> list[int]:
    """Turn a list / tuple / 1-D torch tensor / 1-D numpy array of ids into a list of ints."""
    values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    values = [values] if isinstance(values, int) else values  # a 0-d tensor holds one id
    if any(isinstance(value, list) for value in values):
        raise ValueError("decode takes one 1-D sequence of ids; for a batch, decode each row")
    return [int(value) for value in values]


class Tokenizer:
    """Shared interface: subclasses set name / vocab_size / eot_id and map ids <-> bytes or text."""

    name: str
    vocab_size: int  # real tokens (eot included) + 1 mask token
    eot_id: int | None = None  # end-of-text id; None only for a tiktoken encoding (or an old state) without one

    @property
    def mask_id(self) -> int:
        """The [MASK] id: always the last id, vocab_size - 1."""
        return self.vocab_size - 1

    def encode(self, text: str, allow_eot: bool = False) -> list[int]:
        """Text -> list of ids; "<|endoftext|>" is plain text unless allow_eot=True makes it eot_id."""
        if not allow_eot or self.eot_id is None:
            return self._encode_plain(text)
        pieces = text.split(EOT_TEXT)
        ids = self._encode_plain(pieces[0])
        for piece in pieces[1:]:
            ids += [self.eot_id] + self._encode_plain(piece)
        return ids

    def _encode_plain(self, text: str) -> list[int]:
        """Text -> ids, every character read as ordinary text."""
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Encode many texts (plain text, no special tokens); faster than a loop for tiktoken."""
        return [self.encode(text) for text in texts]

    def _run_to_bytes(self, run: list[int]) -> bytes:
        """UTF-8 bytes of a run of real (non-mask) ids."""
        raise NotImplementedError

    def decode(self, ids, mask_text: str = "[MASK]") -> str:
        """Ids (list, 1-D tensor or array) -> text, with every mask_id rendered as mask_text.

        Bytes that are not valid UTF-8 (a character cut by a mask) become U+FFFD, never an error.
        """
        values = _ids_to_list(ids)
        bad = [value for value in values if not 0 <= value < self.vocab_size]
        if bad:
            raise ValueError(f"id {bad[0]} is outside this {self.name!r} vocabulary (0 .. {self.vocab_size - 1})")
        parts = []
        for is_mask, run in itertools.groupby(values, key=lambda value: value == self.mask_id):
            run = list(run)
            parts.append(mask_text.encode("utf-8") * len(run) if is_mask else self._run_to_bytes(run))
        return b"".join(parts).decode("utf-8", errors="replace")

    def state_dict(self) -> dict:
        """Plain-Python description (str / int / list) that tokenizer_from_state can rebuild."""
        return {"name": self.name, "vocab_size": self.vocab_size}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, "
                f"mask_id={self.mask_id}, eot_id={self.eot_id})")


@functools.lru_cache(maxsize=None)
def _bundled_gpt2_encoding() -> tiktoken.Encoding:
    """GPT-2's tiktoken encoding from the bundled files (built once, ~1 s, no network).

    tiktoken keeps a copy of each file in its cache folder (TIKTOKEN_CACHE_DIR, else
    <tmp>/data-gym-cache), keyed by the sha1 of the local path.
    """
    mergeable_ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(ASSETS_DIR / "gpt2" / "vocab.bpe"),
        encoder_json_file=str(ASSETS_DIR / "gpt2" / "encoder.json"),
        vocab_bpe_hash=GPT2_VOCAB_BPE_SHA256,
        encoder_json_hash=GPT2_ENCODER_JSON_SHA256,
    )
    return tiktoken.Encoding(name="gpt2", pat_str=tiktoken_ext.openai_public.r50k_pat_str,
                             mergeable_ranks=mergeable_ranks, special_tokens={"<|endoftext|>": 50256},
                             explicit_n_vocab=50257)


class TiktokenTokenizer(Tokenizer):
    """A tiktoken BPE encoding plus a mask id equal to its n_vocab."""

    def __init__(self, name: str = "gpt2"):
        self.name = name
        if name == "gpt2":
            self.encoding = _bundled_gpt2_encoding()
        else:
            try:
                self.encoding = tiktoken.get_encoding(name)
            except Exception as error:
                raise EncodingDownloadError(
                    f"could not download the tiktoken encoding {name!r} ({type(error).__name__}); "
                    f"offline, use get_tokenizer('gpt2'), which ships with dllm_lite"
                ) from error
        self.vocab_size = self.encoding.n_vocab + 1
        try:
            self.eot_id = self.encoding.eot_token
        except KeyError:  # an encoding without <|endoftext|>
            self.eot_id = None

    def encode(self, text: str, allow_eot: bool = False) -> list[int]:
        """Text -> ids; "<|endoftext|>" is plain text unless allow_eot=True makes it eot_id."""
        if allow_eot and self.eot_id is not None:
            return self.encoding.encode(text, allowed_special={"<|endoftext|>"}, disallowed_special=())
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Encode many plain texts in parallel threads (tiktoken's encode_ordinary_batch)."""
        return self.encoding.encode_ordinary_batch(list(texts))

    def _run_to_bytes(self, run: list[int]) -> bytes:
        return self.encoding.decode_bytes(run)


class CharTokenizer(Tokenizer):
    """One id per character of a fixed character list (sorted characters of a text), then eot, then the mask.

    with_eot=False leaves the eot out (characters, then the mask): the layout of states saved
    before the eot existed, and a toy vocabulary of exactly the given letters.
    """

    def __init__(self, chars: list[str], with_eot: bool = True):
        chars = list(chars)
        if not chars or not all(isinstance(char, str) and len(char) == 1 for char in chars):
            raise ValueError("a char tokenizer needs a non-empty text, or chars as single-character strings")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must not repeat a character")
        self.name = "char"
        self.chars = chars
        self.char_to_id = {char: index for index, char in enumerate(chars)}
        self.eot_id = len(chars) if with_eot else None
        self.vocab_size = len(chars) + (2 if with_eot else 1)

    def _encode_plain(self, text: str) -> list[int]:
        """Text -> one id per character."""
        try:
            return [self.char_to_id[char] for char in text]
        except KeyError as error:
            raise ValueError(
                f"character {error.args[0]!r} is not in this char tokenizer's {len(self.chars)}-character "
                f"vocabulary; build it from text that contains every character: get_tokenizer('char', text=...)"
            ) from None

    def _run_to_bytes(self, run: list[int]) -> bytes:
        return "".join(EOT_TEXT if index == self.eot_id else self.chars[index] for index in run).encode("utf-8")

    def state_dict(self) -> dict:
        """Name, vocab_size, eot_id and the character list (enough to rebuild without the text)."""
        state = {**super().state_dict(), "chars": list(self.chars)}
        return state if self.eot_id is None else {**state, "eot_id": self.eot_id}


class ByteTokenizer(Tokenizer):
    """The 256 UTF-8 byte values as ids 0..255, then eot (256), then the mask (257).

    with_eot=False builds the layout of states saved before the eot existed: bytes, then the mask (256).
    """

    def __init__(self, with_eot: bool = True):
        self.name = "byte"
        self.eot_id = 256 if with_eot else None
        self.vocab_size = 258 if with_eot else 257

    def _encode_plain(self, text: str) -> list[int]:
        """Text -> its UTF-8 bytes."""
        return list(text.encode("utf-8"))

    def _run_to_bytes(self, run: list[int]) -> bytes:
        eot = EOT_TEXT.encode("utf-8")
        groups = itertools.groupby(run, key=lambda value: value == self.eot_id)
        return b"".join(eot * len(list(group)) if is_eot else bytes(group) for is_eot, group in groups)

    def state_dict(self) -> dict:
        """Name, vocab_size and eot_id (absent for the old layout without one)."""
        state = super().state_dict()
        return state if self.eot_id is None else {**state, "eot_id": self.eot_id}


def available_tokenizers() -> list[str]:
    """Every name get_tokenizer accepts: "gpt2", "char", "byte" and tiktoken's encodings."""
    return ["gpt2", "char", "byte"] + [name for name in tiktoken.list_encoding_names() if name != "gpt2"]


def get_tokenizer(name: str = "gpt2", *, text: str | None = None, chars: list[str] | None = None) -> Tokenizer:
    """Build a tokenizer by name.

    "gpt2" (bundled, offline) | "byte" (bytes 0..255, eot 256, mask 257) | "char" with
    text=... (its sorted characters become ids 0..n-1, then eot n, mask n+1) or chars=[...]
    | any other tiktoken encoding name (downloaded by tiktoken; raises EncodingDownloadError
    when that fails).
    """
    if name not in available_tokenizers():
        raise ValueError(f"unknown tokenizer {name!r}; choose one of {available_tokenizers()}")
    if name != "char" and (text is not None or chars is not None):
        raise TypeError(f"text= and chars= are for get_tokenizer('char'), not {name!r}")
    if name == "char":
        if (text is None) == (chars is None):
            raise ValueError("get_tokenizer('char') needs text='...' (the corpus) or chars=[...] (the vocabulary)")
        return CharTokenizer(sorted(set(text)) if text is not None else chars)
    return ByteTokenizer() if name == "byte" else TiktokenTokenizer(name)


def tokenizer_from_state(state: dict) -> Tokenizer:
    """Rebuild a tokenizer from its state_dict(), checking that the vocabulary size still matches.

    A char or byte state without "eot_id" predates their end-of-text token: it rebuilds the old
    layout (no eot, vocab_size one smaller), so checkpoints written then keep loading.
    """
    name = state["name"]
    with_eot = "eot_id" in state
    if name == "char":
        tokenizer = CharTokenizer(state["chars"], with_eot=with_eot)
    elif name == "byte":
        tokenizer = ByteTokenizer(with_eot=with_eot)
    else:
        tokenizer = get_tokenizer(name)
    if tokenizer.vocab_size != state["vocab_size"]:
        raise ValueError(f"tokenizer {name!r} now has vocab_size {tokenizer.vocab_size} but the saved state says "
                         f"{state['vocab_size']}; the checkpoint was made with a different vocabulary")
    return tokenizer

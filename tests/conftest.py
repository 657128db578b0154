"""Shared fixtures: tiny networks that keep every test to a few seconds on a CPU."""

import pytest
import torch

from dllm_lite import tokenize
from dllm_lite.model import ModelConfig, Transformer


def tiny_net(vocab_size=5, seq_len=6, causal=False, seed=0, scale=1.0, **kwargs):
    """A seeded 2-layer Transformer; `scale` multiplies the embedding so its predictions are peaked."""
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=32, seq_len=seq_len, causal=causal, **kwargs)
    net = Transformer(cfg)
    with torch.no_grad():
        net.embed.weight.mul_(scale)
    return net.eval()


@pytest.fixture
def make_net():
    return tiny_net


@pytest.fixture(scope="session")
def gpt2():
    """The bundled GPT-2 tokenizer (built once: it takes about a second)."""
    return tokenize.get_tokenizer("gpt2")


@pytest.fixture(scope="session")
def shakespeare():
    """The bundled Tiny Shakespeare text."""
    return tokenize.bundled_corpus_path("tiny_shakespeare").read_text(encoding="utf-8")

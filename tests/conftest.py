"""Shared fixtures and helpers: tiny networks and a tiny training config, so that every test takes
a few seconds on a CPU."""

import importlib.util
from pathlib import Path

import pytest
import torch

from dllm_lite import tokenize
from dllm_lite.config import load_config
from dllm_lite.model import ModelConfig, Transformer

CORPUS = "".join(f"{i} the quick brown fox jumps over the lazy dog; she sells sea shells.\n" for i in range(120))


def load_script(relative: str):
    """A script of the repository (benchmarks/, docs/: folders that are not packages) as a module, by its path
    relative to the repository root, e.g. load_script("benchmarks/frontier.py")."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.fixture
def one_thread_no_bars(monkeypatch):
    """No progress bars, and one thread, for the tests that train: tiny models gain nothing from more, and on
    a busy machine OpenMP threads spinning against each other can make a step 20 times slower."""
    import datasets  # here, not at the top: most tests never load it

    monkeypatch.setenv("TQDM_DISABLE", "1")
    datasets.disable_progress_bars()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    datasets.enable_progress_bars()


@pytest.fixture(scope="session")
def gpt2():
    """The bundled GPT-2 tokenizer (built once: it takes about a second)."""
    return tokenize.get_tokenizer("gpt2")


@pytest.fixture(scope="session")
def shakespeare():
    """The bundled Tiny Shakespeare text."""
    return tokenize.bundled_corpus_path("tiny_shakespeare").read_text(encoding="utf-8")


def write_config(tmp_path: Path, body: str = "") -> Path:
    """A tiny char-level config on a corpus in tmp_path; `body` adds YAML lines (later keys win)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    path = tmp_path / "tiny_test.yaml"
    path.write_text(f"""\
model: {{n_layer: 2, n_head: 2, n_embd: 32, seq_len: 32}}
data: {{dataset: text, data_files: {corpus}, tokenizer: char, val_fraction: 0.1, cache_dir: {tmp_path / 'cache'}}}
train: {{batch_size: 4, max_steps: 6, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2, log_every: 2, eval_every: 4,
        eval_batches: 1, bound_samples: 2, save_every: 2, keep_last: 2, out_dir: {tmp_path / 'run'}, seed: 0}}
sample: {{length: 8, steps: 4}}
{body}""", encoding="utf-8")
    return path


def make_config(tmp_path: Path, *overrides: str):
    return load_config(write_config(tmp_path), list(overrides))


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]

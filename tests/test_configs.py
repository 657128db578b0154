"""Every shipped config validates, and its model has the size its `params` line claims."""

import re
from pathlib import Path

import pytest
import torch

from dllm_lite.config import load_config
from dllm_lite.data import build_tokenizer
from dllm_lite.train import build_model

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
UNITS = {"K": 1e3, "M": 1e6, "B": 1e9}


def claimed(params: str) -> float:
    """'25M' -> 25e6, '0.8M' -> 8e5, '1.3B' -> 1.3e9."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMB])", params.strip())
    assert match, f"params: {params!r} is not like '25M'"
    return float(match.group(1)) * UNITS[match.group(2)]


def test_the_expected_configs_are_there():
    names = {path.stem for path in CONFIGS}
    assert {"tiny", "tiny_wikitext", "small", "medium", "shakespeare_char"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_validates_and_matches_its_size(path, tmp_path):
    cfg = load_config(path)
    assert cfg.name == path.stem and cfg.train.out_dir == f"runs/{cfg.name}"
    assert cfg.params is not None, f"{path.name} has no params: line"
    cfg.data.cache_dir = str(tmp_path)  # a char vocabulary reads the corpus; keep its cache out of the repo
    tokenizer = build_tokenizer(cfg.data)
    with torch.device("meta"):  # shapes only: no memory, no time
        n_params = build_model(cfg, tokenizer.vocab_size).num_params()
    assert abs(n_params / claimed(cfg.params) - 1) <= 0.15, f"{path.name}: {n_params:,} parameters, claims {cfg.params}"


def test_quick_cpu_config_is_offline_and_capped():
    cfg = load_config(next(path for path in CONFIGS if path.stem == "shakespeare_char"))
    assert cfg.data.dataset == "tiny_shakespeare" and cfg.data.tokenizer == "char"
    assert cfg.train.max_minutes is not None and cfg.train.max_minutes <= 9.5
    tiny = load_config(next(path for path in CONFIGS if path.stem == "tiny"))
    assert tiny.data.dataset == "tiny_shakespeare" and tiny.model.seq_len == 256

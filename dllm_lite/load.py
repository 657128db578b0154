"""Loading a saved model: a training checkpoint file (.pt) or a folder written by dllm_lite.export.

Both ways back to a network are read here, below the two files that write them:
checkpoint.py (what a run saves and how it resumes) and export.py (a folder to share) both
import this file, and neither imports the other.

- `read_checkpoint` / `load_checkpoint` open a training checkpoint with
  `torch.load(weights_only=True)`, which unpickles tensors and plain containers only:
  opening a checkpoint can never run code from it. The checkpoint's layout is described in
  checkpoint.py.
- `load_pretrained` rebuilds an exported folder (model.safetensors + config.json, laid out
  in export.py's docstring) after checking its files belong together; only JSON and
  safetensors are read.
- `load_checkpoint` takes either, so every command with --checkpoint accepts both.

What loading checks, once, whichever way the model comes: every weight has the shape the config
gives it (a strict load), the tokenizer's size is the config's vocab_size, and no weight holds a
NaN or an infinity (`check_finite`: such a model generates nothing and scores nan). An export
also carries a fingerprint in config.json (`fingerprint`: SHA-256 of model.safetensors and of
config.json's cfg, tokenizer, objective and mask_id), so a folder whose two files come from two
exports (an interrupted --overwrite), or whose config.json was edited, is refused.
"""

import hashlib
import json
import typing
from dataclasses import asdict, fields
from pathlib import Path

import torch
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from safetensors import SafetensorError

from .config import ConfigError, config_from_dict
from .model import ModelConfig, Transformer
from .tokenize import tokenizer_from_state

__all__ = ["load_checkpoint", "read_checkpoint", "load_pretrained", "build_model", "check_finite", "fingerprint",
           "CheckpointError", "CHECKPOINT_FORMAT", "EXPORT_FORMAT"]

CHECKPOINT_FORMAT = "dllm_lite-checkpoint-1"
EXPORT_FORMAT = "dllm_lite-export-1"
REQUIRED = ("cfg", "tokenizer", "objective", "mask_id", "run_config")
FINGERPRINTED = ("cfg", "tokenizer", "objective", "mask_id")  # what defines the network that config.json describes
HOW_TO_EXPORT = "export it again with python -m dllm_lite.export --checkpoint FILE --out DIR"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, not ours, or made for another model."""


def build_model(cfg, vocab_size: int) -> Transformer:
    """The Transformer of `cfg.model`, bidirectional for diffusion and causal for the AR objective."""
    causal = cfg.train.objective == "autoregressive"
    try:
        return Transformer(ModelConfig(vocab_size=vocab_size, causal=causal, **asdict(cfg.model)))
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None


def read_checkpoint(path) -> dict:
    """Load a checkpoint dict with torch.load(weights_only=True): tensors and plain data only, never code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; check the path, or train one with "
                              f"python -m dllm_lite.train --config configs/tiny.yaml")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} is truncated or unreadable ({type(error).__name__}); "
                              f"use an intact step_*.pt from the same folder instead, or train again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a dllm_lite training checkpoint; pass a file written by dllm_lite.train")
    return state


def load_checkpoint(path, device="cpu"):
    """Rebuild (net, tokenizer, cfg, state) from a checkpoint file or an exported folder; net is in
    eval mode on `device`.

    For a checkpoint file, `state` is the whole dict (step, optimizer, rng, data position, config, ...).
    For a folder written by dllm_lite.export, it holds no training state, only
    {"format": "dllm_lite-export-1", "step": the step it was exported at (or None), "path": the folder}.
    """
    if Path(path).is_dir():
        net, tokenizer, cfg = load_pretrained(path, device)
        step = json.loads((Path(path) / "config.json").read_text(encoding="utf-8")).get("step")
        return net, tokenizer, cfg, {"format": EXPORT_FORMAT, "step": step, "path": str(path)}
    state = read_checkpoint(path)
    missing = [key for key in ("config", "tokenizer", "model") if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks its {missing[0]!r} entry; use an intact step_*.pt from the "
                              f"same folder instead, or train again")
    cfg = config_from_dict(state["config"], source=str(path))
    tokenizer = tokenizer_from_state(state["tokenizer"])
    net = build_model(cfg, tokenizer.vocab_size)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as error:  # a weight missing, extra, or of another shape than the config gives
        _fail(path, f"holds weights that do not fit its own config and tokenizer ({_first_detail(error)})",
              "use an intact step_*.pt from the same folder instead, or train again")
    check_finite(net, path)
    return net.to(device).eval(), tokenizer, cfg, state


def check_finite(net, path) -> None:
    """A CheckpointError if any weight of `net` (loaded from `path`) is NaN or infinite: say it once, on load."""
    for name, tensor in net.state_dict().items():
        bad = int((~torch.isfinite(tensor)).sum()) if tensor.is_floating_point() else 0
        if bad:
            _fail(path, f"holds NaN or infinite weights ({bad:,} of the {tensor.numel():,} values of {name}), so the "
                  f"model cannot generate, be scored or be trained on", "use an earlier checkpoint of its run "
                  "(step_*.pt) or another model")


def fingerprint(weights: Path, config: dict) -> str:
    """SHA-256 of the weights file and of config.json's entries that define the network (FINGERPRINTED)."""
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    digest.update(json.dumps({key: config[key] for key in FINGERPRINTED}, sort_keys=True).encode())
    return digest.hexdigest()


def _first_detail(error: Exception) -> str:
    """The first informative line of a load_state_dict error, cut to 300 characters."""
    return next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))[:300]


def _fail(path: Path, problem: str, fix: str = HOW_TO_EXPORT) -> typing.NoReturn:
    raise CheckpointError(f"{path} {problem}; {fix}")


def _read_config(folder: Path) -> dict:
    """config.json of an export, checked to be ours and complete."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        latest = folder / "latest.pt"
        if latest.is_file():
            _fail(folder, "is a training run, not an export", f"pass {latest}, or export it with python -m "
                  f"dllm_lite.export --checkpoint {latest} --out DIR")
        _fail(path, "is missing, so this folder is not a dllm_lite export", "pass a checkpoint file, or a folder "
              "written by python -m dllm_lite.export --checkpoint FILE --out DIR")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        _fail(path, f"is not valid JSON ({error})")
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        _fail(path, f"was not written by dllm_lite.export (no \"format\": \"{EXPORT_FORMAT}\")")
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        _fail(path, f"lacks the {missing[0]!r} entry")
    return config


def load_pretrained(folder, device="cpu"):
    """Rebuild (net, tokenizer, cfg) from an exported folder; net is in eval mode on `device`.

    Only JSON and safetensors are read, so nothing in the folder can run code. A missing file,
    or files that do not belong together, raise a CheckpointError naming the file and the fix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        _fail(folder, "is not a folder", f"pass an exported folder, or {HOW_TO_EXPORT}")
    config, config_path, weights = _read_config(folder), folder / CONFIG_NAME, folder / SAFETENSORS_SINGLE_FILE
    cfg = config_from_dict(config["run_config"], source=f"{config_path} (run_config)")
    try:
        tokenizer = tokenizer_from_state(config["tokenizer"])
    except (ValueError, KeyError, TypeError) as error:
        _fail(config_path, f"has a tokenizer entry that cannot be rebuilt ({error})")
    try:
        model_cfg = ModelConfig(**config["cfg"])
    except (ValueError, TypeError) as error:
        _fail(config_path, f"has a 'cfg' entry that is not a model config ({error})")
    expected = ModelConfig(vocab_size=tokenizer.vocab_size, causal=cfg.train.objective == "autoregressive",
                           **asdict(cfg.model))
    differ = [f.name for f in fields(ModelConfig) if getattr(model_cfg, f.name) != getattr(expected, f.name)]
    if differ:
        name = differ[0]
        _fail(config_path, f"does not hold together: its cfg has {name}={getattr(model_cfg, name)!r} but its "
              f"tokenizer {tokenizer.name!r} and run_config give {getattr(expected, name)!r}")
    if (config["objective"], config["mask_id"]) != (cfg.train.objective, tokenizer.mask_id):
        _fail(config_path, f"says objective={config['objective']!r}, mask_id={config['mask_id']} but its run_config and "
              f"tokenizer give {cfg.train.objective!r}, {tokenizer.mask_id}")
    if not weights.is_file():
        _fail(weights, "is missing", f"put the weights file of this export next to config.json, or {HOW_TO_EXPORT}")
    try:
        net = Transformer.from_pretrained(folder, map_location=str(device))
    except SafetensorError as error:
        _fail(weights, f"is truncated or not a safetensors file ({error})")
    except RuntimeError as error:  # load_state_dict: a weight missing, extra, or of another shape
        _fail(weights, f"does not fit {CONFIG_NAME} ({_first_detail(error)})",
              f"the two files come from different models: {HOW_TO_EXPORT}")
    check_finite(net, weights)
    if "fingerprint" in config and fingerprint(weights, config) != config["fingerprint"]:
        _fail(folder, f"holds a {SAFETENSORS_SINGLE_FILE} and a {CONFIG_NAME} that do not belong together (the "
              f"fingerprint the export recorded differs): the files of two exports were mixed, by an interrupted "
              f"--overwrite, or {CONFIG_NAME} was edited")
    return net, tokenizer, cfg


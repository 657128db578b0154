"""Export a trained model as a folder to share: the layout of a Hugging Face Hub model repository.

    python -m dllm_lite.export --checkpoint runs/tiny/latest.pt --out exports/tiny
    python -m dllm_lite.generate --checkpoint exports/tiny --prompt "To be"

A training checkpoint (checkpoint.py) carries everything a run needs to resume: optimiser
moments, random generators, the data position. Someone who only wants to use the model needs
none of that. An export keeps what they do need, in one folder:

    model.safetensors   the weights. safetensors stores raw tensors and a JSON header, nothing
                        else, so loading it cannot run code, unlike a pickle (.pt, .bin)
    config.json         plain JSON that tools read before the weights (the Hub also counts
                        downloads by it):
                          cfg         the network's ModelConfig; the key is the name of
                                      Transformer's __init__ argument, so the hub mixin can rebuild it
                          tokenizer   tokenizer.state_dict(): its name, vocab_size, a char vocabulary
                          objective   "diffusion" (bidirectional denoiser) or "autoregressive" (causal)
                          mask_id     the [MASK] id, vocab_size - 1 (the AR baseline starts from it)
                          run_config  the run's config (model, data, train, sample): sampling defaults
                          step, format
                          fingerprint SHA-256 of model.safetensors and of cfg, tokenizer, objective
                                      and mask_id: load_pretrained refuses files that do not match
    README.md           a model card, written by the mixin unless the folder already has one

The files are written by huggingface_hub's PyTorchModelHubMixin, which `model.Transformer`
inherits: `Transformer.from_pretrained(folder or Hub repo id)` returns the network alone,
`load_pretrained(folder)` the network, tokenizer and config, after checking the files belong
together (it is defined in load.py, beside the reading of training checkpoints, and imported
here); `load_checkpoint` accepts such a folder too, so every command that takes --checkpoint
does. An --out folder that holds a different export is refused unless --overwrite
is given (the same export again is fine); files other than these three are never touched.

The files are moved in one at a time, so an export killed half way through --overwrite can
leave one new file beside an old one; the fingerprint makes load_pretrained refuse such a
folder in one line (export again). A full disk is one line too, and leaves --out as it was.
What the checks cannot see: a config.json edited together with a fingerprint recomputed to
match (the fingerprint guards against accidents, not against someone set on tampering), and
anything in run_config beyond the model's shape and objective (sampling defaults, data
settings), which is not fingerprinted and may be edited freely.
"""

import argparse
import filecmp
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from safetensors import SafetensorError

from .config import config_to_dict
from .load import EXPORT_FORMAT, CheckpointError, fingerprint, load_checkpoint, load_pretrained
from .model import Transformer

__all__ = ["export_model", "export_checkpoint", "load_pretrained", "main", "EXPORT_FORMAT"]


def export_model(net: Transformer, tokenizer, cfg, out_dir, step: "int | None" = None, overwrite: bool = False) -> Path:
    """Write net, tokenizer and cfg (the run's Config) to out_dir as model.safetensors + config.json
    (+ README.md); return out_dir. `step` (the optimiser steps trained) is recorded in config.json.

    The files are written in a temporary folder beside out_dir and moved in whole. An out_dir
    holding a different export is refused unless overwrite=True; the same export again is fine.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"{out_dir} is a file, not a folder; choose a folder for the export")
    config = {"format": EXPORT_FORMAT, "cfg": asdict(net.cfg), "tokenizer": tokenizer.state_dict(),
              "objective": cfg.train.objective, "mask_id": tokenizer.mask_id, "step": step,
              "run_config": config_to_dict(cfg)}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp") as tmp:
        new = Path(tmp)
        try:
            net.save_pretrained(tmp, config=config)  # the hub mixin: model.safetensors, config.json, README.md
            config["fingerprint"] = fingerprint(new / SAFETENSORS_SINGLE_FILE, config)
            (new / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
        except (OSError, SafetensorError) as error:  # a full disk, a quota: safetensors raises its own error
            reason = getattr(error, "strerror", None) or error
            raise CheckpointError(f"cannot write the export beside {out_dir} ({reason}); free some space or choose "
                                  f"another --out; {out_dir} is as it was") from None
        changed = [name for name in (SAFETENSORS_SINGLE_FILE, CONFIG_NAME)
                   if (out_dir / name).exists() and not filecmp.cmp(out_dir / name, new / name, shallow=False)]
        if changed and not overwrite:
            raise CheckpointError(f"{out_dir} already holds a different export ({changed[0]} differs); pass "
                                  f"--overwrite (overwrite=True) to replace it, or choose another folder")
        out_dir.mkdir(exist_ok=True)
        for file in new.iterdir():
            if file.name != "README.md" or not (out_dir / file.name).exists():  # keep a model card someone wrote
                os.replace(file, out_dir / file.name)
    return out_dir


def export_checkpoint(checkpoint, out_dir, overwrite: bool = False) -> Path:
    """Export the model of a training checkpoint file to out_dir (see export_model); return out_dir."""
    net, tokenizer, cfg, state = load_checkpoint(checkpoint)
    return export_model(net, tokenizer, cfg, out_dir, step=state.get("step"), overwrite=overwrite)



def main(argv=None) -> int:
    """Command line: python -m dllm_lite.export --checkpoint FILE --out DIR [--overwrite]; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m dllm_lite.export", description="Export a dllm_lite training "
                                     "checkpoint as a folder to share: model.safetensors + config.json + README.md.")
    parser.add_argument("--checkpoint", required=True, help="a training checkpoint, e.g. runs/tiny/latest.pt")
    parser.add_argument("--out", required=True, help="the folder to write, e.g. exports/tiny (created if missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace a different export already in --out")
    args = parser.parse_args(argv)
    try:
        out = export_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite)
    except ValueError as error:  # CheckpointError and ConfigError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write {args.out} ({error.strerror or error}); choose another --out", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} to {out}; try python -m dllm_lite.generate --checkpoint {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

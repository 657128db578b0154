"""export.py: a checkpoint becomes a folder (model.safetensors + config.json) that loads back exactly,
refuses clearly when its files do not belong together, and never unpickles anything."""

import json
import pickle
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import CORPUS, assert_one_line_error, make_config
from dllm_lite import export, generate, tokenize
from dllm_lite.checkpoint import CHECKPOINT_FORMAT, build_model, load_checkpoint
from dllm_lite.config import config_to_dict
from dllm_lite.model import Transformer
from dllm_lite.train import train

ROOT = Path(__file__).resolve().parent.parent


def write_checkpoint(folder: Path, *overrides: str, seed: int = 0) -> Path:
    """A checkpoint file as dllm_lite.train writes it (model, config, tokenizer), with seeded random weights."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = make_config(folder, *overrides)
    name = cfg.data.tokenizer
    tokenizer = tokenize.get_tokenizer(name, text=CORPUS) if name == "char" else tokenize.get_tokenizer(name)
    torch.manual_seed(seed)
    net = build_model(cfg, tokenizer.vocab_size)
    path = folder / "checkpoint.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "step": 7, "model": net.state_dict(), "config": config_to_dict(cfg),
                "tokenizer": tokenizer.state_dict()}, path)
    return path


def generated(capsys, checkpoint) -> str:
    code = generate.main(["--checkpoint", str(checkpoint), "--prompt", "the", "--length", "4", "--steps", "2",
                          "--seed", "3", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint file, its export folder) for a char-level diffusion model."""
    root = tmp_path_factory.mktemp("exported")
    checkpoint = write_checkpoint(root)
    return checkpoint, export.export_checkpoint(checkpoint, root / "export")


@pytest.mark.parametrize("objective", ["diffusion", "autoregressive"])
@pytest.mark.parametrize("tokenizer", ["char", "gpt2"])
def test_round_trip_gives_identical_logits_and_samples(tmp_path, capsys, objective, tokenizer):
    checkpoint = write_checkpoint(tmp_path, f"train.objective={objective}", f"data.tokenizer={tokenizer}")
    folder = export.export_checkpoint(checkpoint, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["objective"] == objective and config["cfg"]["causal"] == (objective == "autoregressive")

    net, tok, cfg, state = load_checkpoint(checkpoint)
    loaded, loaded_tok, loaded_cfg = export.load_pretrained(folder)
    bare = Transformer.from_pretrained(folder)
    assert capsys.readouterr().out == ""  # from_pretrained prints nothing (generate's output stays clean)
    assert config["mask_id"] == tok.mask_id == loaded_tok.mask_id
    assert loaded_tok.state_dict() == tok.state_dict() and config_to_dict(loaded_cfg) == config_to_dict(cfg)
    ids = torch.randint(0, tok.vocab_size, (2, cfg.model.seq_len), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = net(ids)
        assert torch.equal(loaded(ids), logits) and torch.equal(bare(ids), logits)
    assert not loaded.training and not bare.training
    assert load_checkpoint(folder)[3] == {"format": export.EXPORT_FORMAT, "step": 7, "path": str(folder)}
    assert generated(capsys, folder) == generated(capsys, checkpoint)


def test_trained_run_through_the_commands(tmp_path, capsys):
    run = train(make_config(tmp_path))
    capsys.readouterr()
    out = tmp_path / "shared" / "tiny"
    assert export.main(["--checkpoint", run["checkpoint"], "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    net = load_checkpoint(run["checkpoint"])[0]
    ids = torch.randint(0, net.cfg.vocab_size, (3, net.cfg.seq_len), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(export.load_pretrained(out)[0](ids), net(ids))
    assert generated(capsys, out) == generated(capsys, run["checkpoint"])
    # the same export again is fine; a different one needs --overwrite, which keeps a hand-written model card
    assert export.main(["--checkpoint", run["checkpoint"], "--out", str(out)]) == 0
    (out / "README.md").write_text("my card")
    other = write_checkpoint(tmp_path / "other", seed=1)
    assert_one_line_error(export.main(["--checkpoint", str(other), "--out", str(out)]), capsys.readouterr().err,
                          str(out), "--overwrite")
    assert export.main(["--checkpoint", str(other), "--out", str(out), "--overwrite"]) == 0
    assert (out / "README.md").read_text() == "my card"
    assert torch.equal(load_file(out / "model.safetensors")["embed.weight"],
                       load_checkpoint(other)[0].embed.weight)


def test_module_and_console_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dllm_lite.export", "--checkpoint", str(tmp_path / "none.pt"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert_one_line_error(result.returncode, result.stderr, "none.pt")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["dllm-export"] == "dllm_lite.export:main"


def test_bad_checkpoint_or_out_is_one_line_error(tmp_path, capsys, exported):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for argv, words in [(["--checkpoint", str(tmp_path / "missing.pt")], ["missing.pt", "dllm_lite.train"]),
                        (["--checkpoint", str(garbage)], ["garbage.pt", "unreadable"]),
                        (["--checkpoint", str(exported[0]), "--out", str(a_file)], ["a_file", "folder"])]:
        argv = argv if "--out" in argv else argv + ["--out", str(tmp_path / "out")]
        assert_one_line_error(export.main(argv), capsys.readouterr().err, *words)


def _remove(folder, name):
    (folder / name).unlink()


def _truncate(folder, name):
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])


def _reshape(folder, name):  # weights of a wider model under the same names
    weights = {key: torch.cat([value, value], dim=-1) for key, value in load_file(folder / name).items()}
    save_file(weights, folder / name)


def _other_tokenizer(folder, name):
    config = json.loads((folder / name).read_text())
    config["tokenizer"] = tokenize.get_tokenizer("byte").state_dict()
    (folder / name).write_text(json.dumps(config))


def _bare_mixin_config(folder, name):  # what Transformer.save_pretrained alone writes: no tokenizer, no format
    config = json.loads((folder / name).read_text())
    (folder / name).write_text(json.dumps({"cfg": config["cfg"]}))


@pytest.mark.parametrize("break_it, name, words", [
    (_remove, "config.json", ["config.json", "missing", "dllm_lite.export"]),
    (_remove, "model.safetensors", ["model.safetensors", "missing", "next to config.json"]),
    (_truncate, "model.safetensors", ["model.safetensors", "truncated", "dllm_lite.export"]),
    (_reshape, "model.safetensors", ["model.safetensors", "does not fit config.json", "size mismatch",
                                     "different models"]),
    (_other_tokenizer, "config.json", ["config.json", "vocab_size", "'byte'", "dllm_lite.export"]),
    (_bare_mixin_config, "config.json", ["config.json", "dllm_lite-export-1", "dllm_lite.export"]),
])
def test_a_broken_folder_is_one_line_error(tmp_path, capsys, exported, break_it, name, words):
    folder = shutil.copytree(exported[1], tmp_path / "export")
    break_it(folder, name)
    assert_one_line_error(generate.main(["--checkpoint", str(folder)]), capsys.readouterr().err, str(folder), *words)


def test_a_run_folder_points_to_its_checkpoint(tmp_path, capsys, exported):
    shutil.copy(exported[0], tmp_path / "latest.pt")
    assert_one_line_error(generate.main(["--checkpoint", str(tmp_path)]), capsys.readouterr().err,
                          "training run", str(tmp_path / "latest.pt"))


class Trap:
    """Unpickling this creates the file `path`: the proof that a loader ran code from a pickle."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_load_never_unpickles(tmp_path, monkeypatch, exported):
    folder = shutil.copytree(exported[1], tmp_path / "export")
    sentinel = tmp_path / "code_ran"
    for name in ("pytorch_model.bin", "model.pt", "model.pkl"):  # what a pickle-based loader would look for
        (folder / name).write_bytes(pickle.dumps(Trap(sentinel)))
    pickle.loads((folder / "model.pkl").read_bytes()).close()  # the trap works ...
    assert sentinel.exists()
    sentinel.unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("loading an export must not unpickle anything")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(module, name, refuse)
    export.load_pretrained(folder)
    load_checkpoint(folder)
    Transformer.from_pretrained(folder)
    assert not sentinel.exists()  # ... and no loader sprang it


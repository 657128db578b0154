"""What loading a saved model checks, once, for every command: weights that are all finite, weights and config.json
of one export (a fingerprint), every weight's shape against the config; and what an export does on a full disk or
when it is killed half way through --overwrite."""

import errno
import json

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from conftest import assert_one_line_error, make_config, write_config
from dllm_lite import evaluate, export, generate, train
from dllm_lite.load import CheckpointError, load_checkpoint
from test_export import write_checkpoint


def nan_checkpoint(folder):
    path = write_checkpoint(folder)
    state = torch.load(path, weights_only=True)
    state["model"]["blocks.0.attn.qkv.weight"][0, :5] = float("nan")
    torch.save(state, path)
    return path


def test_nan_weights_are_one_line_for_every_command(tmp_path, capsys):
    """generate printed only the prompt and evaluate printed nll_bound=nan, both with exit 0."""
    checkpoint = nan_checkpoint(tmp_path / "run")
    code = generate.main(["--checkpoint", str(checkpoint), "--prompt", "the", "--length", "4"])
    assert_one_line_error(code, capsys.readouterr().err, str(checkpoint), "NaN or infinite", "5 of the",
                          "blocks.0.attn.qkv.weight")
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox " * 20, encoding="utf-8")
    code = evaluate.main(["--checkpoint", str(checkpoint), "--text", str(text), "--samples", "1"])
    assert_one_line_error(code, capsys.readouterr().err, "NaN or infinite")
    folder = export.export_checkpoint(write_checkpoint(tmp_path / "good"), tmp_path / "export")
    weights = load_file(folder / "model.safetensors")
    save_file({k: torch.full_like(v, float("nan")) for k, v in weights.items()}, folder / "model.safetensors")
    code = generate.main(["--checkpoint", str(folder), "--prompt", "the", "--length", "4"])
    assert_one_line_error(code, capsys.readouterr().err, "model.safetensors", "NaN or infinite")


def test_init_from_nan_weights_names_the_weights_not_the_learning_rate(tmp_path, capsys):
    checkpoint = nan_checkpoint(tmp_path / "start")
    code = train.main(["--config", str(write_config(tmp_path)), f"train.init_from={checkpoint}", "train.max_steps=2"])
    err = capsys.readouterr().err
    assert_one_line_error(code, err, str(checkpoint), "NaN or infinite")
    assert "train.lr" not in err


def killed_after_one_file(monkeypatch):
    """os.replace in export: the first of model.safetensors / config.json moves in, then the process 'dies'."""
    real, moved = export.os.replace, []

    def replace(source, target):
        if moved:
            raise KeyboardInterrupt("killed")
        real(source, target)
        if str(target).endswith(("model.safetensors", "config.json")):
            moved.append(target)

    monkeypatch.setattr(export.os, "replace", replace)


def test_an_export_killed_between_its_files_is_refused_on_load(tmp_path, capsys, monkeypatch):
    """A step-40 model.safetensors beside step-20's config.json used to load and generate with exit 0."""
    folder = export.export_checkpoint(write_checkpoint(tmp_path / "a", seed=0), tmp_path / "export")
    newer = write_checkpoint(tmp_path / "b", seed=1)
    killed_after_one_file(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        export.export_checkpoint(newer, folder, overwrite=True)
    monkeypatch.undo()
    code = generate.main(["--checkpoint", str(folder), "--prompt", "the", "--length", "4"])
    assert_one_line_error(code, capsys.readouterr().err, str(folder), "do not belong together", "interrupted")
    assert export.main(["--checkpoint", str(newer), "--out", str(folder), "--overwrite"]) == 0  # exporting again
    load_checkpoint(folder)  # mends it


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     SafetensorError("Error while serializing: No space left on device (os error 28)")])
def test_a_full_disk_during_export_is_one_line_and_leaves_out_as_it_was(tmp_path, capsys, monkeypatch, failure):
    checkpoint = write_checkpoint(tmp_path / "run")
    folder = export.export_checkpoint(write_checkpoint(tmp_path / "old", seed=3), tmp_path / "export")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def disk_full(*args, **kwargs):
        raise failure

    monkeypatch.setattr("safetensors.torch.save_model", disk_full)
    code = export.main(["--checkpoint", str(checkpoint), "--out", str(folder), "--overwrite"])
    assert_one_line_error(code, capsys.readouterr().err, "No space left on device", "is as it was")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "old", "run"]  # no temporary folder left


def _edit(config, change):
    change(config["cfg"], config["run_config"], config)


@pytest.mark.parametrize("what, change", [
    ("n_head 2 -> 4", lambda cfg, run, c: (cfg.update(n_head=4), run["model"].update(n_head=4))),
    ("the char vocabulary reversed", lambda cfg, run, c: c["tokenizer"].update(chars=c["tokenizer"]["chars"][::-1])),
    ("seq_len 100000", lambda cfg, run, c: (cfg.update(seq_len=100000), run["model"].update(seq_len=100000))),
    ("causal, autoregressive", lambda cfg, run, c: (cfg.update(causal=True), run["train"].update(
        objective="autoregressive"), c.update(objective="autoregressive"))),
])
def test_a_config_json_edited_consistently_is_refused(tmp_path, capsys, what, change):
    """Edits that keep config.json self-consistent (and most weight shapes) used to load and generate with exit 0."""
    folder = export.export_checkpoint(write_checkpoint(tmp_path / "run"), tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    _edit(config, change)
    (folder / "config.json").write_text(json.dumps(config))
    code = generate.main(["--checkpoint", str(folder), "--prompt", "the", "--length", "4"])
    assert_one_line_error(code, capsys.readouterr().err, str(folder), "do not belong together")


def test_checkpoint_weights_of_another_shape_are_one_line(tmp_path, capsys):
    path = write_checkpoint(tmp_path / "run")
    state = torch.load(path, weights_only=True)
    state["config"]["model"]["n_embd"] = 64
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="do not fit its own config.*size mismatch"):
        load_checkpoint(path)


@pytest.mark.parametrize("objective", ["autoregressive", "block_diffusion"])
def test_a_diffusion_run_from_another_objective_says_what_is_reused(tmp_path, capsys, objective):
    extra = ["model.block_size=8"] if objective == "block_diffusion" else []
    start = write_checkpoint(tmp_path / "start", f"train.objective={objective}", *extra)
    train.train(make_config(tmp_path, f"train.init_from={start}", "train.max_steps=1", "train.eval_every=1"))
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("train.init_from:"))
    assert f"objective {objective}" in line and "reused" in line and "attends both ways" in line
    capsys.readouterr()
    train.train(make_config(tmp_path, f"train.init_from={start}", "train.max_steps=1", "train.eval_every=1",
                            f"train.objective={objective}", *extra, "train.out_dir=" + str(tmp_path / "same")))
    assert "train.init_from:" not in capsys.readouterr().out  # the same objective: nothing to say

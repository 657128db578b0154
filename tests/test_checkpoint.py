"""checkpoint.py: which step files are kept, clear errors for an incomplete checkpoint, a full disk and a
resume that changes the optimiser."""

import errno
import subprocess

import pytest
import torch

from dllm_lite.checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint, step_files


def test_keep_last_keeps_the_newest_past_step_999999(tmp_path):
    # six-digit names sort as text wrongly from step 1,000,000 on: "step_1000000" < "step_999999"
    for step in (999_998, 999_999, 1_000_000, 1_000_001):
        save_checkpoint({"format": CHECKPOINT_FORMAT, "step": step}, tmp_path, keep_last=2)
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_1000000.pt", "step_1000001.pt"]
    assert torch.load(tmp_path / "latest.pt", weights_only=True)["step"] == 1_000_001


def test_step_files_are_ordered_by_step_and_ignore_other_names(tmp_path):
    for name in ("step_1000000.pt", "step_000999.pt", "step_999999.pt", "step_final.pt", "latest.pt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in step_files(tmp_path)] == ["step_000999.pt", "step_999999.pt", "step_1000000.pt"]


def test_a_checkpoint_without_its_config_is_one_clear_error(tmp_path):
    path = tmp_path / "partial.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "step": 3, "model": {}}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message and "'config'" in message and str(path) in message and "step_*.pt" in message


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (root can mount one here; elsewhere the test is skipped)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_keeps_latest(tiny_disk):
    save_checkpoint({"format": CHECKPOINT_FORMAT, "step": 10, "w": torch.zeros(1000)}, tiny_disk, keep_last=3)
    with pytest.raises(CheckpointError) as error:
        save_checkpoint({"format": CHECKPOINT_FORMAT, "step": 20, "w": torch.zeros(1_000_000)}, tiny_disk, keep_last=3)
    message = str(error.value)
    assert "\n" not in message and "no space left on device" in message and "latest.pt (step 10) is intact" in message
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["latest.pt", "step_000010.pt"]  # no half-written file
    assert torch.load(tiny_disk / "latest.pt", weights_only=True)["step"] == 10


def test_a_full_disk_during_training_is_one_line_with_exit_code_2(tmp_path, capsys, monkeypatch):
    from conftest import assert_one_line_error, write_config
    from dllm_lite import checkpoint, train

    atomic_save, saves = checkpoint.atomic_save, []

    def full_after_the_first(obj, path):
        saves.append(path)
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        atomic_save(obj, path)

    monkeypatch.setattr(checkpoint, "atomic_save", full_after_the_first)
    code = train.main(["--config", str(write_config(tmp_path)), "train.max_steps=6", "train.save_every=2"])
    assert_one_line_error(code, capsys.readouterr().err, "no space left on device", "latest.pt (step 2) is intact")
    assert train.read_checkpoint(tmp_path / "run" / "latest.pt")["step"] == 2


def test_resume_with_another_optimizer_is_refused_in_one_line(tmp_path, capsys):
    from conftest import assert_one_line_error, write_config
    from dllm_lite import train

    config = str(write_config(tmp_path))
    assert train.main(["--config", config, "train.max_steps=2", "train.optimizer=muon"]) == 0
    capsys.readouterr()
    code = train.main(["--config", config, "train.max_steps=4", "train.optimizer=adamw", "--resume"])
    assert_one_line_error(code, capsys.readouterr().err, "train.optimizer=muon", "adamw")

"""checkpoint.py: which step files are kept, and a clear error for an incomplete checkpoint."""

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

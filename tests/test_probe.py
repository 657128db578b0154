"""The CPU tuning scripts behind configs/shakespeare_char.yaml still run: benchmarks/char_probe.py and
benchmarks/checkpoint_bound.py."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_config
from dllm_lite import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("extra", [["opt=adamw", "data=blocks"], ["opt=muon", "mlr=6e-3", "sched=wsd"]])
def test_a_step_bound_probe_reports_a_bound(extra):
    args = ["steps=3", "threads=1", "warmup=1", "n_layer=1", "n_embd=32", "n_head=2", "seq_len=32", "batch=2"]
    run = subprocess.run([sys.executable, "benchmarks/char_probe.py", *args, *extra], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["steps"] == 3 and result["opt"] == extra[0].split("=")[1]
    assert 3 < result["bound"] < math.log(65) + 0.5  # three steps: still near the uniform guess, log 65


def test_checkpoint_bound_measures_a_trained_checkpoint(tmp_path):
    summary = train.train(make_config(tmp_path, "train.max_steps=2", "train.compile=false"))
    run = subprocess.run([sys.executable, "benchmarks/checkpoint_bound.py", summary["checkpoint"], "--samples", "2",
                          "--shift"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("offset")]
    assert [line.split(":")[0] for line in lines] == ["offset 0", "offset 16"]  # seq_len 32: shifted by half
    for line in lines:
        bound = float(line.split("bound ")[1].split()[0])
        assert 1.0 < bound < 5.0  # two steps of training: near the uniform guess over ~40 characters

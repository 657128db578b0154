"""The CPU tuning tools behind configs/shakespeare_char.yaml still run: benchmarks/char_probe.py and the
precise bound of `python -m dllm_lite.evaluate`."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_config
from dllm_lite import evaluate, train

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


def test_evaluate_measures_a_trained_checkpoint_on_its_validation_split(tmp_path, capsys):
    summary = train.train(make_config(tmp_path, "train.max_steps=2", "train.compile=false"))
    bounds = []
    for offset in ("0", "16"):  # seq_len 32: the second measurement on rows shifted by half a row
        assert evaluate.main(["--checkpoint", summary["checkpoint"], "--samples", "2", "--offset", offset]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        match = re.fullmatch(r"nll_bound=(\d+\.\d{4}) stderr=\d+\.\d{4} samples=(\d+) rows=(\d+) tokens=(\d+)", line)
        assert match, line
        assert int(match.group(2)) == 2 * int(match.group(3)) and int(match.group(4)) == 32 * int(match.group(3))
        bounds.append(float(match.group(1)))
    assert all(1.0 < b < 5.0 for b in bounds)  # two steps of training: near the uniform guess over ~40 characters

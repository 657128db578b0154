"""benchmarks/char_probe.py, the tuning probe behind configs/shakespeare_char.yaml, still runs."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

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

"""benchmarks/gpu_check.sh, the 8-minute GPU check, run with a stand-in python that records its command lines:
every part runs, inside the budget, with command lines the bench accepts."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dllm_lite import bench


GPU_CHECK = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"
FAKE_PYTHON = """#!/bin/sh
printf '%s\\037' "${TORCH_LOGS:-}" >> "$CALLS"
for arg in "$@"; do printf '%s\\037' "$arg"; done >> "$CALLS"
echo >> "$CALLS"
"""


def run_gpu_check(tmp_path, **env):
    """Run benchmarks/gpu_check.sh with a stand-in python that only records its arguments and TORCH_LOGS:
    (calls, log, torch_logs), torch_logs[i] the TORCH_LOGS of calls[i]."""
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and coreutils' timeout")
    tmp_path.mkdir(parents=True, exist_ok=True)
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    calls, out = tmp_path / "calls.txt", tmp_path / "out"
    repo = tmp_path / "repo"  # the script and an empty tests/test_cuda.py: every part runs
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_cuda.py").write_text("")
    shutil.copy(GPU_CHECK, repo / "benchmarks")
    done = subprocess.run(["bash", str(repo / "benchmarks" / GPU_CHECK.name)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "CALLS": str(calls), "OUT": str(out),
                               **env})
    assert done.returncode == 0, done.stderr
    log = (out / "gpu_check.log").read_text()
    fields = [line.split("\x1f")[:-1] for line in calls.read_text().splitlines()]
    return [f[1:] for f in fields], log, [f[0] for f in fields]


def test_gpu_check_runs_every_part_inside_its_budget(tmp_path):
    calls, log, torch_logs = run_gpu_check(tmp_path)
    bench_calls = [c[2:] for c in calls if c[:2] == ["-m", "dllm_lite.bench"]]
    parser = bench._parser()
    for argv in bench_calls:
        parser.parse_args(argv)  # every command line the script writes is one the bench accepts
    runs = [argv for argv in bench_calls if "--merge" not in argv and "--profile" not in argv]
    sampling = next(argv for argv in runs if "--skip-training" in argv)
    assert "--sample-limit-s" in sampling and "1,16" in sampling and "16" in sampling  # batch 1 and 16, K = 16
    assert any("--profile" in argv for argv in bench_calls)
    assert any(c[:2] == ["-m", "pytest"] and "tests/test_cuda.py" in c for c in calls)
    limits = [int(part.split("s)")[0]) for part in log.split("(limit ")[1:]]
    assert len(limits) == 7 and sum(limits) + 3 * len(limits) + 25 <= 470  # parts, their kills, the merge: 8 minutes
    decode = next(argv for argv in runs if "--compile-decode" in argv)
    assert decode[decode.index("--compile-decode") + 1] == "1" and "16" in decode  # AR and block K = 16, batch 1
    assert all(argv[argv.index("--json") + 1].startswith(str(tmp_path / "out")) for argv in runs)
    compiled = {i for i, c in enumerate(calls) if "--compile-decode" in c or "--compare" in c and "compile" in c
                or c[:2] == ["-m", "pytest"]}
    assert len(compiled) == 4  # the CUDA tests, compiled decode, the small shape compiled, tiny.yaml compiled
    for i, logs in enumerate(torch_logs):  # the compiled parts log recompiles and skipped CUDA graphs
        assert logs == ("recompiles,cudagraphs" if i in compiled else ""), calls[i]


def test_gpu_check_cpu_mode_and_a_spent_budget(tmp_path):
    calls, log, _ = run_gpu_check(tmp_path, GPU_CHECK_CPU="1")
    assert "cuda tests: skipped (cpu mode)" in log and not any(c[:2] == ["-m", "pytest"] for c in calls)
    assert all("--tiny" in c for c in calls if c[:2] == ["-m", "dllm_lite.bench"] and "--merge" not in c)
    calls, log, _ = run_gpu_check(tmp_path / "spent", GPU_CHECK_CPU="1", GPU_CHECK_BUDGET_S="25")
    assert "sampling bench: skipped, the 25s budget is spent" in log
    assert [c for c in calls if c[:2] == ["-m", "dllm_lite.bench"]] == [c for c in calls if "--merge" in c]



def test_gpu_check_parts_runs_only_the_parts_named(tmp_path):
    calls, log, _ = run_gpu_check(tmp_path, GPU_CHECK_PARTS="6,7")
    runs = [c for c in calls if c[:2] == ["-m", "dllm_lite.bench"] and "--merge" not in c]
    assert len(runs) == 2 and all("--compare" in c for c in runs)  # the compiled training bench, tiny.yaml
    assert "cuda tests: skipped, part 1 is not in GPU_CHECK_PARTS=6,7" in log
    assert not any(c[:2] == ["-m", "pytest"] for c in calls) and any("--merge" in c for c in calls)


def test_what_the_gpu_check_imports_needs_no_datasets_package():
    # the GPU machine has PyTorch but not Hugging Face datasets (its wheels are carried only for notebooks):
    # the bench and the CUDA tests must import without it
    code = ("import sys; import dllm_lite.bench, dllm_lite.block, dllm_lite.model, dllm_lite.sample; "
            "print('datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

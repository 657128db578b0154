#!/usr/bin/env bash
# The GPU check, in at most 8 minutes, from the repository root:  bash benchmarks/gpu_check.sh
# For the next lent GPU (no network; PyTorch and pytest there, no Jupyter, no datasets). In order:
#   1. the CUDA tests (tests/test_cuda.py)
#   2. the sampling bench, small shape, L = 1024, batch 1 and 16: AR with its cache, diffusion
#      (confidence) and block diffusion K = 16 with its cache, each row under a time limit it finishes inside
#   3. compiled decoding (generate(compile=True)) at batch 1: AR and block diffusion K = 16, each warmed up
#      (compiled) by an untimed run of itself; each row counts the graphs its timed run compiled again and the
#      CUDA graphs it skipped (both should be 0), and TORCH_LOGS says why (parts 1, 3, 6 and 7)
#   4. torch.profiler tables: one diffusion training step and one AR decode step
#   5. the training bench, eager: diffusion, AR, block diffusion K = 16 and the plain GPT-2 reference
#   6. the training bench, compiled diffusion next to eager
#   7. tiny.yaml's shape, eager and compiled diffusion (its 3,000 steps <= 60 s target)
#   8. the merge of 2, 3, 5 and 6: targets and one table
# Each part runs under `timeout` (planned limits 420 s, merge 25 s, each kill 3 s at most), cut further so that
# the parts stay inside GPU_CHECK_BUDGET_S (440 s);
# a part stopped by its limit keeps what it wrote. Everything lands in $OUT (default ./gpu_check_out):
# gpu_check.log (all that was printed, the CUDA tests' output too), profile.txt, sample.json, decode.json,
# train_eager.json, train_compile.json, tiny.json, bench.json (8 files: what the device tool brings back).
# GPU_CHECK_CPU=1: the same parts at CPU sizes (--tiny), without the CUDA tests and the compiled parts,
# to try the script anywhere in about a minute.
# GPU_CHECK_PARTS=6,7: only the parts with those numbers (and the merge), for a second run after a fix, when
# the device time left cannot hold all of them.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-./gpu_check_out}"
PY="${PYTHON:-python3}"
BUDGET="${GPU_CHECK_BUDGET_S:-440}"
CPU="${GPU_CHECK_CPU:-0}"
PARTS="${GPU_CHECK_PARTS:-}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
START=$SECONDS

say() { echo "$*" | tee -a "$LOG"; }

# part NUMBER NAME LIMIT_SECONDS FILE COMMAND...: run one part under `timeout` (its output also into FILE), never
# stop the script. Parts not listed in GPU_CHECK_PARTS (when set) are skipped.
# The limit is cut to what the budget leaves (less 20 s for the merge); with under 10 s left the part is skipped.
part() {
    local number=$1 name=$2 limit=$3 file=$4; shift 4
    local left=$((BUDGET - (SECONDS - START) - 20))
    [ "$limit" -gt "$left" ] && limit=$left
    say ""
    if [ -n "$PARTS" ] && [[ ",$PARTS," != *",$number,"* ]]; then
        say "== $name: skipped, part $number is not in GPU_CHECK_PARTS=$PARTS"
        return
    fi
    if [ "$limit" -lt 10 ]; then
        say "== $name: skipped, the ${BUDGET}s budget is spent"
        return
    fi
    say "== $name (limit ${limit}s): $*"
    local begin=$SECONDS
    timeout --kill-after=3 "$limit" "$@" 2>&1 | tee -a "$LOG" "$file"
    local status=${PIPESTATUS[0]}
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        say "== $name STOPPED by its ${limit}s limit; what it finished is in $file and the JSON files"
    elif [ "$status" -ne 0 ]; then
        say "== $name exited with status $status"
    fi
    say "== $name took $((SECONDS - begin))s"
}

say "== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${BUDGET}s, cpu mode ${CPU}"
say "commit: ${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo 'unknown (no .git here; pass COMMIT=...)')}"
nvidia-smi -L 2>&1 | tee -a "$LOG"
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '| gpu', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"

# the CUDA tests and the compiled parts log every recompile, and every compiled graph that could not run as a
# CUDA graph with the reason (pytest shows the logs of a failed test only)
COMPILE_LOGS=(TORCH_LOGS=recompiles,cudagraphs)
BENCH=("$PY" -m dllm_lite.bench --no-progress)
if [ "$CPU" = 1 ]; then
    SHAPE=(--tiny --device cpu)
    SAMPLE=(--sample-batch-sizes 1,2 --sample-steps 4,16 --block-size 8 --sample-limit-s 10)
    TINY=()
else
    SHAPE=(--config configs/small.yaml --no-compile)
    # diffusion at batch 16 is the slowest row: 256 full forwards of 16 x 1024 tokens, ~10 s expected
    SAMPLE=(--sample-batch-sizes 1,16 --sample-steps 64,256 --block-size 16 --sample-limit-s 25)
    TINY=(--config configs/tiny.yaml --no-compile)
fi

if [ "$CPU" = 1 ]; then
    say ""; say "== cuda tests: skipped (cpu mode)"
elif [ -f tests/test_cuda.py ]; then
    part 1 "cuda tests" 70 /dev/null env "${COMPILE_LOGS[@]}" "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
else
    say ""; say "== cuda tests: tests/test_cuda.py is not in this checkout"
fi

part 2 "sampling bench" 95 /dev/null "${BENCH[@]}" "${SHAPE[@]}" --skip-training \
    --strategies confidence --ar-nocache-length 0 "${SAMPLE[@]}" --json "$OUT/sample.json"

if [ "$CPU" = 1 ]; then
    say ""; say "== compiled decode: skipped (cpu mode)"
else
    part 3 "compiled decode" 60 /dev/null env "${COMPILE_LOGS[@]}" "${BENCH[@]}" "${SHAPE[@]}" --skip-training --strategies confidence \
        --sample-batch-sizes "" --compile-decode 1 --sample-steps 256 --block-size 16 --sample-limit-s 25 \
        --json "$OUT/decode.json"
fi

part 4 "profile" 35 "$OUT/profile.txt" "${BENCH[@]}" "${SHAPE[@]}" --profile --profile-rows 20

part 5 "training bench, eager" 40 /dev/null "${BENCH[@]}" "${SHAPE[@]}" --skip-sampling \
    --block-size "$([ "$CPU" = 1 ] && echo 8 || echo 16)" --json "$OUT/train_eager.json"

if [ "$CPU" = 1 ]; then
    say ""; say "== training bench, compiled: skipped (cpu mode)"
    say ""; say "== tiny.yaml, eager and compiled: skipped (cpu mode)"
else
    part 6 "training bench, compiled" 75 /dev/null env "${COMPILE_LOGS[@]}" "${BENCH[@]}" "${SHAPE[@]}" --skip-sampling \
        --objectives diffusion --no-reference --compare compile --json "$OUT/train_compile.json"
    part 7 "tiny.yaml, eager and compiled" 45 /dev/null env "${COMPILE_LOGS[@]}" "${BENCH[@]}" "${TINY[@]}" --skip-sampling \
        --objectives diffusion --no-reference --compare compile --steps 20 --json "$OUT/tiny.json"
fi

say ""
say "== merge: targets and one table (tiny.yaml's own targets are in its part above)"
timeout 25 "${BENCH[@]}" --merge "$OUT/sample.json" "$OUT/decode.json" "$OUT/train_eager.json" "$OUT/train_compile.json" \
    --json "$OUT/bench.json" 2>&1 | tee -a "$LOG"
say "== gpu_check done in $((SECONDS - START))s; files in $OUT:"
ls "$OUT" | tee -a "$LOG"

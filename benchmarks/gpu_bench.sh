#!/usr/bin/env bash
# The GPU benchmark in one go, from the repository root:  bash benchmarks/gpu_bench.sh
# Three sections, each its own process under its own time limit, so that one slow compile
# cannot eat the whole budget; each writes its JSON after every row, so a section stopped
# by its limit keeps what it finished. A last step merges them and prints the targets and,
# last, one table. Expected ~5 minutes on an H100, at most ~7 if every section hits its limit.
# Output: $OUT/bench.log (everything printed), $OUT/*.json (the numbers); OUT defaults to ./bench_out.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-./bench_out}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
LOG="$OUT/bench.log"
: > "$LOG"

say() { echo "$*" | tee -a "$LOG"; }

say "== $(date -u +%Y-%m-%dT%H:%M:%SZ)"
nvidia-smi -L 2>&1 | tee -a "$LOG"
say "commit: $(git rev-parse HEAD 2>/dev/null || echo 'unknown (no .git here)')"
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda)" 2>&1 | tee -a "$LOG"

CONFIG=(); [ -f configs/small.yaml ] && CONFIG=(--config configs/small.yaml)
MEDIUM=(); [ -f configs/medium.yaml ] && MEDIUM=(--medium-config configs/medium.yaml)

# section NAME LIMIT_SECONDS ARGS...: run one bench process under `timeout`, log it, never stop the script
section() {
    local name=$1 limit=$2; shift 2
    local cmd=("$PY" -m dllm_lite.bench ${CONFIG[@]+"${CONFIG[@]}"} --no-progress --json "$OUT/$name.json" "$@")
    say ""
    say "== section $name (limit ${limit}s): ${cmd[*]}"
    local start=$SECONDS
    timeout --kill-after=15 "$limit" "${cmd[@]}" 2>&1 | tee -a "$LOG"
    local status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        say "== section $name stopped by its ${limit}s limit; the rows it finished are in $OUT/$name.json"
    elif [ "$status" -ne 0 ]; then
        say "== section $name exited with status $status"
    fi
    say "== section $name took $((SECONDS - start))s"
}

# 1. eager training: diffusion, AR and block diffusion (K = 16), the levers (float32, full head, checkpointing,
#    batch 32), medium memory
section train_eager 100 --skip-sampling --no-compile --compare dtype,full-head,checkpointing --batch-sizes 16,32 \
    --block-size 16 --medium-memory ${MEDIUM[@]+"${MEDIUM[@]}"}
# 2. sampling: every strategy at 64/256/1024 steps, batch 1 and 16, a semi-autoregressive variant (also with
#    Fast-dLLM's prefix and dual caches), block
#    diffusion (K = 16) with its key/value cache, AR with and without its cache; every row, AR included,
#    stopped after 20 s (reported as stopped, with what it measured)
section sample 150 --skip-training --sample-steps 64,256,1024 --sample-batch-sizes 1,16 --sample-block-size 128 \
    --block-caches prefix,dual \
    --block-size 16 --sample-limit-s 20
# 3. compiled training, next to eager in the same process (compiles take ~1 minute each)
section train_compile 150 --skip-sampling --no-compile --compare compile

say ""
say "== all sections: targets and the table"
"$PY" -m dllm_lite.bench --merge "$OUT/train_eager.json" "$OUT/sample.json" "$OUT/train_compile.json" \
    --json "$OUT/bench.json" 2>&1 | tee -a "$LOG"

#!/usr/bin/env bash
# Run the two GPU notebooks (07 tiny, 08 small) for real on a GPU machine, from the repository root:
#   bash benchmarks/gpu_notebooks.sh
# The machine has PyTorch but no Jupyter: the wheels in .whl/ (../shared/tools/device-wheels.sh)
# bring nbclient, ipykernel and datasets. The executed notebooks and their summaries land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
if [ -d .whl ]; then
    site=$(mktemp -d)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl || exit 1
    export PYTHONPATH="$site"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset DLLM_SMOKE
{
    echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) commit ${COMMIT:-unknown}"
    nvidia-smi -L
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    python3 notebooks/run_on_gpu.py --timeout 420 notebooks/07_tiny_config.ipynb notebooks/08_small_config.ipynb
} 2>&1 | tee "$OUT/notebooks.log"
cp notebooks/07_tiny_config.ipynb notebooks/08_small_config.ipynb "$OUT"/
cp runs/notebooks/07_tiny_summary.json runs/notebooks/08_small_summary.json "$OUT"/ 2>/dev/null
ls -la "$OUT"

#!/usr/bin/env bash
# The GPU check in one command (bench/gpu_check.py says what it measures). On the GPU machine:
#   bash bench/gpu_check.sh            # every step, each under its time limit (under 8 minutes in all)
# Prepare the data it carries here first: python bench/gpu_check.py --prepare-data ../shared/datasets/neu_seg
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "no CUDA device: the GPU check needs one (nothing measured)"
    exit 0
fi
missing=$("$PY" - <<'PY'
import importlib.util
need = ["autonad", "deap", "fvcore", "rich_argparse", "yaml", "onnxruntime", "PIL"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PY
)
if [ -n "$missing" ]; then
    echo "missing Python packages: $missing (install the project: pip install --no-deps -e . plus those wheels)"
    exit 1
fi
export PYTHONUNBUFFERED=1
exec "$PY" bench/gpu_check.py "$@"

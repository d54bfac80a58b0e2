#!/usr/bin/env bash
# Prepare, on this machine, what the GPU machine gets beside the working tree (it has PyTorch, onnxruntime,
# pyyaml, rich, matplotlib, jinja2, scipy and tensorboard, but not the packages below, and cannot fetch any):
#   .gpu-data/neu_seg  a part of NEU-Seg (480 training + 120 test images, about 6 MiB)
#   .whl/              pure-Python wheels of AutoNAD's other dependencies (Ray is too large to carry: 64 MiB
#                      travel at most, so the GPU check's search evaluates in process, on the GPU)
# Then one device call runs the check (the figures come back in $OUT):
#   command: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#            && export PYTHONPATH=/tmp/site:$PWD && bash bench/gpu_check.sh; cp bench/results/gpu_*.json
#            latency_tables/*.yaml $OUT/
#   carry: [".gpu-data", ".whl"]
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
"$PY" bench/gpu_check.py --prepare-data "${1:-../shared/datasets/neu_seg}"
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl deap rich-argparse termcolor thop yacs
"$PY" -m pip wheel -q --no-deps -w .whl fvcore==0.1.5.post20221221 iopath==0.1.10
du -sh .gpu-data .whl

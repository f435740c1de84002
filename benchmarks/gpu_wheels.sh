#!/usr/bin/env bash
# The wheel folder for benchmarks/gpu_run.sh on a GPU machine without internet: the packages nin-export needs
# that a CUDA-torch image usually lacks (onnxsim, jsonschema and its parts, polygraphy, nvidia-ml-py), for
# that machine's Python (default 3.12) on x86-64 Linux. About 11 MB; add others with EXTRA="pkg pkg".
#
#   bash benchmarks/gpu_wheels.sh .whl            # then carry .whl and run: WHEELS=.whl bash benchmarks/gpu_run.sh
#   PYVER=3.10 bash benchmarks/gpu_wheels.sh .whl
set -euo pipefail
dest=${1:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$dest"
$PY -m pip download -q --only-binary=:all: --no-deps --python-version "${PYVER:-3.12}" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$dest" onnxsim jsonschema jsonschema-specifications referencing rpds-py polygraphy nvidia-ml-py ${EXTRA:-}
du -sh "$dest"

#!/usr/bin/env bash
# One short GPU window, prepared: doctor, then PyTorch on CUDA with and without CUDA graphs, NVML energy
# and per-process memory, for both model pairs. Results go to benchmarks/results/<machine>/.
#
#   bash benchmarks/gpu_run.sh                 # on a machine with an NVIDIA GPU and a CUDA torch
#   WHEELS=dir bash benchmarks/gpu_run.sh      # offline: install nvidia-ml-py (and the rest) from a wheel folder
#
# Every step runs even if an earlier one failed; the exit status is that of the last failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
rc=0
if [ -n "${WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --find-links "$WHEELS" nvidia-ml-py || rc=$?
fi
$PY -m pip install -q --no-deps -e . || rc=$?
machine=$($PY -c "from nin_export.envinfo import machine_name; print(machine_name())")
out=benchmarks/results/$machine
mkdir -p "$out"
echo "== doctor ($machine)"
$PY -m nin_export.cli doctor -o "$out/doctor.json" || rc=$?
for model in nin-cifar10 nin-imagenet; do
  for graph in eager cuda-graph; do
    flag=$([ "$graph" = cuda-graph ] && echo --cuda-graph || true)
    echo "== bench $model, PyTorch CUDA, $graph"
    $PY -m nin_export.cli bench --model "$model" --backends torch --precisions fp32,fp16 --batch 1,16,64 \
      --power nvml --idle-s 2 --streams 2 --min-ms 2000 $flag -o "$out/$model-torch-$graph" --no-report || rc=$?
  done
done
$PY -m nin_export.cli report "$out"/*-torch-*/results.json -o "$out/report-torch-cuda" || rc=$?
exit $rc

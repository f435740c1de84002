#!/usr/bin/env bash
# A first look at a GPU in one short window (at most 5 minutes, BUDGET_S): doctor (GPU timing, CUDA graphs,
# two streams, NVML energy, an engine where a TensorRT is installed, cross-checked against Polygraphy), then
# both model pairs on PyTorch CUDA and TensorRT, eager and with CUDA graphs, energy from the power source
# the machine has. Results go to benchmarks/results/<machine>/gpu-run-<UTC time>/ and, when $OUT is set, into $OUT as
# one tarball plus the report and the log.
#
#   bash benchmarks/gpu_run.sh                   # a CUDA build of torch and the other packages installed
#   WHEELS=.whl bash benchmarks/gpu_run.sh       # offline: what is missing comes from a wheel folder
#                                                # (benchmarks/gpu_wheels.sh makes it, about 11 MB)
#
# Nothing is installed from the network and nothing is built: the package runs from this source tree
# (PYTHONPATH). Every step runs even if an earlier one failed; each is cut at the budget left; the exit
# status is that of the last failure. On a machine without a GPU the GPU rows and checks are skipped with
# their reasons and every other step completes.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BUDGET_S=${BUDGET_S:-290}
start=$(date +%s)
rc=0
left() { echo $((BUDGET_S - ($(date +%s) - start))); }

need=""
for pair in onnxsim:onnxsim jsonschema:jsonschema polygraphy:polygraphy pynvml:nvidia-ml-py click:click rich:rich \
  PIL:pillow sklearn:scikit-learn matplotlib:matplotlib onnxscript:onnxscript onnxruntime:onnxruntime; do
  $PY -c "import ${pair%%:*}" 2>/dev/null || need="$need ${pair#*:}"
done
if [ -n "$need" ] && [ -n "${WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --find-links "$WHEELS" $need || rc=$?
elif [ -n "$need" ]; then
  echo "missing:$need (offline? give WHEELS=DIR, made by benchmarks/gpu_wheels.sh)"
fi

machine=$($PY -c "from nin_export.core.envinfo import machine_name; print(machine_name())") || exit 1
run=gpu-run-$(date -u +%Y%m%dT%H%M%SZ) # this run's own folder: earlier runs and other results stay as they are
res=benchmarks/results/$machine/$run
work=${WORK:-$(mktemp -d)}
mkdir -p "$res"
exec > >(tee "$res/gpu_run.log") 2>&1
echo "== $machine, $(date -u +%FT%TZ), budget ${BUDGET_S} s, work files in $work"

step() {
  local name=$1
  shift
  if [ "$(left)" -lt 15 ]; then
    echo "== $name: not run, the ${BUDGET_S} s budget is spent"
    return
  fi
  echo "== $name"
  local t0 r
  t0=$(date +%s)
  timeout --signal=INT --kill-after=10 "$(left)" "$@"
  r=$?
  echo "== $name: exit $r after $(($(date +%s) - t0)) s"
  [ "$r" -ne 0 ] && rc=$r
}

step doctor $PY -m nin_export.cli doctor -o "$res/doctor.json"
for model in nin-cifar10 nin-imagenet; do
  for graph in eager cuda-graph; do
    flag=$([ "$graph" = cuda-graph ] && echo --cuda-graph || true)
    step "bench $model, $graph" $PY -m nin_export.cli bench --model "$model" --backends torch,trt --precisions fp32,fp16 \
      --batch 1,16 --idle-s 2 --streams 2 --min-ms 1000 --verify-trt $flag -o "$work/$model-$graph" --no-report
    if [ -f "$work/$model-$graph/results.json" ]; then
      mkdir -p "$res/$model-$graph" && cp "$work/$model-$graph/results.json" "$res/$model-$graph/"
    fi
  done
done
set -- "$res"/*/results.json
[ -f "$1" ] && step report $PY -m nin_export.cli report "$@" -o "$res/report"
echo "== done in $(($(date +%s) - start)) s, exit $rc"
if [ -n "${OUT:-}" ]; then
  sleep 1 # the log's tee catches up
  tar czf "$OUT/$run-$machine.tgz" -C "benchmarks/results/$machine" "$run"
  cp "$res/gpu_run.log" "$OUT/" && { [ ! -f "$res/report/report.md" ] || cp "$res/report/report.md" "$OUT/"; }
fi
exit $rc

#!/usr/bin/env bash
# Every GPU figure of benchmarks/README.md in one run (about 7 minutes on an H200), written to
# DIR/gpu_results.txt (DIR: the second argument, else $GPU_SUITE_DIR, else benchmarks/results).
#
#   bash benchmarks/gpu_suite.sh fetch       # with network access: wheels of blackjax and
#                                            # ml_collections into .whl/ (ignored by git), for a
#                                            # GPU machine that has no network access
#   bash benchmarks/gpu_suite.sh [run] [DIR] # on the GPU machine: installs .whl/ if present,
#                                            # then runs everything
#   bash benchmarks/gpu_suite.sh smoke [DIR] # anywhere: the same commands at toy sizes, on CPU
#
# Peaks (dense TFLOP/s, H200 SXM data sheet) for the fraction-of-peak column; override with
# PEAK_FP32 / PEAK_TF32 / PEAK_BF16. Each command has its own time limit, so one hang cannot
# take the whole run's time.
set -u
start_dir=$PWD
cd "$(dirname "$0")/.."
mode=${1:-run}
case "$mode" in
  fetch|run|smoke) ;;
  *) echo "usage: bash benchmarks/gpu_suite.sh [fetch | run [DIR] | smoke [DIR]]" >&2; exit 2 ;;
esac

if [ "$mode" = fetch ]; then
  mkdir -p .whl
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    -d .whl blackjax==1.7.1 ml_collections==1.1.0
  exit $?
fi

results_dir=${2:-${GPU_SUITE_DIR:-}}
if [ -z "$results_dir" ]; then
  results_dir=benchmarks/results
elif [ "${results_dir#/}" = "$results_dir" ]; then
  results_dir="$start_dir/$results_dir"   # relative to where the script was called from
fi
mkdir -p "$results_dir"
log="$results_dir/gpu_results.txt"
: > "$log"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

if [ "$mode" = smoke ]; then
  device=cpu; nf=8; batch=16; steps=3; repeats=1; limit=300
  precisions="fp32 bf16"; groups="--case toy --models 1 2"; recipes="toy_gmm mnist"
else
  device=gpu; nf=128; batch=256; steps=100; repeats=5; limit=150
  precisions="fp32 tf32 bf16"; groups="--models 1 8"; recipes="thesis cifar10 mnist"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv >> "$log" 2>&1
fi
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__)" >> "$log" 2>&1

declare -A peak=([fp32]=${PEAK_FP32:-67} [tf32]=${PEAK_TF32:-494} [bf16]=${PEAK_BF16:-989})

section() { echo; echo "### $*"; } >> "$log"
run() { timeout "$limit" "$@" >> "$log" 2>&1 || echo "(exit $? after at most ${limit}s)" >> "$log"; }

for precision in $precisions; do
  section "Langevin chain: vanilla ConvNet n_f $nf, batch $batch, K $steps, $precision"
  run python3 benchmarks/langevin.py --device $device --n_f $nf --batch $batch --steps $steps \
    --precision $precision --peak_tflops "${peak[$precision]}" --repeats $repeats
  section "Train step: vanilla ConvNet n_f $nf, batch $batch, K $steps, $precision"
  run python3 benchmarks/train_step.py --device $device --case vanilla_k100 --n_f $nf \
    --batch $batch --steps $steps --precision $precision --repeats $repeats
done

section "Toy MLP chain, batch 100, K 500"
run python3 benchmarks/langevin.py --device $device --model toy_mlp --n_f 32 --batch 100 \
  --steps 500 --repeats $repeats
section "Vmapped groups of models (the study engine)"
run python3 benchmarks/vmapped_models.py --device $device $groups --repeats 3
section "Memory: how large a batch and bank fit (XLA memory analysis of the train step)"
run python3 benchmarks/memory.py --device $device --recipes $recipes --device_gib 141

echo "done: $log"

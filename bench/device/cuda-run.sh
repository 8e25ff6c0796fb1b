#!/usr/bin/env bash
# The second call of a CUDA run on the GPU machine (docs/GPU.md, "What has been measured"), after
# a first call that carried .device and dist (npm run build here: the train part times the built
# commands) and ran:  source .device/unpack.sh; mkdir -p /root/k && cp .device/node /root/k/
# Carry .cuda and .devshared. Runs the named parts of bench:gpu in order, each under its own time
# limit so that one slow part leaves the others their time, and leaves each part's JSON and log,
# and bench/results, under $OUT.
#   bash bench/device/cuda-run.sh train serve      (parts: train, serve, decode, fp16)
set -uo pipefail
[ -f package.json ] || { echo "run from the project root" >&2; exit 2; }
[ $# -gt 0 ] || { echo "name the parts to run: train, serve, decode, fp16" >&2; exit 2; }
for part in "$@"; do
  case $part in train | serve | decode | fp16) ;; *) echo "unknown part $part (train, serve, decode, fp16)" >&2; exit 2 ;; esac
done
# setup.sh swaps node_modules' onnxruntime-node for the CUDA one: only on the GPU machine
[ -x /root/k/node ] && command -v nvidia-smi >/dev/null || { echo "run on the GPU machine, after the call that unpacked .device" >&2; exit 2; }
case " $* " in *" train "*) [ -f dist/cli/main.js ] || { echo "the train part times the built commands: carry dist (npm run build) in the first call" >&2; exit 2; } ;; esac
export PATH=/root/k:$PATH
source .cuda/setup.sh >/dev/null 2>&1
export KENNEL_SHARED=$PWD/.devshared
out=${OUT:-bench/results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for part in "$@"; do
  case $part in
    # the set is generated on a fresh machine first (about 30 s), then Kennel twice in one process
    # and twice as the built commands, and PyTorch
    train) limit=300; cmd=(bench/gpu.ts --only train --device cuda --json) ;;
    # the naive peer's levels are slow: the endpoint's quick run takes about 140 s
    serve) limit=240; cmd=(bench/serve.ts --quick --json --device cuda --model resnet50) ;;
    decode) limit=150; cmd=(bench/gpu.ts --only decode --device cuda --json) ;;
    fp16) limit=150; cmd=(bench/gpu.ts --only fp16 --device cuda --json) ;;
  esac
  started=$(date +%s)
  timeout "$limit" node --import tsx "${cmd[@]}" > "$out/$part.json" 2> "$out/$part.log"
  echo "$part: exit $? after $(( $(date +%s) - started )) s"
done
[ "$out" = bench/results ] || tar czf "$out/results.tgz" bench/results

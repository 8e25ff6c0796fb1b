#!/usr/bin/env bash
# Builds .cuda/ at the project root for a CUDA run on the GPU machine (docs/GPU.md, "What has been
# measured"): onnxruntime-node 1.29 with ONNX Runtime 1.29's CUDA provider (npm
# com.github.asus4.onnxruntime.linux-x64-gpu 0.4.9, built against it), the provider's code for GPUs
# other than sm_90 (H100, H200) zeroed so that the whole fits the 64 MiB carry limit beside the
# repository, and setup.sh. Run after ../shared/device/pack.sh (.device); on the GPU machine, in a
# call after the one that unpacked .device there:  source .cuda/setup.sh
set -euo pipefail
[ -f package.json ] || { echo "run from the project root" >&2; exit 2; }
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 onnxruntime-node@1.29.0 onnxruntime-common@1.29.0 >/dev/null
mkdir -p provider stage/onnxruntime-node stage/onnxruntime-common
tar xzf com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz -C provider
tar xzf onnxruntime-node-1.29.0.tgz -C stage/onnxruntime-node --strip-components=1
tar xzf onnxruntime-common-1.29.0.tgz -C stage/onnxruntime-common --strip-components=1
rm -rf stage/onnxruntime-node/bin/napi-v6/{darwin,win32,linux/arm64}
lib=stage/onnxruntime-node/bin/napi-v6/linux/x64
node "$root/bench/device/strip-cubins.mjs" provider/package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so "$lib/libonnxruntime_providers_cuda.so" 90
cp provider/package/Plugins/Linux/x64/libonnxruntime_providers_shared.so "$lib/"
rm -rf "$root/.cuda" && mkdir -p "$root/.cuda"
tar -C stage -cf - onnxruntime-node onnxruntime-common | xz -T0 -6 > "$root/.cuda/ort129.tar.xz"
cat > "$root/.cuda/setup.sh" <<'SETUP'
# sourced on the GPU machine from the project root, once .device/unpack.sh has run on this machine:
# swaps in onnxruntime-node 1.29 with its CUDA provider and puts PyTorch's CUDA 13 and cuDNN
# libraries (the machine's only ones) on the library path
if [ ! -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so ]; then
  rm -rf node_modules/onnxruntime-node node_modules/onnxruntime-common
  xz -dc .cuda/ort129.tar.xz | tar -C node_modules -xf -
fi
export LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(os.path.dirname(torch.__file__)))' | xargs -I{} find {}/nvidia {}/torch/lib -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
SETUP
du -sh "$root/.cuda"

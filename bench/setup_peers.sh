#!/usr/bin/env bash
# Peer systems for the side-by-side benchmarks, each in its own pinned venv under .venv/:
#   .venv/ort  onnxruntime (official wheel) over Debian's python3 + torch 1.13 + numpy 1.24
#   .venv/tvm  apache-tvm (brings its own numpy 2.x, so it cannot share torch 1.13's site-packages)
# PyTorch itself is Debian's python3-torch with OpenBLAS (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.23.2
TVM_VERSION=0.27.0.post1
# apache-tvm 0.27.0.post1 asks for apache-tvm-ffi>=0.1.14.post0; with 0.1.15.post2 MetaSchedule
# segfaults in tvm::ffi::ToJSONGraph, so pin the FFI; psutil + cloudpickle = its popen-pool extra
TVM_FFI_VERSION=0.1.14.post1
PSUTIL_VERSION=7.2.2
CLOUDPICKLE_VERSION=3.1.3
ONNX_VERSION=1.17.0
# MetaSchedule's default "xgb" cost model (without it tvm_worker.py falls back to "random"); the
# CPU-only wheel, and the scipy it pulls
XGBOOST_CPU_VERSION=3.2.0
SCIPY_VERSION=1.17.1

# pip install of pinned versions is idempotent: it only fetches what is missing or different.
[[ -x .venv/ort/bin/python ]] || /usr/bin/python3 -m venv --system-site-packages .venv/ort
# onnx >= 1.13 for onnxruntime.quantization (onnx.reference); Debian has 1.12
.venv/ort/bin/pip install -q "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION"
if [[ "${1:-}" == "--tvm" ]]; then
  [[ -x .venv/tvm/bin/python ]] || /usr/bin/python3 -m venv .venv/tvm
  .venv/tvm/bin/pip install -q "apache-tvm==$TVM_VERSION" "apache-tvm-ffi==$TVM_FFI_VERSION" \
    "onnx==$ONNX_VERSION" "psutil==$PSUTIL_VERSION" "cloudpickle==$CLOUDPICKLE_VERSION" \
    "xgboost-cpu==$XGBOOST_CPU_VERSION" "scipy==$SCIPY_VERSION"
fi

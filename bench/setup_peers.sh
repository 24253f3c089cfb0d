#!/usr/bin/env bash
# Peer systems for the side-by-side benchmarks, each in its own pinned venv under .venv/:
#   .venv/ort  onnxruntime (official wheel) over Debian's python3 + torch 1.13 + numpy 1.24
#   .venv/tvm  apache-tvm (brings its own numpy 2.x, so it cannot share torch 1.13's site-packages)
# PyTorch itself is Debian's python3-torch with OpenBLAS (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.23.2
TVM_VERSION=0.27.0.post1
ONNX_VERSION=1.17.0

if [[ ! -x .venv/ort/bin/python ]] || ! .venv/ort/bin/python -c "import onnxruntime" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages .venv/ort
  .venv/ort/bin/pip install -q "onnxruntime==$ORT_VERSION"
fi
if [[ "${1:-}" == "--tvm" ]]; then
  if [[ ! -x .venv/tvm/bin/python ]] || ! .venv/tvm/bin/python -c "import tvm" 2>/dev/null; then
    /usr/bin/python3 -m venv .venv/tvm
    .venv/tvm/bin/pip install -q "apache-tvm==$TVM_VERSION" "onnx==$ONNX_VERSION"
  fi
fi

#!/usr/bin/env bash
# The main job, from nothing: install, build kiln (host + aarch64 runtime), build a small BERT in
# PyTorch, export it to ONNX, compile it for this PC, the Pi 4 and the Pi 5, run all three (the
# Pi ones under qemu-aarch64) and compare with PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh --aarch64
PYTHONPATH=$PWD/python /usr/bin/python3 scripts/demo.py "$@"

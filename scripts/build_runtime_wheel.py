#!/usr/bin/env python3
"""Builds the board wheel kiln-runtime from a build dir (no compiler runs; stdlib only):

    scripts/build_runtime_wheel.py build-aarch64 [--out out/wheels]
        -> out/wheels/kiln_runtime-<VERSION>-py3-none-manylinux_2_<N>_aarch64.whl  (the Pi's)
    scripts/build_runtime_wheel.py build          -> ..._x86_64.whl

The build dir must hold runtime/libkiln_runtime.so and tools/kiln-rt/kiln-rt (scripts/build.sh
[--aarch64]). The work is done by python/kiln/_runtime_wheel.py, which `kiln compile --bundle`
runs too: it reads the architecture and the glibc the binaries need for the platform tag, and
refuses a binary that needs a library beyond libc, libm, libstdc++ and libgcc_s.
On the board: pip install kiln_runtime-*.whl (numpy is its only dependency).
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
from kiln import _runtime_wheel  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir", nargs="?", default="build-aarch64")
    ap.add_argument("--out", default="out/wheels")
    a = ap.parse_args()
    build = Path(a.build_dir)
    _runtime_wheel.main(["--lib", str(build / "runtime" / "libkiln_runtime.so"),
                         "--cli", str(build / "tools" / "kiln-rt" / "kiln-rt"),
                         "--python-dir", str(ROOT / "python"), "--out", a.out])


if __name__ == "__main__":
    main()

"""The console commands `kiln` and `kiln-rt` of the wheels (`kiln`, `kiln-runtime`): each execs
the binary that the wheel packs next to this file (kiln/kiln, kiln/kiln-rt; they find
libkiln_runtime.so beside them through their $ORIGIN run path)."""
import os
import sys
from pathlib import Path


def _exec(name):
    exe = Path(__file__).resolve().parent / name
    if not exe.is_file():
        sys.exit(f"{name}: {exe} is missing: this kiln package has no {name} binary "
                 f"(reinstall the wheel: pip install --force-reinstall ...)")
    os.execv(str(exe), [name, *sys.argv[1:]])


def kiln():
    _exec("kiln")


def kiln_rt():
    _exec("kiln-rt")

"""Paths, environment and helpers shared by the Python API, tokenizer, bundle and .deb tests.

Binaries come from KILN_BUILD_DIR (default build/) and KILN_AARCH64_BUILD_DIR (default
build-aarch64/), as in tests/e2e; kiln.compile and kiln.runtime are pointed at them through
KILN_BIN and KILN_RUNTIME_LIB. Pi bundles take the runtime the way a user's kiln does: the board
runtime built with zig (build/portable-aarch64/, scripts/build.sh --aarch64), else build-aarch64/;
native bundles take build/portable-x86_64/, else build/'s own.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

BUILD = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build")).resolve()
AARCH64_BUILD = Path(os.environ.get("KILN_AARCH64_BUILD_DIR", ROOT / "build-aarch64")).resolve()
KILN = BUILD / "tools" / "kiln" / "kiln"
KILN_RT = BUILD / "tools" / "kiln-rt" / "kiln-rt"
RUNTIME_LIB = BUILD / "runtime" / "libkiln_runtime.so"
AARCH64_KILN_RT = AARCH64_BUILD / "tools" / "kiln-rt" / "kiln-rt"
PORTABLE_AARCH64 = BUILD / "portable-aarch64"  # the board runtimes: cmake/portable_runtime.cmake
PORTABLE_X86_64 = BUILD / "portable-x86_64"
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
QEMU_CPUS = {"rpi4": "cortex-a72", "rpi5": "cortex-a76"}
# scripts/test.sh --sanitize: the binaries need libasan, which no bundle's runtime wheel may need
# (python/kiln/_runtime_wheel.py refuses it), so bundles are not made there
SANITIZED = "-fsanitize" in os.environ.get("KILN_EXTRA_CXXFLAGS", "")
# Debian's arm64 python3 + numpy, unpacked privately by scripts/setup_arm64_python.sh
ARM64_PYTHON_SYSROOT = ROOT / ".cache" / "arm64-sysroot"

os.environ["KILN_BIN"] = str(KILN)
os.environ["KILN_RUNTIME_LIB"] = str(RUNTIME_LIB)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import kiln.runtime  # noqa: E402
from kiln.models.bert import BertConfig, make_inputs  # noqa: E402

# One layer, 24 positions: the compiled maximum sequence length is 24.
TINY = BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=24)
INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def have_qemu():
    return shutil.which("qemu-aarch64") is not None and Path(AARCH64_SYSROOT).is_dir()


def bundled_aarch64_runtime():
    """The build dir `kiln compile --target rpi* --bundle` takes the runtime from, or None."""
    for d in (PORTABLE_AARCH64, AARCH64_BUILD):
        if (d / "tools" / "kiln-rt" / "kiln-rt").exists() and \
                (d / "runtime" / "libkiln_runtime.so").exists():
            return d
    return None


def have_aarch64_runtime():
    return bundled_aarch64_runtime() is not None


def elf_needs(path):
    """(DT_NEEDED set, RUNPATH, {family: newest version tuple}) of an ELF file, from readelf."""
    def readelf(flag):
        return subprocess.run(["readelf", "-W", flag, str(path)], capture_output=True, text=True,
                              check=True).stdout
    dyn = readelf("-d")
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn))
    runpath = re.findall(r"\(RUNPATH\)\s+Library runpath: \[([^\]]*)\]", dyn)
    newest = {}
    for family, number in re.findall(r"Name: (GLIBC|GLIBCXX|CXXABI|GCC)_([\d.]+)\s",
                                     readelf("-V")):
        v = tuple(int(x) for x in number.split("."))
        newest[family] = max(newest.get(family, v), v)
    return needed, (runpath or [""])[0], newest


def clean_env(**extra):
    """The environment of a user on the board: no PYTHONPATH, no KILN_* variables."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith("KILN_")}
    env.update(extra)
    return env


def torch_outputs(model, feed):
    with torch.no_grad():
        out = model(*[torch.from_numpy(feed[n]) for n in INPUT_NAMES if n in feed])
    return [o.numpy() for o in out]




# --- deploy bundles (test_bundle.py, test_bundle_qemu_python.py) ---------------------------------

def unpack(archive, dest):
    """`tar xf` in an empty directory, as on the board; returns the bundle directory."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "xf", str(archive)], cwd=dest, check=True)
    (top,) = list(dest.iterdir())
    return top


def feed(batch=2, seq=7):
    return make_inputs(TINY, batch, seq)


def save_inputs(where, inputs):
    """Saves NAME.npy files in `where`; returns infer.py's / kiln-rt's --input arguments."""
    args = []
    for name, arr in inputs.items():
        np.save(where / f"{name}.npy", arr)
        args += ["--input", f"{name}={name}.npy"]
    return args


def host_outputs(art, inputs=None, text=None):
    m = kiln.runtime.load(art)
    return m(text=text) if text else m(**inputs)

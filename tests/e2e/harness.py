"""Drives the kiln CLIs the way a user does: `kiln compile`, `kiln run` on the host and
`kiln-rt run` for aarch64 under qemu-aarch64 (Cortex-A72 = Pi 4, Cortex-A76 = Pi 5)."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build"))
AARCH64_BUILD = Path(os.environ.get("KILN_AARCH64_BUILD_DIR", ROOT / "build-aarch64"))
KILN = BUILD / "tools" / "kiln" / "kiln"
KILN_RT_AARCH64 = AARCH64_BUILD / "tools" / "kiln-rt" / "kiln-rt"
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
QEMU_CPUS = {"rpi4": "cortex-a72", "rpi5": "cortex-a76"}


class KilnError(RuntimeError):
    """A kiln command failed; .stderr holds its message."""

    def __init__(self, cmd, proc):
        self.stderr = proc.stderr
        self.stdout = proc.stdout
        self.returncode = proc.returncode
        super().__init__(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stderr}")


def _check(cmd, timeout=900, env=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env=env)
    if proc.returncode != 0:
        raise KilnError(cmd, proc)
    return proc


def compile_model(onnx_path, out_dir, target="native", *extra):
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    _check([KILN, "compile", onnx_path, "-o", out_dir, "--target", target, *extra])
    return out_dir


def qemu_prefix(cpu):
    return ["qemu-aarch64", "-L", AARCH64_SYSROOT, "-cpu", cpu]


def run_model(artifact, inputs, work_dir, qemu_cpu=None, threads=None, env=None, log=None,
              load=True):
    """Runs the artifact on a dict of numpy inputs; returns {output name: array}, or with
    load=False the directory of the output .npy files (see load_outputs).
    With qemu_cpu the aarch64 kiln-rt runs under qemu-aarch64 with that CPU model (qemu-user
    passes the environment on to the guest). env: extra environment variables. log: a list that
    receives the run's --verbose stdout."""
    work_dir = Path(work_dir)
    in_dir, out_dir = work_dir / "in", work_dir / "out"
    for d in (in_dir, out_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    args = []
    for name, arr in inputs.items():
        np.save(in_dir / f"{name}.npy", arr)
        args += ["--input", f"{name}={in_dir / (name + '.npy')}"]
    tool = [*qemu_prefix(qemu_cpu), KILN_RT_AARCH64] if qemu_cpu else [KILN]
    cmd = [*tool, "run", artifact, *args, "--output-dir", out_dir]
    if threads:
        cmd += ["--threads", str(threads)]
    if log is not None:
        cmd += ["--verbose"]
    proc = _check(cmd, env={**os.environ, **env} if env else None)
    if log is not None:
        log.append(proc.stdout)
    return load_outputs(out_dir) if load else out_dir


def load_outputs(out_dir):
    """{output name: array} of a run's --output-dir. np.load parses each header with ast: on
    Python 3.11 two threads in ast at once fail with "AST constructor recursion depth mismatch"
    (cpython#106905), so threaded callers load in one thread."""
    return {p.stem: np.load(p) for p in Path(out_dir).glob("*.npy")}


def host_cpu_flags():
    """The x86 CPU flags of /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def max_abs_diff(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0

"""The Pi bundles' Python path, as on the board: Debian's arm64 python3 + numpy (a private sysroot
made by scripts/setup_arm64_python.sh, nothing arm64 installed on the host) run `python3 infer.py`
under qemu-aarch64 as a Cortex-A72 (rpi4) and a Cortex-A76 (rpi5), in a clean directory holding
only the unpacked bundle. What infer.py saves matches the host runtime; an rpi5 bundle on a
Cortex-A72 stops with the runtime's CPU-feature message."""
import subprocess

import numpy as np
import pytest

from kiln_testenv import (ARM64_PYTHON_SYSROOT, QEMU_CPUS, ROOT, clean_env, feed,
                          have_aarch64_runtime, have_qemu, host_outputs, save_inputs, unpack)

pytestmark = pytest.mark.skipif(not (have_qemu() and have_aarch64_runtime()),
                                reason="needs qemu-aarch64 and the aarch64 runtime "
                                       "(scripts/build.sh --aarch64)")
TEXTS = ["kiln runs bert on a raspberry pi.", "Hello from the board!"]


@pytest.fixture(scope="session")
def arm64_python():
    """argv prefix that runs the sysroot's python3 under qemu (the caller adds -cpu)."""
    if not (ARM64_PYTHON_SYSROOT / ".kiln-sysroot-stamp").exists():
        proc = subprocess.run([str(ROOT / "scripts" / "setup_arm64_python.sh")],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
            pytest.skip(f"no arm64 python3 + numpy: scripts/setup_arm64_python.sh failed "
                        f"(needs Debian's arm64 packages from the network):\n{tail}")
    return lambda cpu: ["qemu-aarch64", "-L", str(ARM64_PYTHON_SYSROOT), "-cpu", cpu,
                        str(ARM64_PYTHON_SYSROOT / "usr" / "bin" / "python3")]


def board_env():
    """A user's environment on the board; nothing of the host's loader or Python setup (no
    user site-packages: ~/.local/lib/python3.11 of the host would be seen through qemu)."""
    env = clean_env(PYTHONNOUSERSITE="1")
    for k in ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        env.pop(k, None)
    return env


def infer(python, top, *args):
    return subprocess.run([*python, "infer.py", *args], cwd=top, env=board_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("target", ["rpi4", "rpi5"])
def test_infer_py_under_qemu_matches_the_host(bundles, arm64_python, target, tmp_path):
    top = unpack(bundles[target][0], tmp_path / "pi")
    python = arm64_python(QEMU_CPUS[target])
    host_art = bundles["native"][1]

    inputs = feed()
    proc = infer(python, top, *save_inputs(top, inputs), "--output-dir", "out")
    assert proc.returncode == 0, proc.stderr
    assert "last_hidden_state: shape [2, 7, 32] float32" in proc.stdout, proc.stdout
    for name, want in host_outputs(host_art, inputs).items():
        np.testing.assert_allclose(np.load(top / "out" / f"{name}.npy"), want, atol=1e-5,
                                   rtol=0, err_msg=name)

    # text in: the bundled vocabulary, tokenized by the aarch64 runtime; two threads
    args = [a for t in TEXTS for a in ("--text", t)]
    proc = infer(python, top, *args, "--threads", "2", "--output-dir", "txt")
    assert proc.returncode == 0, proc.stderr
    assert "input_ids: [[2, 10, 11, 12, 13, 14, 15, 16, 17, 3], [2, 4, 5, 6, 7, 8, 3, 0, 0, 0]]" \
        in proc.stdout, proc.stdout
    assert "on 2 thread(s)" in proc.stdout
    for name, want in host_outputs(host_art, text=TEXTS).items():
        np.testing.assert_allclose(np.load(top / "txt" / f"{name}.npy"), want, atol=1e-5,
                                   rtol=0, err_msg=name)


def test_rpi5_bundle_on_a_pi4_cpu(bundles, arm64_python, tmp_path):
    top = unpack(bundles["rpi5"][0], tmp_path / "pi")
    proc = infer(arm64_python("cortex-a72"), top)
    assert proc.returncode == 1
    assert "infer.py:" in proc.stderr
    assert "artifact needs CPU feature 'asimddp' which this CPU lacks (target rpi5)" \
        in proc.stderr, proc.stderr

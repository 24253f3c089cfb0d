"""scripts/package_deb.sh: the runtime as a .deb for amd64 and arm64; contents, architecture, and
the unpacked kiln-rt / Python binding working (arm64 under qemu)."""
import shutil
import subprocess
import sys

import pytest

import kiln
from kiln_testenv import (AARCH64_BUILD, AARCH64_SYSROOT, BUILD, ROOT, SANITIZED, clean_env,
                      have_aarch64_runtime, have_qemu)

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
TRIPLET = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
FILES = ["usr/bin/kiln-rt", "usr/include/kiln/c_api.h", "usr/include/kiln/runtime.hpp",
         "usr/lib/python3/dist-packages/kiln/__init__.py",
         "usr/lib/python3/dist-packages/kiln/runtime.py"]


def package(arch, build, out):
    proc = subprocess.run([str(ROOT / "scripts" / "package_deb.sh"), arch, str(build), str(out)],
                          capture_output=True, text=True, timeout=120)
    return proc


def check_deb(arch, build, tmp_path):
    proc = package(arch, build, tmp_path)
    assert proc.returncode == 0, proc.stderr
    deb = tmp_path / f"kiln-runtime_{kiln.__version__}_{arch}.deb"
    assert deb.exists() and deb.stat().st_size < 1_000_000
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Architecture", "Depends"],
                          capture_output=True, text=True, check=True).stdout
    assert "Package: kiln-runtime" in info and f"Architecture: {arch}" in info
    assert "libstdc++6" in info
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for f in FILES + [f"usr/lib/{TRIPLET[arch]}/libkiln_runtime.so"]:
        assert (root / f).is_file(), f
    return root


@pytest.mark.skipif(SANITIZED, reason="the .deb packs the release runtime, not a sanitized one")
def test_amd64_deb(tmp_path, tiny_onnx):
    root = check_deb("amd64", BUILD, tmp_path)
    art = kiln.compile(str(tiny_onnx), output_dir=tmp_path / "art")
    lib = root / "usr/lib" / TRIPLET["amd64"]
    env = clean_env(LD_LIBRARY_PATH=str(lib))
    proc = subprocess.run([str(root / "usr/bin/kiln-rt"), "inspect", str(art)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "target     native" in proc.stdout, proc.stderr
    # the packaged binding finds the library on the loader's path, as after `apt install`
    code = (f"import kiln.runtime; m = kiln.runtime.load({str(art)!r}); "
            "print(m.get_num_outputs())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean_env(LD_LIBRARY_PATH=str(lib),
                                        PYTHONPATH=str(root / "usr/lib/python3/dist-packages")))
    assert proc.stdout.strip() == "2", proc.stderr


@pytest.mark.skipif(not (have_qemu() and have_aarch64_runtime()),
                    reason="needs qemu-aarch64 and the aarch64 runtime")
def test_arm64_deb(tmp_path, tiny_onnx):
    root = check_deb("arm64", AARCH64_BUILD, tmp_path)
    art = kiln.compile(str(tiny_onnx), target="rpi4", output_dir=tmp_path / "art")
    lib = root / "usr/lib" / TRIPLET["arm64"]
    proc = subprocess.run(["qemu-aarch64", "-L", AARCH64_SYSROOT, "-cpu", "cortex-a72", "-E",
                           f"LD_LIBRARY_PATH={lib}", str(root / "usr/bin/kiln-rt"), "inspect",
                           str(art)], capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0 and "target     rpi4" in proc.stdout, proc.stderr


def test_wrong_architecture_build_is_refused(tmp_path):
    proc = package("arm64", BUILD, tmp_path)
    assert proc.returncode == 1 and "is not an arm64 binary" in proc.stderr
    proc = package("armhf", BUILD, tmp_path)
    assert proc.returncode == 2 and "expected amd64 or arm64" in proc.stderr

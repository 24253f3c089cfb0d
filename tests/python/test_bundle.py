"""`kiln compile --bundle`: the archive a user copies to the board. An x86 bundle runs end to end
from a clean directory holding only the unpacked bundle (infer.py, kiln-rt); the aarch64 bundles'
kiln-rt runs under qemu-aarch64 as a Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5) and matches the
host (infer.py under qemu, with Debian's arm64 python3 + numpy: test_bundle_qemu_python.py).
Bad input: a bundle for another architecture, a missing libkiln_runtime.so, a corrupted archive."""
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from kiln_testenv import (AARCH64_SYSROOT, KILN, PORTABLE_AARCH64, QEMU_CPUS as QEMU,
                          bundled_aarch64_runtime, clean_env, elf_needs, feed, have_aarch64_runtime,
                          have_qemu, host_outputs, save_inputs, unpack)

FILES = {"model.json", "model.so", "model.params", "vocab.txt", "libkiln_runtime.so", "kiln-rt",
         "kiln/__init__.py", "kiln/runtime.py", "infer.py", "README.md", "SHA256SUMS"}
needs_aarch64 = pytest.mark.skipif(not (have_qemu() and have_aarch64_runtime()),
                                   reason="needs qemu-aarch64 and the aarch64 runtime "
                                          "(scripts/build.sh --aarch64)")


def test_archive_layout(bundles):
    archive, _ = bundles["native"]
    with tarfile.open(archive) as tar:
        names = {n[len("kiln-native/"):] for n in tar.getnames() if n != "kiln-native"}
        members = {m.name: m for m in tar.getmembers()}
    wheels = {n for n in names if n.endswith(".whl")}  # test_wheels.py checks it
    assert len(wheels) == 1 and next(iter(wheels)).startswith("kiln_runtime-"), wheels
    assert names - {"kiln"} - wheels == FILES
    assert members["kiln-native/kiln-rt"].mode & 0o111
    assert archive.stat().st_size < 4_000_000  # the runtime twice: loose and in the wheel


def test_x86_bundle_runs_from_a_clean_directory(bundles, tmp_path):
    archive, art = bundles["native"]
    top = unpack(archive, tmp_path / "board")
    assert top.name == "kiln-native"
    inputs = feed()
    args = save_inputs(top, inputs)
    env = clean_env()
    proc = subprocess.run([sys.executable, "infer.py", *args, "--output-dir", "out"], cwd=top,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "last_hidden_state: shape [2, 7, 32]" in proc.stdout
    want = host_outputs(art, inputs)
    for name, w in want.items():
        np.testing.assert_array_equal(np.load(top / "out" / f"{name}.npy"), w)
    # text in, with the bundled vocabulary; no arguments = a sample text
    proc = subprocess.run([sys.executable, "infer.py", "--text", "Hello from the board!",
                           "--output-dir", "t"], cwd=top, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "input_ids: [[2, 4, 5, 6, 7, 8, 3]]" in proc.stdout
    want = host_outputs(art, text=["Hello from the board!"])
    np.testing.assert_array_equal(np.load(top / "t" / "pooler_output.npy"), want["pooler_output"])
    proc = subprocess.run([sys.executable, "infer.py"], cwd=top, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "pooler_output: shape [1, 32]" in proc.stdout, proc.stderr
    # kiln-rt finds the bundled libkiln_runtime.so through its RUNPATH $ORIGIN
    proc = subprocess.run(["./kiln-rt", "run", ".", *args, "--output-dir", "rt"], cwd=top,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name, w in host_outputs(art, inputs).items():
        np.testing.assert_array_equal(np.load(top / "rt" / f"{name}.npy"), w)


def test_sha256sums_cover_the_bundle(bundles, tmp_path):
    top = unpack(bundles["native"][0], tmp_path)
    proc = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=top, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = {line.split("  ", 1)[1] for line in (top / "SHA256SUMS").read_text().splitlines()}
    assert {f for f in listed if not f.endswith(".whl")} == FILES - {"SHA256SUMS"}
    assert len(listed) == len(FILES)


@needs_aarch64
@pytest.mark.parametrize("target", ["rpi4", "rpi5"])
def test_aarch64_bundle_under_qemu_matches_the_host(bundles, tiny_onnx, target, tmp_path):
    archive, _ = bundles[target]
    top = unpack(archive, tmp_path / "pi")
    inputs = feed()
    args = save_inputs(top, inputs)
    qemu = ["qemu-aarch64", "-L", AARCH64_SYSROOT, "-cpu", QEMU[target]]
    proc = subprocess.run([*qemu, "./kiln-rt", "run", ".", *args, "--output-dir", "out"],
                          cwd=top, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    host = host_outputs(bundles["native"][1], inputs)
    for name, w in host.items():
        np.testing.assert_allclose(np.load(top / "out" / f"{name}.npy"), w, atol=1e-5, rtol=0)
    proc = subprocess.run([*qemu, "./kiln-rt", "run", ".", "--text", "kiln runs bert on a "
                           "raspberry pi.", "--verbose", "--output-dir", "txt"], cwd=top,
                          env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "text 0: input_ids 2 10 11 12 13 14 15 16 17 3" in proc.stdout
    host = host_outputs(bundles["native"][1], text=["kiln runs bert on a raspberry pi."])
    np.testing.assert_allclose(np.load(top / "txt" / "pooler_output.npy"),
                               host["pooler_output"], atol=1e-5, rtol=0)


# --- bad input ----------------------------------------------------------------------------------

@needs_aarch64
def test_bundle_for_another_architecture(bundles, tmp_path):
    top = unpack(bundles["rpi5"][0], tmp_path)
    proc = subprocess.run([sys.executable, "infer.py"], cwd=top, env=clean_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "this bundle is for aarch64 (target rpi5), but this machine is x86_64" in proc.stderr
    with pytest.raises(OSError, match="Exec format error"):
        subprocess.run(["./kiln-rt", "inspect", "."], cwd=top)


def load_infer(top):
    spec = importlib.util.spec_from_file_location("infer", top / "infer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_infer_refuses_a_32_bit_arm_userland(bundles, tmp_path, monkeypatch):
    """What a Raspberry Pi OS 32-bit user sees (simulated: platform and pointer size)."""
    top = unpack(bundles["native"][0], tmp_path)
    infer = load_infer(top)
    model = {"target": {"name": "rpi5", "arch": "aarch64"}}
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.json").write_text(__import__("json").dumps(model))
    monkeypatch.setattr(infer.platform, "machine", lambda: "armv7l")
    with pytest.raises(SystemExit, match="32-bit Arm system: install a 64-bit OS"):
        infer.check_platform(tmp_path / "m")
    monkeypatch.setattr(infer.platform, "machine", lambda: "aarch64")  # 64-bit kernel
    monkeypatch.setattr(infer.struct, "calcsize", lambda fmt: 4)         # 32-bit python
    with pytest.raises(SystemExit, match="userland is 32-bit"):
        infer.check_platform(tmp_path / "m")


def test_infer_names_the_glibc_the_runtime_needs(bundles, tmp_path, monkeypatch):
    """An OS older than the bundle's runtime: infer.py reads the glibc floor from the wheel's
    manylinux tag instead of leaving the user a loader error (simulated: platform.libc_ver)."""
    top = unpack(bundles["native"][0], tmp_path)
    infer = load_infer(top)
    (wheel,) = top.glob("kiln_runtime-*.whl")
    floor = infer.needed_glibc(top)
    assert floor == (2, int(re.search(r"manylinux_2_(\d+)_", wheel.name).group(1)))
    monkeypatch.setattr(infer.platform, "libc_ver", lambda: ("glibc", f"2.{floor[1] - 1}"))
    with pytest.raises(SystemExit, match=rf"glibc 2.{floor[1] - 1}; this bundle's kiln runtime "
                                         rf"needs glibc 2.{floor[1]} or newer"):
        infer.check_platform(top)
    monkeypatch.setattr(infer.platform, "libc_ver", lambda: ("glibc", f"2.{floor[1]}"))
    infer.check_platform(top)


def test_missing_runtime_library(bundles, tmp_path):
    top = unpack(bundles["native"][0], tmp_path)
    (top / "libkiln_runtime.so").unlink()
    env = clean_env()
    proc = subprocess.run([sys.executable, "infer.py"], cwd=top, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "libkiln_runtime.so not found" in proc.stderr, proc.stderr
    proc = subprocess.run(["./kiln-rt", "inspect", "."], cwd=top, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 127
    assert "error while loading shared libraries: libkiln_runtime.so" in proc.stderr


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_corrupted_archive(bundles, tmp_path, damage):
    data = bytearray(bundles["native"][0].read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    (tmp_path / "x").mkdir()
    proc = subprocess.run(["tar", "xf", str(bad)], cwd=tmp_path / "x", capture_output=True,
                          text=True)
    # gzip's CRC / length trailer catches any damage; the wording depends on where it is
    # ("unexpected end of file", "invalid compressed data--crc error", "Skipping to next header")
    assert proc.returncode != 0
    assert "gzip:" in proc.stderr or "tar:" in proc.stderr, proc.stderr


def test_corrupted_file_inside_the_bundle(bundles, tmp_path):
    top = unpack(bundles["native"][0], tmp_path)
    params = top / "model.params"
    data = bytearray(params.read_bytes())
    data[-100] ^= 0x55
    params.write_bytes(bytes(data))
    proc = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=top,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "model.params: FAILED" in proc.stdout
    proc = subprocess.run([sys.executable, "infer.py"], cwd=top, env=clean_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "checksum" in proc.stderr and "model.params" in proc.stderr


# --- kiln compile --bundle errors ------------------------------------------------------------

def compile_bundle(onnx, tmp_path, target, runtime_dir):
    env = dict(os.environ, KILN_AARCH64_RUNTIME_DIR=str(runtime_dir))
    return subprocess.run([str(KILN), "compile", str(onnx), "-o", str(tmp_path / "a"),
                           "--target", target, "--bundle", str(tmp_path / "b.tar.gz")],
                          env=env, capture_output=True, text=True, timeout=300)


def test_bundle_without_an_aarch64_runtime(tiny_onnx, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = compile_bundle(tiny_onnx, tmp_path, "rpi4", tmp_path / "empty")
    assert proc.returncode == 1
    assert "no aarch64 runtime for the bundle (libkiln_runtime.so and kiln-rt) in" in proc.stderr
    assert "build it with scripts/build.sh --aarch64" in proc.stderr
    assert not (tmp_path / "a").exists(), "should fail before compiling"
    assert not (tmp_path / "b.tar.gz").exists()


def test_bundle_with_a_runtime_of_the_wrong_architecture(tiny_onnx, tmp_path):
    from kiln_testenv import BUILD
    proc = compile_bundle(tiny_onnx, tmp_path, "rpi5", BUILD)
    assert proc.returncode == 1
    assert "libkiln_runtime.so is x86_64, the target needs aarch64" in proc.stderr


@needs_aarch64
def test_aarch64_binaries_in_the_bundle(bundles, tmp_path):
    top = unpack(bundles["rpi4"][0], tmp_path)
    for f in ("kiln-rt", "libkiln_runtime.so", "model.so"):
        head = (top / f).read_bytes()[:20]
        assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183, f
    source = bundled_aarch64_runtime()
    assert hashlib.sha256((top / "libkiln_runtime.so").read_bytes()).hexdigest() == \
        hashlib.sha256((source / "runtime" / "libkiln_runtime.so").read_bytes()).hexdigest()
    if source != PORTABLE_AARCH64:
        pytest.skip("no board runtime built with zig (scripts/build.sh --aarch64): the bundle "
                    "carries build-aarch64's")
    # the board runtime loads on any aarch64 glibc since 2.17 (Pi OS bullseye, Ubuntu 20.04):
    # no symbol version above GLIBC_2.17, no libstdc++ (libc++ is linked in)
    for f in ("kiln-rt", "libkiln_runtime.so"):
        needed, _, newest = elf_needs(top / f)
        assert newest["GLIBC"] <= (2, 17) and "GLIBCXX" not in newest, (f, newest)
        assert "libstdc++.so.6" not in needed, (f, needed)

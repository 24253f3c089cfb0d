"""The wheels (issue 16), each installed into a fresh venv outside the source tree:
- `kiln` (pyproject.toml, scikit-build-core, `pip wheel .`): kiln.compile on the tiny BERT, then
  kiln.runtime.load, against torch; the `kiln` / `kiln-rt` commands, the g++ checks, an x86 and a
  Pi bundle from the board runtimes the wheel carries (kiln/runtimes/<arch>/);
- `kiln-runtime` for x86_64 (scripts/build_runtime_wheel.py build/portable-x86_64/):
  kiln.runtime.load and kiln-rt;
- `kiln-runtime` for aarch64, as `kiln compile --bundle` packs it: installed for the private arm64
  python (scripts/setup_arm64_python.sh), which runs infer.py under qemu from it alone;
and an auditwheel-style check of the runtime wheels: the platform tag matches the newest glibc
symbol version the binaries need (manylinux_2_17 for the board runtimes built with zig), and they
need nothing beyond libc, libm, libpthread, libdl, libstdc++, libgcc_s. Then the sdist: every
tracked file, and the wheel build builds every target the wheel installs.

The host wheel's pip build reuses build/ as the backend's build dir (and leaves it as it was:
see host_wheel): the suite has just built it, so pip configures and installs in seconds.
KILN_WHEEL_BUILD_DIR=fresh builds from scratch in a temporary dir instead (compiler, runtime,
kiln-rt and the board runtimes, without tests: 12 min of CPU at -j2, too long for every run)."""
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from kiln._runtime_wheel import manylinux_policy

from kiln_testenv import (ARM64_PYTHON_SYSROOT, BUILD, PORTABLE_AARCH64, PORTABLE_X86_64,
                          QEMU_CPUS, ROOT, SANITIZED, bundled_aarch64_runtime, clean_env,
                          elf_needs, feed, have_aarch64_runtime, have_qemu, host_outputs,
                          save_inputs, unpack)

# Under scripts/test.sh --sanitize the binaries need the sanitizer runtime preloaded: not in a
# user's venv.
pytestmark = pytest.mark.skipif(SANITIZED, reason="the wheels are tested on the normal build")
VERSION = (ROOT / "VERSION").read_text().strip()
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0",
                  "libdl.so.2", "ld-linux-aarch64.so.1", "ld-linux-x86-64.so.2"}
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: numpy and torch 1.13 for --system-site-packages


def run(cmd, timeout=600, **kw):
    kw.setdefault("env", clean_env())
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def fresh_venv(where):
    """A new venv seeing Debian's numpy (and torch) through --system-site-packages."""
    run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", where])
    return Path(where)


def check_runtime_wheel(wheel, arch, tmp_path):
    """The auditwheel-style check; returns the unpacked wheel."""
    m = re.fullmatch(rf"kiln_runtime-{re.escape(VERSION)}-py3-none-manylinux_2_(\d+)_{arch}\.whl",
                     wheel.name)
    assert m, wheel.name
    tag_glibc = int(m.group(1))
    unpacked = tmp_path / "unzipped"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(unpacked)
        dist = f"kiln_runtime-{VERSION}.dist-info"
        assert f"Requires-Dist: numpy\n" in z.read(f"{dist}/METADATA").decode()
        assert f"Tag: py3-none-manylinux_2_{tag_glibc}_{arch}\n" in z.read(f"{dist}/WHEEL").decode()
        record = z.read(f"{dist}/RECORD").decode().splitlines()
    assert {"kiln/__init__.py", "kiln/runtime.py", "kiln/_cli.py", "kiln/libkiln_runtime.so",
            "kiln/kiln-rt"} <= names
    assert {line.split(",")[0] for line in record} == names
    newest = {}
    for elf, allowed in (("kiln/libkiln_runtime.so", ALLOWED_NEEDED),
                         ("kiln/kiln-rt", ALLOWED_NEEDED | {"libkiln_runtime.so"})):
        needed, runpath, versions = elf_needs(unpacked / elf)
        assert needed <= allowed, f"{elf} needs {needed - allowed}"
        for family, v in versions.items():
            newest[family] = max(newest.get(family, v), v)
        if elf.endswith("kiln-rt"):
            assert runpath.split(":")[0] == "$ORIGIN", runpath  # finds the wheel's library
    # the lowest manylinux policy (auditwheel's limits) that covers what the binaries need
    assert newest["GLIBC"] <= (2, tag_glibc), newest
    assert manylinux_policy(newest, arch) == tag_glibc, newest
    # installs on Raspberry Pi OS bookworm / Debian 12 (glibc 2.36, GCC 12's libstdc++)
    assert tag_glibc <= 36
    return unpacked


def test_one_version(tiny_onnx, tmp_path):
    """VERSION is the version of everything: the package, both CLIs, the C API, model.json."""
    import kiln
    from kiln_testenv import KILN, KILN_RT

    assert kiln.__version__ == VERSION
    assert run([KILN, "--version"]).stdout.strip() == f"kiln {VERSION}"
    assert run([KILN_RT, "--version"]).stdout.strip() == f"kiln-rt {VERSION}"
    art = kiln.compile(str(tiny_onnx), output_dir=tmp_path / "art")
    assert json.loads((art / "model.json").read_text())["compiler"]["version"] == VERSION
    assert json.loads(kiln.runtime.load(art).describe())["compiler_version"] == VERSION


# --- kiln-runtime, x86_64 --------------------------------------------------------------------

def test_x86_runtime_wheel_in_a_fresh_venv(bundles, tmp_path):
    out = tmp_path / "wheels"
    portable = PORTABLE_X86_64.is_dir()  # built with zig (scripts/build.sh): manylinux2014
    run([sys.executable, ROOT / "scripts" / "build_runtime_wheel.py",
         PORTABLE_X86_64 if portable else BUILD, "--out", out])
    (wheel,) = out.glob("*.whl")
    check_runtime_wheel(wheel, "x86_64", tmp_path)
    if portable:
        assert wheel.name.endswith("-py3-none-manylinux_2_17_x86_64.whl"), wheel.name
    env = fresh_venv(tmp_path / "venv")
    run([env / "bin" / "pip", "install", "--no-index", wheel], cwd=tmp_path)
    assert run([env / "bin" / "kiln-rt", "--version"]).stdout.strip() == f"kiln-rt {VERSION}"

    art = bundles["native"][1]
    inputs = feed()
    save_inputs(tmp_path, inputs)
    script = ("import sys, numpy as np, kiln, kiln.runtime\n"
              "assert kiln.__file__.startswith(sys.prefix), kiln.__file__\n"
              "assert kiln.__version__ == sys.argv[2], kiln.__version__\n"
              "m = kiln.runtime.load(sys.argv[1])\n"
              "out = m(**{n: np.load(n + '.npy') for n in m.input_names})\n"
              "np.savez('out.npz', **out)\n")
    run([env / "bin" / "python", "-c", script, art, VERSION], cwd=tmp_path)
    got = np.load(tmp_path / "out.npz")
    for name, want in host_outputs(art, inputs).items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)


# --- kiln-runtime, aarch64, from a Pi bundle -------------------------------------------------

@pytest.mark.skipif(not (have_qemu() and have_aarch64_runtime()),
                    reason="needs qemu-aarch64 and the aarch64 runtime (scripts/build.sh --aarch64)")
def test_aarch64_runtime_wheel_from_the_bundle_under_qemu(bundles, tmp_path):
    if not (ARM64_PYTHON_SYSROOT / ".kiln-sysroot-stamp").exists():
        pytest.skip("no arm64 python3 + numpy: scripts/setup_arm64_python.sh")
    top = unpack(bundles["rpi4"][0], tmp_path / "pi")
    (wheel,) = top.glob("kiln_runtime-*.whl")
    check_runtime_wheel(wheel, "aarch64", tmp_path)
    if bundled_aarch64_runtime() == PORTABLE_AARCH64:  # built with zig: manylinux2014
        assert wheel.name.endswith("-py3-none-manylinux_2_17_aarch64.whl"), wheel.name
    # What `pip install --no-index kiln_runtime-*.whl` does on the Pi, for the sysroot's python:
    # the host's pip installs the aarch64 wheel into a directory on its PYTHONPATH.
    tag = re.search(r"(manylinux_2_\d+_aarch64)", wheel.name).group(1)
    site = tmp_path / "arm64-site"
    run([SYSTEM_PYTHON, "-m", "pip", "install", "--no-index", "--no-deps", "--only-binary=:all:",
         "--platform", tag, "--python-version", "3.11", "--target", site, wheel])
    # infer.py runs from the wheel alone: the bundle's own runtime and binding are removed
    for loose in ("kiln", "libkiln_runtime.so", "kiln-rt"):
        subprocess.run(["rm", "-rf", str(top / loose)], check=True)
    python = ["qemu-aarch64", "-L", ARM64_PYTHON_SYSROOT, "-cpu", QEMU_CPUS["rpi4"],
              ARM64_PYTHON_SYSROOT / "usr" / "bin" / "python3"]
    env = clean_env(PYTHONNOUSERSITE="1", PYTHONPATH=str(site))
    inputs = feed()
    proc = run([*python, "infer.py", *save_inputs(top, inputs), "--output-dir", "out"], cwd=top,
               env=env)
    assert "last_hidden_state: shape [2, 7, 32] float32" in proc.stdout, proc.stdout
    proc = run([*python, "-c", "import kiln.runtime; print(kiln.runtime.__file__)"], cwd=top,
               env=env)
    assert proc.stdout.startswith(str(site)), proc.stdout
    for name, want in host_outputs(bundles["native"][1], inputs).items():
        np.testing.assert_allclose(np.load(top / "out" / f"{name}.npy"), want, atol=1e-5, rtol=0,
                                   err_msg=name)
    proc = run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "-cpu", "cortex-a72",
                site / "kiln" / "kiln-rt", "--version"])
    assert proc.stdout.strip() == f"kiln-rt {VERSION}"


# --- kiln, the host wheel ---------------------------------------------------------------------

def cache_value(cache_text, name):
    m = re.search(rf"^{name}:[A-Z]+=(.*)$", cache_text, re.M)
    return m.group(1) if m else None


@pytest.fixture(scope="module")
def host_wheel(tmp_path_factory):
    """pip wheel . through the PEP 517 backend (scikit-build-core from PyPI, pinned, in pip's
    isolated build env). It reuses build/ as its build dir and leaves it as it was: scikit-build-
    core clears a build dir's CMake cache when its isolated env is new (always, with pip) unless
    the dir has no .skbuild-info.json, and configures with Python's CC / CXX unless they are set;
    so the test removes that file, passes build/'s own compilers, and puts back build/'s cache
    (else the next configure would drop the tests and the next build recompile everything)."""
    out = tmp_path_factory.mktemp("host-wheel")
    build_dir = Path(os.environ.get("KILN_WHEEL_BUILD_DIR", str(BUILD)))
    fresh = str(build_dir) == "fresh"
    if fresh:
        build_dir = out / "cmake-build"
    env = clean_env(CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("JOBS", "2"))
    cache = build_dir / "CMakeCache.txt"
    saved = cache.read_text() if cache.exists() else None
    if saved:
        (build_dir / ".skbuild-info.json").unlink(missing_ok=True)
        for var, key in (("CC", "CMAKE_C_COMPILER"), ("CXX", "CMAKE_CXX_COMPILER")):
            env[var] = cache_value(saved, key) or env.get(var, "")
    try:
        run([SYSTEM_PYTHON, "-m", "pip", "wheel", "--no-deps", "-w", out,
             f"--config-settings=build-dir={build_dir}", ROOT], timeout=3600, env=env, cwd=out)
    finally:
        if saved and not fresh:
            cache.write_text(saved)
            for f in (".skbuild-info.json", "CMakeInit.txt"):
                (build_dir / f).unlink(missing_ok=True)
            run(["cmake", build_dir])
    (wheel,) = out.glob("kiln-*.whl")
    return wheel


def test_host_wheel_layout(host_wheel):
    # any Python 3 (the binding is ctypes), this machine's platform (built here, it links
    # Debian's libonnx / libprotobuf: not a manylinux wheel)
    assert host_wheel.name == f"kiln-{VERSION}-py3-none-linux_x86_64.whl", host_wheel.name
    with zipfile.ZipFile(host_wheel) as z:
        names = set(z.namelist())
        meta = z.read(f"kiln-{VERSION}.dist-info/METADATA").decode()
        entry = z.read(f"kiln-{VERSION}.dist-info/entry_points.txt").decode()
    for arch, built in (("aarch64", PORTABLE_AARCH64), ("x86_64", PORTABLE_X86_64)):
        if built.is_dir():  # the build dir has KILN_PORTABLE_RUNTIMES with that arch
            assert {f"kiln/runtimes/{arch}/libkiln_runtime.so",
                    f"kiln/runtimes/{arch}/kiln-rt"} <= names, sorted(names)
    for f in ("kiln/kiln", "kiln/kiln-rt", "kiln/kiln-tune-probe", "kiln/libkiln_runtime.so",
              "kiln/__init__.py", "kiln/compiler.py", "kiln/runtime.py", "kiln/hf.py", "kiln/_cli.py",
              "kiln/_runtime_wheel.py", "kiln/models/bert.py", "kiln/share/infer.py",
              "kiln/include/kiln/backend.h", "kiln/kernels/kiln/kernels/kernels.h"):
        assert f in names, f
    assert "Requires-Dist: numpy" in meta
    assert re.search(r"Requires-Dist: torch.*extra == .torch.", meta), meta
    assert "kiln = kiln._cli:kiln" in entry and "kiln-rt = kiln._cli:kiln_rt" in entry


def test_host_wheel_compiles_and_runs_in_a_fresh_venv(host_wheel, tmp_path):
    env = fresh_venv(tmp_path / "venv")
    run([env / "bin" / "pip", "install", "--no-index", host_wheel], cwd=tmp_path)
    work = tmp_path / "work"  # outside the source tree; no PYTHONPATH, no KILN_* variables
    work.mkdir()
    assert run([env / "bin" / "kiln", "--version"]).stdout.strip() == f"kiln {VERSION}"
    assert run([env / "bin" / "kiln-rt", "--version"]).stdout.strip() == f"kiln-rt {VERSION}"
    script = """
import json, sys
from pathlib import Path
import numpy as np
import kiln, kiln.compiler, kiln.runtime
from kiln.models.bert import BertConfig, build_model, export_onnx, make_inputs, run_torch
for f in (kiln.__file__, kiln.compiler.kiln_binary()):
    assert f.startswith(sys.prefix), f
cfg = BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=24)
model = build_model(cfg, seed=0, init="random")
names, outputs = export_onnx(model, "tiny.onnx", opset=14)
art = kiln.compile("tiny.onnx", output_dir="art", bundle="b.tar.gz")
meta = json.loads((art / "model.json").read_text())
assert meta["compiler"]["version"] == kiln.__version__ == sys.argv[1], meta["compiler"]
m = kiln.runtime.load(art)
inputs = make_inputs(cfg, 2, 7)
got = m(**inputs)
assert sorted(got) == sorted(outputs), sorted(got)
for name, want in zip(outputs, run_torch(model, inputs, names)):
    np.testing.assert_allclose(got[name], want, atol=1e-4, rtol=0, err_msg=name)
print("ok", sorted(got))
"""
    proc = run([env / "bin" / "python", "-c", script, VERSION], cwd=work)
    assert proc.stdout.startswith("ok"), proc.stdout
    # the bundle made by the installed compiler carries the x86_64 runtime wheel (the board
    # runtime the wheel carries, built with zig, when the build had it)
    top = unpack(work / "b.tar.gz", tmp_path / "board")
    (wheel,) = top.glob("kiln_runtime-*.whl")
    check_runtime_wheel(wheel, "x86_64", tmp_path)
    if PORTABLE_X86_64.is_dir():
        assert wheel.name.endswith("-py3-none-manylinux_2_17_x86_64.whl"), wheel.name

    # a Pi bundle from the installed compiler: the wheel carries the board runtime (built with
    # zig for glibc 2.17), so nothing but g++-aarch64-linux-gnu is needed
    if PORTABLE_AARCH64.is_dir():
        run([env / "bin" / "kiln", "compile", "tiny.onnx", "-o", "pi", "--target", "rpi4",
             "--bundle", "pi.tar.gz"], cwd=work)
        (pi_wheel,) = unpack(work / "pi.tar.gz", tmp_path / "pi-board").glob("*.whl")
        assert pi_wheel.name == f"kiln_runtime-{VERSION}-py3-none-manylinux_2_17_aarch64.whl"
        check_runtime_wheel(pi_wheel, "aarch64", tmp_path / "pi-wheel")

    # generated code is compiled with the package's own headers, not this source tree's: a g++
    # first on PATH logs its arguments
    wrap = tmp_path / "wrap-bin"
    wrap.mkdir()
    (wrap / "g++").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/gxx.log\nexec /usr/bin/g++ "$@"\n')
    (wrap / "g++").chmod(0o755)
    site_kiln = Path(run([env / "bin" / "python", "-c", "import kiln; print(kiln.__file__)"],
                         cwd=work).stdout.strip()).parent
    run([env / "bin" / "kiln", "compile", "tiny.onnx", "-o", "wrapped"], cwd=work,
        env=clean_env(PATH=f"{wrap}:{os.environ['PATH']}"))
    log = (tmp_path / "gxx.log").read_text()
    assert f"-I{site_kiln}/kernels " in log and f"-I{site_kiln}/include " in log, log[:2000]
    assert str(ROOT) not in log, log[:2000]

    # the compiler's checks for a missing g++ say what to install
    for target, message in (("native", "g++ not found: apt-get install g++"),
                            ("rpi4", "aarch64-linux-gnu-g++ not found: "
                                     "apt-get install g++-aarch64-linux-gnu")):
        proc = subprocess.run([str(site_kiln / "kiln"), "compile", "tiny.onnx", "-o", target,
                               "--target", target], cwd=work, capture_output=True, text=True,
                              env=clean_env(PATH=str(tmp_path / "empty-bin")), timeout=300)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_the_wheel_build_builds_what_the_wheel_installs():
    """scikit-build-core builds only pyproject.toml's build.targets, then installs component
    kiln_wheel: a target installed but not built fails a fresh `pip install .` (as
    kiln-tune-probe did), which the wheel test above, reusing build/, cannot see."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]
    built = set(pyproject["build"]["targets"])
    rules = (ROOT / "cmake" / "python_wheel.cmake").read_text()
    installed = {t for group in re.findall(r"install\(TARGETS ([\w\s-]+?) (?:RUNTIME|LIBRARY)",
                                           rules) for t in group.split()}
    assert installed and installed <= built, installed - built
    if pyproject["cmake"]["define"].get("KILN_PORTABLE_RUNTIMES"):  # install(PROGRAMS portable-*)
        assert "kiln_portable_runtimes" in built


# --- the sdist --------------------------------------------------------------------------------

@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout (git ls-files)")
def test_sdist_holds_every_source_file(tmp_path):
    """`python -m build --sdist` does what this does: PEP 517 build_sdist of scikit-build-core
    (the version pyproject.toml pins). Every tracked file is in it but the fuzz corpus, nothing
    built or downloaded is, and the unpacked sdist configures as a wheel build would (`pip wheel
    kiln-*.tar.gz` then compiles exactly what the host wheel test compiles)."""
    requires = [r for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
                ["requires"] if not r.startswith("ziglang")]  # not needed to pack sources
    venv = fresh_venv(tmp_path / "venv")
    run([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", *requires])
    run([venv / "bin" / "python", "-c", "import sys; from scikit_build_core.build import "
         "build_sdist; print(build_sdist(sys.argv[1]))", tmp_path / "dist"], cwd=ROOT)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    assert sdist.name == f"kiln-{VERSION}.tar.gz"
    top = f"kiln-{VERSION}"
    with tarfile.open(sdist) as t:
        names = set(t.getnames())
        t.extractall(tmp_path / "src")
    tracked = run(["git", "ls-files"], cwd=ROOT).stdout.split()
    missing = [f for f in tracked
               if not f.startswith("tests/fuzz/corpus/") and f"{top}/{f}" not in names]
    assert not missing, missing[:20]
    stray = [n for n in names if re.match(rf"{top}/(build|out/|\.venv/|\.cache/|\.git/)", n)]
    assert not stray, stray[:20]
    assert f"{top}/PKG-INFO" in names
    run(["cmake", "-S", tmp_path / "src" / top, "-B", tmp_path / "configured", "-G", "Ninja",
         "-DKILN_BUILD_TESTS=OFF", "-DKILN_BUILD_BENCH=OFF"])

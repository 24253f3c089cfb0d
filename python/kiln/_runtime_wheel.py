"""Builds the board wheel `kiln-runtime` from an already built runtime (stdlib only, any host):

    python3 kiln/_runtime_wheel.py --lib build-aarch64/runtime/libkiln_runtime.so \\
        --cli build-aarch64/tools/kiln-rt/kiln-rt --python-dir python --out out/wheels

writes kiln_runtime-<version>-py3-none-manylinux_2_<N>_<arch>.whl holding
    kiln/__init__.py, kiln/runtime.py, kiln/_cli.py   the ctypes binding (numpy only)
    kiln/libkiln_runtime.so, kiln/kiln-rt             the runtime (kiln-rt's run path: $ORIGIN)
    kiln_runtime-<version>.dist-info/                 METADATA, WHEEL, entry_points.txt
                                                      (console command kiln-rt), RECORD
The binding is loaded by ctypes, so the wheel is for any Python 3 (py3-none). The platform tag
is read from the binaries (readelf, binutils), the way `auditwheel show` does: the architecture
from the ELF header, N the lowest manylinux_2_N policy whose glibc, libstdc++ (GLIBCXX, CXXABI)
and libgcc_s (GCC) symbol versions cover every version the binaries need (PEP 600); the build
refuses a binary that needs a library beyond libc, libm, libpthread, libdl, libstdc++, libgcc_s,
the dynamic loader and the wheel's own libkiln_runtime.so (what auditwheel would have to vendor).
scripts/build_runtime_wheel.py runs this on a build dir; `kiln compile --bundle` runs it on the
bundle's runtime.
"""
import argparse
import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

# What every glibc system has (manylinux's allowed libraries, the ones kiln can need; libpthread
# and libdl are separate libraries before glibc 2.34, where the board runtime built by zig finds them).
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0",
                  "libdl.so.2", "ld-linux-aarch64.so.1", "ld-linux-x86-64.so.2"}
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
# auditwheel 6.8.2's manylinux-policy.json, the newest symbol version each policy allows:
# N -> (GLIBC_2.x, GLIBCXX_3.4.x, CXXABI_1.3.x, GCC aarch64, GCC x86_64)
POLICIES = {
    17: ((2, 17), (3, 4, 19), (1, 3, 7), (4, 7, 0), (4, 8, 0)),
    24: ((2, 24), (3, 4, 22), (1, 3, 10), (4, 7, 0), (4, 8, 0)),
    27: ((2, 27), (3, 4, 24), (1, 3, 11), (7, 0, 0), (7, 0, 0)),
    28: ((2, 28), (3, 4, 24), (1, 3, 11), (7, 0, 0), (7, 0, 0)),
    31: ((2, 31), (3, 4, 28), (1, 3, 12), (7, 0, 0), (7, 0, 0)),
    34: ((2, 34), (3, 4, 29), (1, 3, 13), (11, 0), (7, 0, 0)),
    35: ((2, 35), (3, 4, 30), (1, 3, 13), (11, 0), (12, 0, 0)),
    36: ((2, 36), (3, 4, 30), (1, 3, 13), (11, 0), (12, 0, 0)),
    39: ((2, 39), (3, 4, 33), (1, 3, 15), (14, 0, 0), (14, 0, 0)),
}
_FAMILIES = ("GLIBC", "GLIBCXX", "CXXABI", "GCC")
SUMMARY = "kiln runtime: runs kiln-compiled transformer models (ctypes binding, kiln-rt)"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same inputs give the same wheel


class WheelError(RuntimeError):
    pass


def elf_arch(path):
    head = Path(path).read_bytes()[:20]
    if head[:4] != b"\x7fELF" or head[4] != 2:
        raise WheelError(f"{path}: not a 64-bit ELF file")
    machine = int.from_bytes(head[18:20], "little")
    if machine not in ELF_MACHINES:
        raise WheelError(f"{path}: ELF machine {machine}, expected x86_64 or aarch64")
    return ELF_MACHINES[machine]


def _readelf(*args):
    try:
        return subprocess.run(["readelf", "-W", *args], capture_output=True, text=True,
                              check=True).stdout
    except FileNotFoundError:
        raise WheelError("readelf not found: apt-get install binutils") from None
    except subprocess.CalledProcessError as e:
        raise WheelError(f"readelf {' '.join(args)}: {e.stderr.strip()}") from None


def needed(path):
    """The DT_NEEDED entries of an ELF file."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", _readelf("-d", str(path)))


def symbol_versions(path):
    """Version needs (GLIBC_2.34, GLIBCXX_3.4.30, ...) per library, from .gnu.version_r."""
    out, lib = {}, None
    for line in _readelf("-V", str(path)).splitlines():
        m = re.search(r"File: (\S+)\s+Cnt:", line)
        if m:
            lib = m.group(1)
            continue
        m = re.search(r"Name: (\S+)\s+Flags", line)
        if m and lib:
            out.setdefault(lib, set()).add(m.group(1))
    return out


def newest_versions(paths):
    """The newest symbol version of each family (GLIBC, GLIBCXX, CXXABI, GCC) the files need."""
    newest = {}
    for p in paths:
        for versions in symbol_versions(p).values():
            for v in versions:
                m = re.fullmatch(r"([A-Z]+)_([\d.]+)", v)
                if m and m.group(1) in _FAMILIES:
                    number = tuple(int(x) for x in m.group(2).split("."))
                    newest[m.group(1)] = max(newest.get(m.group(1), number), number)
    return newest


def manylinux_policy(newest, arch):
    """The lowest N of POLICIES whose limits cover `newest`, or WheelError."""
    gcc = 3 if arch == "aarch64" else 4
    for n, limits in sorted(POLICIES.items()):
        caps = dict(zip(_FAMILIES, limits[:3] + (limits[gcc],)))
        if all(v <= caps[f] for f, v in newest.items()):
            return n
    raise WheelError("the binaries need symbol versions newer than any manylinux policy known "
                     "here: " + ", ".join(f"{f}_{'.'.join(map(str, v))}" for f, v in newest.items()))


def check_binaries(paths, shipped=("libkiln_runtime.so",)):
    """(arch, N of manylinux_2_N) of the binaries, or WheelError naming what is not allowed."""
    archs = {elf_arch(p) for p in paths}
    if len(archs) != 1:
        raise WheelError("the library and kiln-rt are for different architectures: " +
                         ", ".join(f"{p}: {elf_arch(p)}" for p in paths))
    allowed = ALLOWED_NEEDED | set(shipped)
    for p in paths:
        extra = sorted(set(needed(p)) - allowed)
        if extra:
            raise WheelError(f"{p} needs {', '.join(extra)}: the runtime wheel may need only "
                             f"{', '.join(sorted(allowed))}")
    arch = archs.pop()
    return arch, manylinux_policy(newest_versions(paths), arch)


def package_version(python_dir):
    text = (Path(python_dir) / "kiln" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not m:
        raise WheelError(f"{python_dir}/kiln/__init__.py has no __version__")
    return m.group(1)


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def build(lib, cli, python_dir, out_dir):
    """Writes the wheel into out_dir and returns its path."""
    lib, cli, python_dir = Path(lib), Path(cli), Path(python_dir)
    for p in (lib, cli):
        if not p.is_file():
            raise WheelError(f"{p} is missing")
    arch, glibc = check_binaries([lib, cli])  # manylinux_2_<glibc>
    version = package_version(python_dir)
    tag = f"py3-none-manylinux_2_{glibc}_{arch}"
    dist_info = f"kiln_runtime-{version}.dist-info"
    metadata = (f"Metadata-Version: 2.1\nName: kiln-runtime\nVersion: {version}\n"
                f"Summary: {SUMMARY}\nRequires-Python: >=3.8\n"
                f"Requires-Dist: numpy\n\n"
                f"The board half of kiln: `import kiln.runtime` and `kiln-rt` run artifacts that "
                f"`kiln compile` made on the PC. No compiler needed.\n")
    files = [  # (name in the wheel, bytes, executable)
        ("kiln/__init__.py", (python_dir / "kiln" / "__init__.py").read_bytes(), False),
        ("kiln/runtime.py", (python_dir / "kiln" / "runtime.py").read_bytes(), False),
        ("kiln/_cli.py", (python_dir / "kiln" / "_cli.py").read_bytes(), False),
        ("kiln/libkiln_runtime.so", lib.read_bytes(), False),
        ("kiln/kiln-rt", cli.read_bytes(), True),
        (f"{dist_info}/METADATA", metadata.encode(), False),
        (f"{dist_info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: kiln {Path(__file__).name}\n"
                                f"Root-Is-Purelib: false\nTag: {tag}\n").encode(), False),
        (f"{dist_info}/entry_points.txt",
         b"[console_scripts]\nkiln-rt = kiln._cli:kiln_rt\n", False),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data, _ in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), False))

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"kiln_runtime-{version}-{tag}.whl"
    tmp = wheel.with_suffix(".whl.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, executable in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            z.writestr(info, data)
    tmp.replace(wheel)
    return wheel


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the kiln-runtime wheel from built binaries.")
    ap.add_argument("--lib", required=True, help="libkiln_runtime.so")
    ap.add_argument("--cli", required=True, help="kiln-rt")
    ap.add_argument("--python-dir", default=str(Path(__file__).resolve().parents[1]),
                    help="the folder holding kiln/ (default: this file's)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--quiet", action="store_true", help="do not print the wheel's path")
    a = ap.parse_args(argv)
    try:
        wheel = build(a.lib, a.cli, a.python_dir, a.out)
        if not a.quiet:
            print(wheel)
    except (WheelError, OSError) as e:
        sys.exit(f"kiln-runtime wheel: {e}")


if __name__ == "__main__":
    main()

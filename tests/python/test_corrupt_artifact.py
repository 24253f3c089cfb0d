"""Damaged and hostile artifacts through `kiln-rt run`, as a user on a board would meet them
(issue 15, item 4).

test_random_mutations compiles the tiny BERT once and applies 360 seeded byte-level mutations (bit
flips, truncations, splices, zero-fills, over model.so, model.json and model.params); each
mutated artifact is run by kiln-rt in a subprocess with a timeout. Every run must end in a clean
error (exit code 1 and a "kiln-rt: error:" message naming the damaged file; never a signal or a
timeout) or, when the mutation was harmless, produce outputs bit-identical to the intact
artifact's. It prints which check caught how many. The other tests are the hostile directories:
devices, FIFOs, huge sparse files, another library, sizes model.json gets wrong.
"""
import collections
import json
import os
import random
import shutil
import subprocess
import time
import zlib

import numpy as np
import pytest

from kiln_testenv import KILN_RT, clean_env, feed

import kiln

FILES = ("model.so", "model.json", "model.params")
# Mutations per file: model.so gets the most (before its checksum, damaged libraries crashed
# kiln-rt inside dlopen 56 times in 300).
PER_FILE = {"model.so": 160, "model.json": 100, "model.params": 100}
TIMEOUT_S = 20
SEED = 15


@pytest.fixture(scope="module")
def artifact(tiny_onnx, tmp_path_factory):
    """The intact artifact, its inputs as kiln-rt arguments, and its outputs."""
    tmp = tmp_path_factory.mktemp("corrupt")
    art = kiln.compile(str(tiny_onnx), output_dir=tmp / "art")
    args = []
    for name, arr in feed(batch=2, seq=7).items():
        np.save(tmp / f"{name}.npy", arr)
        args += ["--input", f"{name}={tmp / (name + '.npy')}"]
    proc = run_rt(art, args, tmp / "out_ref")
    assert proc.returncode == 0, proc.stderr
    return {"dir": art, "args": args, "tmp": tmp, "outputs": read_outputs(tmp / "out_ref")}


def run_rt(art, args, out_dir):
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    return subprocess.run([str(KILN_RT), "run", str(art), *args, "--threads", "1",
                           "--output-dir", str(out_dir)],
                          capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S,
                          env=clean_env())


def read_outputs(out_dir):
    return {p.name: np.load(p) for p in sorted(out_dir.glob("*.npy"))}


def mutate(data, rng):
    """One random byte-level mutation of `data`; returns (bytes, description)."""
    n = len(data)
    kind = rng.choice(["flip", "flip", "truncate", "splice", "zero"])
    b = bytearray(data)
    if kind == "flip":
        k = rng.choice([1, 1, 2, 8])
        where = [rng.randrange(n) for _ in range(k)]
        for i in where:
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip {k} bit(s) at {where[:4]}"
    if kind == "truncate":
        keep = rng.randrange(n)
        return bytes(b[:keep]), f"truncate to {keep} of {n} bytes"
    length = rng.randint(1, max(1, min(4096, n // 4)))
    dst = rng.randrange(n)
    if kind == "zero":
        b[dst:dst + length] = bytes(min(length, n - dst))
        return bytes(b), f"zero {length} bytes at {dst}"
    src = rng.randrange(n)
    chunk = data[src:src + length]
    if rng.random() < 0.5:  # overwrite in place
        b[dst:dst + len(chunk)] = chunk
        return bytes(b[:n]), f"splice {len(chunk)} bytes from {src} over {dst}"
    what = f"splice-insert {len(chunk)} bytes from {src} at {dst}"
    return bytes(b[:dst]) + chunk + bytes(b[dst:]), what


# Which load check stopped a damaged artifact, from its message (for the summary only).
CHECKS = [
    ("model.so size/CRC-32 vs model.json", "library_"),
    ("model.json syntax", "invalid JSON"),
    ("model.json graph_crc32", "graph_crc32"),
    ("model.json graph checksum", "graph sections"),
    ("model.json/model.so from different compiles", "different compiles"),
    ("model.params size vs model.json", "params.bytes says"),
    ("model.params checksums", "checksum mismatch"),
    ("model.params table/header", "model.params"),
    ("model.json fields", "model.json"),
]


def classify(stderr):
    for name, fragment in CHECKS:
        if fragment in stderr:
            return name
    return "other: " + stderr.strip()[:100]


def test_random_mutations(artifact):
    start = time.monotonic()
    rng = random.Random(SEED)
    pristine = {f: (artifact["dir"] / f).read_bytes() for f in FILES}
    work = artifact["tmp"] / "mutated"
    caught = collections.Counter()
    harmless = collections.Counter()
    failures = []
    total = 0
    for f, count in PER_FILE.items():
        for i in range(count):
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(artifact["dir"], work)
            data, what = mutate(pristine[f], rng)
            (work / f).write_bytes(data)
            where = f"{f} mutation {i} ({what}, seed {SEED})"
            total += 1
            try:
                proc = run_rt(work, artifact["args"], artifact["tmp"] / "out")
            except subprocess.TimeoutExpired:
                failures.append(f"{where}: no answer within {TIMEOUT_S} s")
                continue
            if proc.returncode == 0:
                got = read_outputs(artifact["tmp"] / "out")
                same = got.keys() == artifact["outputs"].keys() and all(
                    np.array_equal(got[k], v, equal_nan=True)
                    for k, v in artifact["outputs"].items())
                if same:
                    harmless[f] += 1
                else:
                    failures.append(f"{where}: ran, but the outputs differ from the intact model's")
            elif proc.returncode < 0:
                failures.append(
                    f"{where}: killed by signal {-proc.returncode}\n{proc.stderr[-500:]}")
            elif proc.returncode != 1 or "kiln-rt: error:" not in proc.stderr:
                failures.append(f"{where}: exit {proc.returncode}, stderr {proc.stderr[-500:]!r}")
            elif str(work) not in proc.stderr and not any(n in proc.stderr for n in FILES):
                failures.append(f"{where}: the error names no artifact file: {proc.stderr.strip()}")
            else:
                caught[(f, classify(proc.stderr))] += 1
    elapsed = time.monotonic() - start
    print(f"\n{total} mutations in {elapsed:.1f} s: {sum(caught.values())} refused, "
          f"{sum(harmless.values())} harmless (outputs identical), {len(failures)} failures")
    for (f, check), n in sorted(caught.items()):
        print(f"  {f:13s} {check:45s} {n}")
    for f, n in sorted(harmless.items()):
        print(f"  {f:13s} {'harmless':45s} {n}")
    kinds = collections.Counter(line.split(": ", 1)[0].split(" mutation")[0] + ": " +
                                line.split("): ", 1)[1].split("\n")[0] for line in failures)
    for kind, n in sorted(kinds.items()):
        print(f"  FAILED {kind} x {n}")
    assert total >= 300
    assert not failures, "\n".join(failures[:20])
    # A damaged model.so is only ever caught by its checksum, before dlopen.
    assert all(check == "model.so size/CRC-32 vs model.json"
               for (f, check) in caught if f == "model.so"), caught


# --- hostile directories ----------------------------------------------------------------------

def copy_artifact(artifact, name):
    d = artifact["tmp"] / name
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(artifact["dir"], d)
    return d


def expect_refused(artifact, art, *fragments):
    proc = run_rt(art, artifact["args"], artifact["tmp"] / "out")
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "kiln-rt: error:" in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
@pytest.mark.parametrize("name", FILES)
def test_file_symlinked_to_a_device(artifact, name, device):
    art = copy_artifact(artifact, "dev")
    (art / name).unlink()
    (art / name).symlink_to(device)
    expect_refused(artifact, art, f"{art / name}", "is a character device, not a regular file")


@pytest.mark.parametrize("name", FILES)
def test_file_that_is_a_fifo(artifact, name):
    art = copy_artifact(artifact, "fifo")
    (art / name).unlink()
    os.mkfifo(art / name)
    expect_refused(artifact, art, f"{art / name}", "is a FIFO (named pipe)")


@pytest.mark.parametrize("name,limit", [("model.json", "67108864"), ("model.so", "1073741824")])
def test_huge_sparse_file(artifact, name, limit):
    art = copy_artifact(artifact, "sparse")
    with open(art / name, "wb") as f:
        f.truncate((2 << 30) if name == "model.so" else (65 << 20))
    expect_refused(artifact, art, f"{art / name}", f"more than the {limit} bytes")


def test_huge_sparse_params(artifact):
    art = copy_artifact(artifact, "sparse_params")
    size = (art / "model.params").stat().st_size
    with open(art / "model.params", "r+b") as f:
        f.truncate(1 << 40)
    expect_refused(artifact, art, "model.params: wrong size",
                   f"model.json's params.bytes says {size}")


def test_library_of_another_compile(artifact, tiny_onnx):
    other = kiln.compile(str(tiny_onnx), output_dir=artifact["tmp"] / "other", max_seq=16)
    art = copy_artifact(artifact, "other_so")
    shutil.copy(other / "model.so", art / "model.so")
    expect_refused(artifact, art, f"{art / 'model.so'}: ",
                   "model.so is damaged or not the one this model.json was compiled with")


def test_library_that_is_not_kilns(artifact):
    # Some other shared library with a model.json that names its checksum: dlopen'ed (the
    # checksum only says it is the file model.json names), then refused for lacking kiln's ABI.
    art = copy_artifact(artifact, "foreign_so")
    libs = [p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1",
                        "/lib/aarch64-linux-gnu/libz.so.1") if os.path.exists(p)]
    if not libs:
        pytest.skip("no libz.so.1 to stand in for a foreign library")
    lib = libs[0]
    data = open(lib, "rb").read()
    shutil.copy(lib, art / "model.so")
    meta = json.loads((art / "model.json").read_text())
    meta["library_bytes"], meta["library_crc32"] = len(data), zlib.crc32(data)
    (art / "model.json").write_text(json.dumps(meta))
    expect_refused(artifact, art, "does not export kiln_model_abi_version")


def test_params_sizes_that_do_not_match_model_json(artifact):
    art = copy_artifact(artifact, "params_bytes")
    meta = json.loads((art / "model.json").read_text())
    size = meta["params"]["bytes"]
    meta["params"]["bytes"] = size * 1000
    (art / "model.json").write_text(json.dumps(meta))
    expect_refused(artifact, art, f"model.params: truncated: {size} bytes",
                   f"params.bytes says {size * 1000}")


def test_over_large_model_json(artifact):
    art = copy_artifact(artifact, "big_json")
    text = (art / "model.json").read_text()
    (art / "model.json").write_text(text + " " * (64 << 20))
    expect_refused(artifact, art, "model.json", "more than the 67108864 bytes")


def test_artifact_without_library_checksum_still_runs(artifact):
    # Compiled before library_bytes / library_crc32 existed: additive fields, loaded unchecked.
    art = copy_artifact(artifact, "old")
    meta = json.loads((art / "model.json").read_text())
    del meta["library_bytes"], meta["library_crc32"]
    (art / "model.json").write_text(json.dumps(meta))
    proc = run_rt(art, artifact["args"], artifact["tmp"] / "out_old")
    assert proc.returncode == 0, proc.stderr
    got = read_outputs(artifact["tmp"] / "out_old")
    for k, v in artifact["outputs"].items():
        assert np.array_equal(got[k], v)

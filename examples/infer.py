#!/usr/bin/env python3
"""Runs the kiln model in this directory (a deploy bundle from `kiln compile ... --bundle`).

    python3 infer.py                                  # a sample input
    python3 infer.py --text "a sentence" --text "another one"   # with --tokenizer or --vocab
                                 # (a sentence-embedding model, model.json "pooling": its vectors)
    python3 infer.py --ids 101,7592,2088,102          # token ids (one sequence)
    python3 infer.py --input input_ids=ids.npy --input attention_mask=mask.npy --output-dir out/

Needs python3 and numpy (Debian/Raspberry Pi OS: apt install python3-numpy); the runtime
(libkiln_runtime.so) and its binding (kiln/) are next to this file.
"""
import argparse
import json
import platform
import re
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARCH_NAMES = {"aarch64": "aarch64", "arm64": "aarch64", "x86_64": "x86_64", "amd64": "x86_64"}


def needed_glibc(model_dir):
    """The oldest glibc the bundle's runtime loads on: N of its wheel's manylinux_2_N tag, which
    kiln read from the binaries' symbol versions (None: no wheel beside the model)."""
    for wheel in model_dir.glob("kiln_runtime-*.whl"):
        m = re.search(r"-manylinux_2_(\d+)_", wheel.name)
        if m:
            return (2, int(m.group(1)))
    return None


def check_platform(model_dir):
    """The bundle's binaries run on one architecture, 64-bit userland only: say so plainly
    instead of a loader error."""
    target = json.loads((model_dir / "model.json").read_text())["target"]
    want = ARCH_NAMES.get(target["arch"], target["arch"])
    machine = platform.machine()
    have = ARCH_NAMES.get(machine.lower(), machine)
    bits = struct.calcsize("P") * 8
    if have != want:
        hint = ""
        if machine.startswith("armv") or machine == "arm":
            hint = (" This is a 32-bit Arm system: install a 64-bit OS (Raspberry Pi OS 64-bit, "
                    "Debian/Ubuntu arm64).")
        sys.exit(f"infer.py: this bundle is for {want} (target {target['name']}), but this "
                 f"machine is {machine}.{hint} Compile with --target matching this machine.")
    libc, version = platform.libc_ver()
    needs = needed_glibc(model_dir)
    if libc == "glibc" and version and needs and tuple(map(int, version.split(".")[:2])) < needs:
        sys.exit(f"infer.py: this system has glibc {version}; this bundle's kiln runtime needs "
                 f"glibc {needs[0]}.{needs[1]} or newer. Bundles made by a kiln whose board "
                 f"runtime was built with zig (scripts/build.sh --aarch64, the kiln wheel) need "
                 f"only glibc 2.17.")
    if bits != 64:
        sys.exit(f"infer.py: this Python is {bits}-bit, the kiln runtime is 64-bit {want}. The "
                 f"kernel is 64-bit ({machine}) but the userland is 32-bit (e.g. Raspberry Pi OS "
                 f"32-bit with a 64-bit kernel): install the 64-bit OS.")


def has_pooling(model_dir):
    """model.json "pooling" (kiln.compile(SentenceTransformer), kiln compile --pooling): the
    artifact turns text into sentence embeddings."""
    return "pooling" in json.loads((model_dir / "model.json").read_text())


def embed(m, texts, out_dir, np):
    """Sentence embeddings via m.embed: one vector per text, and their cosine similarities."""
    t0 = time.perf_counter()
    vectors = m.embed(texts)
    ms = (time.perf_counter() - t0) * 1e3
    print(f"{len(texts)} text(s) -> embeddings {list(vectors.shape)} in {ms:.1f} ms on "
          f"{m.num_threads} thread(s)")
    for text, v in zip(texts, vectors):
        print(f"{text[:40]!r}: norm {float(np.linalg.norm(v)):.4f} "
              f"first {np.array2string(v[:4], precision=4)}")
    if len(texts) > 1:
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        print("cosine similarities:")
        print(np.array2string(unit @ unit.T, precision=3))
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        np.save(out_dir / "embeddings.npy", vectors)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(HERE), help="artifact directory (default: this one)")
    ap.add_argument("--text", action="append", help="text to tokenize (repeat for a batch)")
    ap.add_argument("--ids", help="comma-separated token ids of one sequence")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    ap.add_argument("--output-dir", help="save every output as NAME.npy here")
    ap.add_argument("--threads", type=int, default=0, help="default: KILN_NUM_THREADS or all cores")
    a = ap.parse_args()
    model_dir = Path(a.model)
    check_platform(model_dir)

    sys.path.insert(0, str(HERE))
    try:
        import numpy as np
    except ImportError:
        sys.exit("infer.py: numpy is missing: sudo apt install python3-numpy "
                 "(or pip install numpy)")
    import kiln.runtime

    try:
        t0 = time.perf_counter()
        m = kiln.runtime.load(model_dir, num_threads=a.threads)
        load_ms = (time.perf_counter() - t0) * 1e3
        names = m.input_names
        out_dir = Path(a.output_dir) if a.output_dir else None
        if not a.input and a.ids is None and m.has_tokenizer and has_pooling(model_dir):
            return embed(m, a.text or ["kiln runs BERT on a Raspberry Pi.",
                                       "A small computer computes sentence embeddings."],
                         out_dir, np)
        if a.input:
            feed = {}
            for spec in a.input:
                name, _, path = spec.partition("=")
                feed[name] = np.load(path)
            m.set_input(None, **feed)
        elif a.text or (a.ids is None and m.has_tokenizer):
            texts = a.text or ["kiln runs BERT on a Raspberry Pi."]
            feed = m.encode(texts)
            print("input_ids:", feed["input_ids"].tolist())
        else:
            ids = [int(x) for x in a.ids.split(",")] if a.ids else [1, 2, 3, 4, 5, 6, 7, 8]
            ids = np.array([ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                    "token_type_ids": np.zeros_like(ids)}
            m.set_input(None, **{k: v for k, v in feed.items() if k in names})
        t0 = time.perf_counter()
        m.run()
        run_ms = (time.perf_counter() - t0) * 1e3
    except kiln.runtime.KilnError as e:
        sys.exit(f"infer.py: {e}")

    print(f"loaded in {load_ms:.1f} ms, ran in {run_ms:.1f} ms on {m.num_threads} thread(s)")
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(m.output_names):
        y = m.get_output(i)
        flat = y.reshape(-1)[:4]
        print(f"{name}: shape {list(y.shape)} {y.dtype} sum {float(y.sum(dtype=np.float64)):.6g} "
              f"first {np.array2string(flat, precision=4)}")
        if out_dir:
            np.save(out_dir / f"{name}.npy", y)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Times ONNX Runtime (CPU EP, all graph optimizations) on the benchmark ONNX file.
argv: MODEL.onnx NPZ_INPUTS THREADS RUNS WARMUP [--save OUT.npy]"""
import sys

import numpy as np
import onnxruntime as ort


def session(path, threads, profile=False):
    """The ONNX Runtime session every kiln benchmark times (bench/ort_op_profile.py profiles it)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = profile
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


if __name__ == "__main__":
    from common import report, time_runs

    path, npz, threads, runs, warmup = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    sess = session(path, threads)
    feed = dict(np.load(npz))
    feed = {i.name: feed[i.name] for i in sess.get_inputs()}
    out = sess.run(None, feed)[0]
    times = time_runs(lambda: sess.run(None, feed), runs, warmup)
    report(times, out, threads=threads, version=ort.__version__)

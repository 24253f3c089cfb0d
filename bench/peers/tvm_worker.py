"""Times Apache TVM (Relax flow, CPU, default pipeline) on the benchmark ONNX file.
argv: MODEL.onnx NPZ_INPUTS THREADS RUNS WARMUP [--save OUT.npy] [--cache DIR] [--tune TRIALS]

Runs in .venv/tvm (apache-tvm from PyPI brings numpy 2.x, so it cannot share Debian torch's
site-packages). Flow: onnx.load -> tvm.relax.frontend.onnx.from_onnx with the npz's static shapes
(batch, seq) -> relax.build(mod, target) with TVM's default CPU pipeline (legalization to TIR,
operator fusion, the default TIR lowering; Relax has no CPU matmul schedule rule in dlight, so this
is TVM's out-of-the-box code) -> relax.VirtualMachine. `--tune N` runs MetaSchedule on the matmul
tasks (N trials in total, see tune()) before the build. The compiled library is cached
in --cache DIR (key: model file, size, mtime, shapes, target, trials) so timed rounds only load it.

Failures (import, build, run) print one JSON line {"error": "..."} and exit 1 so the driver can
show the reason in its table.
"""
import hashlib
import json
import os
import sys
import time
import traceback


def fail(stage, exc):
    """The exception's type and last message line (TVM puts the reason last) as the result."""
    lines = str(exc).strip().splitlines()
    msg = f"TVM {stage} failed: {type(exc).__name__}: {lines[-1] if lines else ''}"
    print(traceback.format_exc(), file=sys.stderr)
    print(json.dumps({"error": msg[:400]}))
    sys.exit(1)


def option(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


path, npz, threads, runs, warmup = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
os.environ["TVM_NUM_THREADS"] = str(threads)  # read when TVM's thread pool starts
cache = option("--cache")
trials = int(option("--tune", "0"))

try:
    import numpy as np
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
except Exception as e:  # noqa: BLE001
    fail("import", e)

from common import report, time_runs  # noqa: E402


def host_target():
    """llvm for this CPU: -mcpu from LLVM's host detection (TVM's own helper), else native."""
    try:
        cpu = tvm.target.codegen.llvm_get_system_cpu()
    except Exception:  # noqa: BLE001
        cpu = "native"
    return cpu, tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": threads})


def tune(mod, target, trials, work_dir):
    """MetaSchedule on the fused matmul tasks (the GEMMs: ~all FLOPs), `trials` in total, then the
    best schedules applied. The steps of relax.pipeline.static_shape_tuning_pipeline, with an
    in-memory database and the random cost model unless xgboost is installed."""
    from tvm.s_tir import meta_schedule as ms
    try:
        import xgboost  # noqa: F401
        cost_model = "xgb"
    except ImportError:
        cost_model = "random"
    info["cost_model"] = cost_model
    with target:
        mod = tvm.transform.Sequential([relax.transform.DecomposeOpsForInference(),
                                        relax.transform.CanonicalizeBindings(),
                                        relax.get_pipeline("zero")])(mod)
    # 30 s (the default build timeout) is too short on a loaded 2-core machine
    db = ms.relax_integration.tune_relax(mod, {}, target, work_dir, max_trials_global=trials,
                                         op_names=["matmul"], database="memory",
                                         cost_model=cost_model, num_trials_per_iter=16,
                                         builder=ms.builder.LocalBuilder(timeout_sec=120))
    with target, db:
        return relax.transform.MetaScheduleApplyDatabase()(mod)


feed = dict(np.load(npz))
cpu, target = host_target()
st = os.stat(path)
key_src = json.dumps([os.path.abspath(path), st.st_size, int(st.st_mtime),
                      {k: list(v.shape) for k, v in sorted(feed.items())}, str(target), trials,
                      tvm.__version__])
key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
lib_path = os.path.join(cache, f"tvm_{key}.so") if cache else None
info = {"target": f"llvm -mcpu={cpu}", "tuning_trials": trials, "version": tvm.__version__}

if lib_path and os.path.exists(lib_path):
    try:
        ex = tvm.runtime.load_module(lib_path)
        saved = json.load(open(lib_path + ".json"))
        names = saved["inputs"]
        # what building it cost (MetaSchedule's tuning time included), as when it was built
        info.update({k: saved[k] for k in ("tune_s", "build_s", "cost_model") if k in saved})
        info["cached"] = True
    except Exception as e:  # noqa: BLE001
        fail("load of cached library", e)
else:
    t0 = time.perf_counter()
    try:
        model = onnx.load(path)
        names = [i.name for i in model.graph.input if i.name in feed]
        shapes = {n: list(feed[n].shape) for n in names}
        dtypes = {n: str(feed[n].dtype) for n in names}
        mod = from_onnx(model, shape_dict=shapes, dtype_dict=dtypes)
        info["import_s"] = round(time.perf_counter() - t0, 2)
    except Exception as e:  # noqa: BLE001
        fail("ONNX import (relax.frontend.onnx.from_onnx)", e)
    t1 = time.perf_counter()
    try:
        if trials > 0:
            mod = tune(mod, target, trials, os.path.join(cache or ".", f"tvm_tune_{key}"))
            info["tune_s"] = round(time.perf_counter() - t1, 2)
        ex = relax.build(mod, target)
        info["build_s"] = round(time.perf_counter() - t1, 2)
    except Exception as e:  # noqa: BLE001
        fail("relax.build", e)
    if lib_path:
        os.makedirs(cache, exist_ok=True)
        ex.export_library(lib_path)
        json.dump({"inputs": names, **info}, open(lib_path + ".json", "w"))

try:
    dev = tvm.cpu()
    vm = relax.VirtualMachine(ex, dev)
    args = [tvm.runtime.tensor(feed[n], dev) for n in names]

    def run():
        out = vm["main"](*args)  # a tuple of outputs; last_hidden_state first
        first = out if isinstance(out, tvm.runtime.Tensor) else out[0]
        return first.numpy()  # copies the result out, as the other peers' APIs do

    out = run()
except Exception as e:  # noqa: BLE001
    fail("run (relax.VirtualMachine)", e)
times = time_runs(run, runs, warmup)
report(times, out, threads=threads, **info)

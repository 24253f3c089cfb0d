"""The op harness: every case of cases.py, compiled through the real pipeline (`kiln compile`) and
run by the real runtime on every configuration -- each FP32 and INT8 GEMM variant the CPU can
run, targets native and x86-64-v3, and the Pi 4 / Pi 5 artifacts under qemu -- against
onnx.reference.ReferenceEvaluator. One pytest item per case x configuration.

Cases with the same opset are merged into one model per configuration (names prefixed with the
case), so g++ runs a few times per configuration, not once per case. It also fails when the op
registry (`kiln ops --json`) holds an op that no case covers.

Needs `onnx` >= 1.13 (onnx.reference): run it with the project venv's python
(scripts/setup_venv.sh), as scripts/test.sh does."""
import json
import platform
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import (KILN, KILN_RT_AARCH64, KilnError, compile_model, host_cpu_flags,  # noqa: E402
                     run_model)

from cases import F, I64, MIN_SEQ, cases  # noqa: E402

SHAPES = [(2, 7), (1, MIN_SEQ)]  # (batch, seq) fed to every case
CASES = {c.name: c for c in cases()}
assert len(CASES) == len(cases()), "case names must be unique"


def registry():
    out = subprocess.run([str(KILN), "ops", "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def gemm_variants(kind):
    """The FP32 ("f32") or INT8 ("s8") GEMM variants, from `kiln variants` (made from the list each
    dispatch table is written from), with whether this CPU can run them."""
    out = subprocess.run([str(KILN), "variants", "--json"], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)[kind]


# --- building the models --------------------------------------------------------------------

def prefixed(case, name):
    return f"{case.name}__{name}" if name else name


def case_model(case, prefix=True):
    """The case as an ONNX graph (names prefixed with the case when merged)."""
    p = (lambda n: prefixed(case, n)) if prefix else (lambda n: n)
    nodes = []
    for n in case.nodes:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.name = p(n.name or f"{n.op_type}_{len(nodes)}")
        m.input[:] = [p(i) for i in n.input]
        m.output[:] = [p(o) for o in n.output]
        nodes.append(m)
    inits = []
    for t in case.inits:
        u = onnx.TensorProto()
        u.CopyFrom(t)
        u.name = p(t.name)
        inits.append(u)
    inputs = [helper.make_tensor_value_info(p(i.name), i.dtype, i.shape) for i in case.inputs]
    outputs = [helper.make_tensor_value_info(p(n), t, s) for n, t, s in case.outputs]
    return nodes, inputs, outputs, inits


def make_model(parts, opset, name):
    nodes, inputs, outputs, inits = [], [], [], []
    for n, i, o, t in parts:
        nodes += n
        inputs += i
        outputs += o
        inits += t
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def feed(case, batch, seq, seed):
    rng = np.random.RandomState(seed)
    out = {}
    for i in case.inputs:
        shape = [batch if d == "batch" else seq if d == "seq" else d for d in i.shape]
        if i.dtype == F:
            out[i.name] = rng.uniform(i.lo, i.hi, size=shape).astype(np.float32)
        elif i.dtype == I64:
            out[i.name] = rng.randint(int(i.lo), int(i.hi), size=shape).astype(np.int64)
        else:
            out[i.name] = rng.randint(0, 2, size=shape).astype(bool)
    return out


# --- configurations ---------------------------------------------------------------------------

def configurations():
    """(id, target, quantize, env, qemu cpu or None, skip reason or None)."""
    flags = host_cpu_flags()
    x86 = platform.machine() == "x86_64"
    out = []
    variants = gemm_variants("f32") if KILN.exists() else []
    for v in variants:
        skip = None if v["runs_here"] else f"this CPU cannot run GEMM variant {v['name']}"
        out.append((f"native-fp32-{v['name']}", "native", None, {"KILN_GEMM_VARIANT": v["name"]},
                    None, skip))
    for v in gemm_variants("s8") if KILN.exists() else []:
        skip = None if v["runs_here"] else f"this CPU cannot run INT8 GEMM variant {v['name']}"
        out.append((f"native-int8-{v['name']}", "native", "int8",
                    {"KILN_GEMM_S8_VARIANT": v["name"]}, None, skip))
    no_v3 = None if x86 and {"avx2", "fma"} <= flags else "needs an x86-64-v3 CPU"
    out.append(("x86-64-v3-fp32", "x86-64-v3", None, {}, None, no_v3))
    out.append(("x86-64-v3-int8", "x86-64-v3", "int8", {}, None, no_v3))
    no_arm = None if KILN_RT_AARCH64.exists() else f"no aarch64 kiln-rt at {KILN_RT_AARCH64}"
    for target, cpu in (("rpi4", "cortex-a72"), ("rpi5", "cortex-a76")):
        for q in (None, "int8"):
            out.append((f"{target}-{q or 'fp32'}-qemu-{cpu}", target, q, {}, cpu, no_arm))
    return out


CONFIGS = {c[0]: c for c in configurations()}


@pytest.fixture(scope="session")
def ops_registry():
    return registry()


def test_every_registry_op_has_a_case(ops_registry, tmp_path_factory):
    """ONNX ops must appear in some case's graph; ops that run must also be in a compiled
    artifact (so their kernel really ran), except views (they share storage, no kernel)."""
    in_graphs = {n.op_type for c in CASES.values() for n in c.nodes}
    fused = {op for c in CASES.values() for op in c.fused}
    missing = []
    for op in ops_registry:
        name = op["name"]
        if op["min_opset"] == 0:  # kiln's own: a case must name it as the pattern it expects
            if name not in fused:
                missing.append(f"{name} (kiln's own op: no case expects it in its artifact)")
        elif name not in in_graphs:
            missing.append(f"{name} (no case uses it)")
    assert not missing, "ops without a harness case (see tests/ops/cases.py): " + ", ".join(missing)


_artifacts = {}  # (target, quantize, model name) -> artifact dir or KilnError: variants share one


def compiled(path, work, name, target, quantize):
    key = (target, quantize, name)
    if key not in _artifacts:
        extra = ["--quantize", "int8"] if quantize else []
        try:
            _artifacts[key] = compile_model(path, Path(work) / f"{name}_art", target, *extra)
        except KilnError as e:
            _artifacts[key] = e
    if isinstance(_artifacts[key], KilnError):
        raise _artifacts[key]
    return _artifacts[key]


class Results:
    """Runs every case on one configuration once; items read from it."""

    def __init__(self, config, work):
        self.config, self.work = config, Path(work)
        self.outputs = {}  # (case, shape) -> {output: array}
        self.errors = {}  # case -> message
        self.artifact_ops = defaultdict(set)  # case -> ops in its merged artifact

    def run(self):
        cid, target, quantize, env, qemu, _ = self.config
        groups = defaultdict(list)
        for c in CASES.values():
            groups[c.opset].append(c)
        for opset, group in sorted(groups.items()):
            self._run_group(opset, group, target, quantize, env, qemu)
        return self

    def _run_group(self, opset, group, target, quantize, env, qemu, split=False):
        name = f"opset{opset}" if not split else f"case_{group[0].name}"
        model = make_model([case_model(c) for c in group], opset, name)
        path = self.work / f"{name}.onnx"
        onnx.save(model, path)
        try:
            art = compiled(path, self.work, name, target, quantize)
        except KilnError as e:
            if split or len(group) == 1:
                for c in group:
                    self.errors[c.name] = f"kiln compile failed: {e.stderr.strip()}"
                return
            for c in group:  # find which cases break the merged compile
                self._run_group(opset, [c], target, quantize, env, qemu, split=True)
            return
        with open(art / "model.json") as f:
            ops = {n["op"] for n in json.load(f)["nodes"]}
        for c in group:
            self.artifact_ops[c.name] = ops
        for bi, (batch, seq) in enumerate(SHAPES):
            inputs = {}
            for c in group:
                for k, v in feed(c, batch, seq, seed=bi).items():
                    inputs[prefixed(c, k)] = v
            try:
                got = run_model(art, inputs, self.work / f"run_{name}_{bi}", qemu, threads=2,
                                env=env)
            except KilnError as e:
                if split or len(group) == 1:
                    for c in group:
                        self.errors[c.name] = f"kiln run failed at batch {batch}, seq {seq}: " \
                                              f"{e.stderr.strip()}"
                    return
                for c in group:
                    self._run_group(opset, [c], target, quantize, env, qemu, split=True)
                return
            for c in group:
                self.outputs[(c.name, bi)] = {n: got.get(prefixed(c, n)) for n, _, _ in c.outputs}


_results = {}


def results_for(config_id, tmp_path_factory):
    if config_id not in _results:
        work = tmp_path_factory.mktemp(f"ops_{config_id}")
        _results[config_id] = Results(CONFIGS[config_id], work).run()
    return _results[config_id]


_references = {}


def reference(case, bi):
    key = (case.name, bi)
    if key not in _references:
        model = make_model([case_model(case, prefix=False)], case.opset, case.name)
        batch, seq = SHAPES[bi]
        outs = ReferenceEvaluator(model).run(None, feed(case, batch, seq, seed=bi))
        _references[key] = {n: np.asarray(o) for (n, _, _), o in zip(case.outputs, outs)}
    return _references[key]


@pytest.mark.parametrize("case_name", sorted(CASES))
@pytest.mark.parametrize("config_id", sorted(CONFIGS))
def test_case(config_id, case_name, tmp_path_factory):
    skip = CONFIGS[config_id][5]
    if skip:
        pytest.skip(f"{config_id}: {skip}")
    quantized = CONFIGS[config_id][2] == "int8"
    case = CASES[case_name]
    r = results_for(config_id, tmp_path_factory)
    assert case_name not in r.errors, r.errors.get(case_name)
    for op in case.fused:
        assert op in r.artifact_ops[case_name], \
            f"{case_name}: the pattern did not become {op} (artifact ops: {sorted(r.artifact_ops[case_name])})"
    for bi, (batch, seq) in enumerate(SHAPES):
        want = reference(case, bi)
        got = r.outputs[(case_name, bi)]
        for name, w in want.items():
            g = got[name]
            assert g is not None, f"{name}: no output"
            assert g.shape == w.shape, f"{name}: shape {g.shape} != {w.shape} (batch {batch}, seq {seq})"
            d = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) if w.size else 0.0
            if quantized and case.rel_tol_int8 is not None:
                scale = float(np.max(np.abs(w))) or 1.0
                assert d / scale <= case.rel_tol_int8, \
                    f"{name}: max |diff| {d:.3g} = {d / scale:.3g} of max |ref| > {case.rel_tol_int8} " \
                    f"(batch {batch}, seq {seq})"
            else:
                assert d <= case.tol, f"{name}: max |diff| {d:.3g} > {case.tol} (batch {batch}, seq {seq})"

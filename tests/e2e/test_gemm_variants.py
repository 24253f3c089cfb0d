"""Every FP32 GEMM variant on one small BERT against PyTorch: KILN_GEMM_VARIANT forces the
variant, `kiln-rt run --verbose` shows which one model.so picked. Host: avx2, avx512 (skipped on
a CPU without avx512f), ref, and x86-64-v3 (which must stay on avx2 even when asked for avx512).
aarch64 under qemu: neon and neon_a76 on a Cortex-A76 (Pi 5 artifact), neon on a Cortex-A72 (Pi 4
artifact, where neon_a76 falls back to neon for lack of asimddp)."""
import platform

import pytest

from harness import compile_model, host_cpu_flags, max_abs_diff, run_model
from kiln.models.bert import BertConfig, build_model, export_onnx, make_inputs, run_torch

TOL = 1e-4
# Hidden 60 and intermediate 100 are not multiples of 16: every GEMM has a partial column tile.
CFG = BertConfig(vocab_size=300, hidden_size=60, num_hidden_layers=2, num_attention_heads=5,
                 intermediate_size=100, max_position_embeddings=40)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gemm_variants")
    model = build_model(CFG, seed=0, init="random")
    onnx = tmp / "bert.onnx"
    names, outputs = export_onnx(model, onnx, opset=14)
    inputs = {k: v for k, v in make_inputs(CFG, 2, 21).items() if k in names}
    expected = dict(zip(outputs, run_torch(model, inputs, names)))
    artifacts = {}

    def check(target, variant, want_line, qemu_cpu=None):
        if target not in artifacts:
            artifacts[target] = compile_model(onnx, tmp / f"art_{target}", target)
        log = []
        got = run_model(artifacts[target], inputs, tmp / "run", qemu_cpu, threads=2,
                        env={"KILN_GEMM_VARIANT": variant}, log=log)
        kernels = [ln for ln in log[0].splitlines() if ln.startswith("kernels: ")]
        assert kernels == [f"kernels: {want_line}"], log[0]
        assert sorted(got) == sorted(expected)
        for name, want in expected.items():
            d = max_abs_diff(got[name], want)
            print(f"{target} {qemu_cpu or 'host'} KILN_GEMM_VARIANT={variant} {name}: "
                  f"max|diff| {d:.2e}")
            assert d <= TOL, f"{name}: max abs diff {d:.3e} > {TOL}"

    return check


x86_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 host variants")


@x86_only
@pytest.mark.parametrize("variant,tile", [("avx2", "6x16"), ("avx512", "14x32"), ("ref", "4x16")])
def test_host_variant_matches_pytorch(bert, variant, tile):
    needs = {"avx2": {"avx2", "fma"}, "avx512": {"avx512f"}, "ref": set()}[variant]
    missing = needs - host_cpu_flags()
    if missing:
        pytest.skip(f"GEMM variant {variant} skipped: this CPU lacks {', '.join(sorted(missing))}")
    bert("native", variant, f"gemm f32: {variant} {tile}")


@x86_only
def test_x86_64_v3_never_picks_avx512(bert):
    if not {"avx2", "fma"} <= host_cpu_flags():
        pytest.skip("target x86-64-v3 needs avx2 and fma, which this CPU lacks")
    bert("x86-64-v3", "avx512",
         "gemm f32: avx2 6x16 (KILN_GEMM_VARIANT=avx512 ignored: not built into this model.so)")


@pytest.mark.parametrize("target,qemu_cpu,variant,want", [
    ("rpi5", "cortex-a76", "neon", "gemm f32: neon 6x16"),
    ("rpi5", "cortex-a76", "neon_a76", "gemm f32: neon_a76 6x16"),
    ("rpi4", "cortex-a72", "neon", "gemm f32: neon 6x16"),
    ("rpi4", "cortex-a72", "neon_a76",
     "gemm f32: neon 6x16 (KILN_GEMM_VARIANT=neon_a76 ignored: this CPU lacks asimddp)"),
])
def test_aarch64_variant_under_qemu_matches_pytorch(bert, target, qemu_cpu, variant, want):
    bert(target, variant, want, qemu_cpu=qemu_cpu)

"""`kiln tune` end to end: a small BERT is tuned through the local runner (and, for target aarch64, the
aarch64 probe under qemu), compiled with --tuning-log and run; tuned artifacts give the default
artifact's outputs, the log's schedules reach model.so, model.json and kiln inspect, and a log from
another CPU, architecture or target is used or refused as documented (docs/architecture.md,
"Tuning").

Which schedule wins on this machine is noise-dependent, so after a real tuning run each test
writes its own winners into the log (valid schedules the probe did not pick) to check what
compile and the runtime do with them.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from kiln_testenv import (AARCH64_BUILD, AARCH64_SYSROOT, KILN, KILN_RT,  # noqa: E402
                          have_aarch64_runtime, have_qemu)
from kiln.models.bert import BertConfig, build_model, export_onnx, make_inputs  # noqa: E402

CONFIG = BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=160, max_position_embeddings=64)
AARCH64_PROBE = AARCH64_BUILD / "tools" / "tune-probe" / "kiln-tune-probe"
AARCH64_KILN_RT = AARCH64_BUILD / "tools" / "kiln-rt" / "kiln-rt"


def run(*args, check=True, env=None, timeout=600):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[:3]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune") / "small.onnx"
    export_onnx(build_model(CONFIG, seed=3, init="random"), path, opset=14)
    return path


@pytest.fixture(scope="module")
def tuned_log(model):
    log = model.parent / "tuning.json"
    proc = run(KILN, "tune", model, "--seq", "8,32", "--budget", "20s", "-o", log)
    assert "[tune]" in proc.stderr and "GEMMs tuned" in proc.stdout
    return json.loads(log.read_text())


def inputs(tmp, batch=2, seq=13):
    feed = make_inputs(CONFIG, batch, seq, seed=5)
    args = []
    for name, value in feed.items():
        np.save(tmp / f"{name}.npy", value)
        args += ["--input", f"{name}={tmp / (name + '.npy')}"]
    return args


def run_artifact(art, tmp, prefix=(), rt=KILN_RT):
    out = tmp / f"out-{art.name}-{len(prefix)}"
    proc = run(*prefix, rt, "run", art, *inputs(tmp), "--output-dir", out)
    return np.load(out / "last_hidden_state.npy"), proc.stderr


def forced(log, schedule, op="dense_f32"):
    """The log with every `op` entry tuned to `schedule` (a valid point the probe did not pick)."""
    log = json.loads(json.dumps(log))
    for e in log["entries"]:
        if e["op"] == op:
            e["best"]["schedule"] = dict(schedule)
            e["tuned"] = True
    return log


def write(path, log):
    path.write_text(json.dumps(log))
    return path


AVX2_ODD = {"variant": "avx2", "mr": 6, "panels": 1, "mc": 12, "kc": 16, "nc": 32, "threads": 1,
            "prefetch": 0}


def test_the_log_describes_every_gemm_of_the_model(tuned_log):
    log = tuned_log
    assert log["format"] == "kiln-tuning" and log["version"] == 1
    assert log["cpu"]["arch"] == "x86_64" and log["cpu"]["key"].startswith("x86_64/")
    assert log["timings_meaningful"] is True and log["runner"] == "local"
    assert log["seq"] == [8, 32] and log["batch"] == [1]
    shapes = {(e["M"], e["N"], e["K"]) for e in log["entries"]}
    H, I = CONFIG.hidden_size, CONFIG.intermediate_size
    for M in (8, 32):  # QKV, attention output, FFN up, FFN down at both sequence lengths
        assert {(M, 3 * H, H), (M, H, H), (M, I, H), (M, H, I)} <= shapes, shapes
    for e in log["entries"]:
        assert e["nodes"], e
        assert e["default"]["median_ns"] > 0
        if not e["tuned"]:
            assert e["best"]["schedule"] == e["default"]["schedule"]
        else:  # kept only when clearly faster, confirmed by a second run
            assert e["best"]["median_ns"] < 0.98 * e["default"]["median_ns"]


def test_tuned_artifact_runs_the_logs_schedules_with_the_defaults_outputs(model, tuned_log,
                                                                          tmp_path):
    default = tmp_path / "default"
    run(KILN, "compile", model, "-o", default)
    log = write(tmp_path / "forced.json", forced(tuned_log, AVX2_ODD))
    tuned = tmp_path / "tuned"
    proc = run(KILN, "compile", model, "-o", tuned, "--tuning-log", log)
    # 2 layers x 4 + the pooler (M = batch: its [H, H] weight shares the attention output's rows)
    assert "tuning: 9 of 9 Dense nodes use tuned schedules" in proc.stdout
    meta = json.loads((tuned / "model.json").read_text())
    assert meta["tuning"]["cpu"]["key"] == tuned_log["cpu"]["key"]
    assert meta["tuning"]["tuned_nodes"] == 9
    assert (tuned / "tuning.json").exists(), "the log travels with the artifact"
    scheduled = [n for n in meta["nodes"] if "schedule" in n]
    assert len(scheduled) == 9
    qkv = [n for n in scheduled if len(n["schedule"]) == 2]  # tuned at M 8 and 32 only
    assert qkv, scheduled
    rows = qkv[0]["schedule"]
    assert [r["max_m"] for r in rows] == [16, None]  # sqrt(8 * 32), then unbounded
    assert rows[0]["variant"] == "avx2" and rows[0]["threads"] == 1 and rows[0]["kc"] == 16
    assert rows[0]["prefetch"] == 0
    assert "kk::gemm::gemm_f32_packed_tuned(tuned, 2, kiln_tuned_cpu()" in (
        tuned / "model.cpp").read_text()

    want, _ = run_artifact(default, tmp_path)
    got, stderr = run_artifact(tuned, tmp_path)
    assert "note" not in stderr
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
    inspect = run(KILN, "inspect", tuned).stdout
    assert "tuning     active: tuned for" in inspect
    assert ("schedule: tuned: M<=16 avx2 mr 6 panels 1 mc 12 kc 16 nc 32 threads 1 prefetch off"
            in inspect)
    assert "schedule: default" in run(KILN, "inspect", default).stdout


@pytest.mark.xdist_group("ssh_board_tmp")  # test_ssh_runner.py checks the same /tmp for leftovers
def test_tuning_through_ssh_uses_one_board_directory_and_removes_it(model, sshd, tmp_path):
    """A whole tuning run (identify, then one probe run per GEMM and the confirming runs) through
    the ssh runner against the private sshd, with this machine's probe."""
    probe = KILN.parent.parent / "tune-probe" / "kiln-tune-probe"
    before = set(Path("/tmp").glob("kiln-tune.*"))
    log_path = tmp_path / "ssh.json"
    proc = run(KILN, "tune", model, "--runner", sshd.url, "--ssh-config", sshd.config, "--probe",
               probe, "--seq", "8", "--budget", "60s", "-o", log_path)
    assert f"via {sshd.url}" in proc.stderr, proc.stderr
    log = json.loads(log_path.read_text())
    assert log["runner"].startswith("ssh://") and log["timings_meaningful"] is True
    assert len(log["entries"]) >= 4 and all(e["default"]["median_ns"] > 0 for e in log["entries"])
    assert set(Path("/tmp").glob("kiln-tune.*")) == before, "the board's directory was left"


def test_python_compile_takes_the_log(model, tuned_log, tmp_path):
    import kiln
    log = write(tmp_path / "forced.json", forced(tuned_log, AVX2_ODD))
    art = kiln.compile(str(model), output_dir=tmp_path / "py", tuning_log=log)
    meta = json.loads((Path(art) / "model.json").read_text())
    assert meta["tuning"]["tuned_nodes"] == 9


def test_another_cpu_runs_the_defaults_and_says_so_once(model, tuned_log, tmp_path):
    log = forced(tuned_log, AVX2_ODD)
    log["cpu"]["key"] = "x86_64/SomeVendor/25/1/avx2,fma"
    log["cpu"]["name"] = "Some Other CPU"
    art = tmp_path / "elsewhere"
    run(KILN, "compile", model, "-o", art, "--tuning-log", write(tmp_path / "other.json", log))
    default = tmp_path / "default"
    run(KILN, "compile", model, "-o", default)
    got, stderr = run_artifact(art, tmp_path)
    want, _ = run_artifact(default, tmp_path)
    assert stderr.count("kiln-rt: note: model tuned for Some Other CPU") == 1, stderr
    assert "default schedules" in stderr
    np.testing.assert_array_equal(got, want)  # the very same code path as the untuned artifact
    assert "(inactive on this CPU, defaults run)" in run(KILN, "inspect", art).stdout


def test_a_forced_variant_wins_over_tuning(model, tuned_log, tmp_path):
    art = tmp_path / "tuned"
    run(KILN, "compile", model, "-o", art, "--tuning-log",
        write(tmp_path / "forced.json", forced(tuned_log, AVX2_ODD)))
    ref, _ = run_artifact(art, tmp_path, prefix=("env", "KILN_GEMM_VARIANT=ref"))
    default = tmp_path / "default"
    run(KILN, "compile", model, "-o", default)
    want, _ = run_artifact(default, tmp_path, prefix=("env", "KILN_GEMM_VARIANT=ref"))
    np.testing.assert_array_equal(ref, want)


def test_int8_tuning_reaches_the_int8_gemms(model, tmp_path):
    log_path = tmp_path / "int8.json"
    run(KILN, "tune", model, "--quantize", "int8", "--seq", "16", "--budget", "10s", "-o", log_path)
    log = json.loads(log_path.read_text())
    assert {e["op"] for e in log["entries"]} == {"dense_s8"}
    odd = {"variant": "avx2", "mr": 6, "panels": 1, "mc": 6, "kc": 0, "nc": 16, "threads": 1}
    art, default = tmp_path / "tuned8", tmp_path / "default8"
    run(KILN, "compile", model, "-o", art, "--quantize", "int8", "--tuning-log",
        write(tmp_path / "forced8.json", forced(log, odd, "dense_s8")))
    run(KILN, "compile", model, "-o", default, "--quantize", "int8")
    assert '#include "kiln/kernels/gemm/s8_tuned.h"' in (art / "model.cpp").read_text()
    got, _ = run_artifact(art, tmp_path)
    want, _ = run_artifact(default, tmp_path)
    # Same int32 sums whatever the variant; only the float epilogue's rounding may differ.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_int8_weight_groups_are_tuned_as_the_grouped_kernel(tmp_path):
    """Weights whose rows differ 50x keep scales per 8 rows of K (--int8-weight-group 8): kiln
    tune measures those grouped GEMMs (their own log entries), and their rows reach only the
    grouped Dense nodes, whose outputs stay the untuned grouped artifact's."""
    m = build_model(CONFIG, seed=3, init="random")
    with torch.no_grad():
        for lin in m.modules():
            if isinstance(lin, torch.nn.Linear):
                lin.weight[:, 8:] /= 50.0
    onnx = tmp_path / "uneven.onnx"
    export_onnx(m, onnx, opset=14)
    log_path = tmp_path / "grouped.json"
    group = ["--quantize", "int8", "--int8-weight-group", "8"]
    run(KILN, "tune", onnx, *group, "--seq", "16", "--budget", "10s", "-o", log_path)
    log = json.loads(log_path.read_text())
    s8 = [e for e in log["entries"] if e["op"] == "dense_s8"]
    assert s8 and all(e["weight_group"] == 8 for e in s8), s8
    odd = {"variant": "avx2", "mr": 6, "panels": 1, "mc": 6, "kc": 0, "nc": 16, "threads": 1}
    art, default = tmp_path / "tuned_g8", tmp_path / "default_g8"
    run(KILN, "compile", onnx, "-o", art, *group, "--tuning-log",
        write(tmp_path / "forced_g8.json", forced(log, odd, "dense_s8")))
    run(KILN, "compile", onnx, "-o", default, *group)
    meta = json.loads((art / "model.json").read_text())
    dense = [n for n in meta["nodes"] if n["op"] == "Dense" and n["attrs"].get("weight_group")]
    assert dense and all(n.get("schedule") for n in dense), dense
    assert "gemm_s8_packed_tuned" in (art / "model.cpp").read_text()
    got, _ = run_artifact(art, tmp_path)
    want, _ = run_artifact(default, tmp_path)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # A per-channel compile of the same model finds no entry for its GEMMs: defaults throughout.
    plain = tmp_path / "per_channel"
    run(KILN, "compile", onnx, "-o", plain, "--quantize", "int8", "--int8-weight-group", "0",
        "--tuning-log", log_path.parent / "forced_g8.json")
    assert "gemm_s8_packed_tuned" not in (plain / "model.cpp").read_text()


def test_tune_takes_the_int8_options_of_the_compile(model, tmp_path):
    """Layers that --quantize-exclude or --min-cosine keep in FP32 are FP32 GEMMs in the
    artifact: kiln tune given the same options measures them as such, and a compile with other
    options than the tuning run says which nodes the log does not fit."""
    excluded = ["--quantize", "int8", "--quantize-exclude", "*intermediate*"]
    log_path = tmp_path / "excluded.json"
    run(KILN, "tune", model, *excluded, "--seq", "16", "--budget", "5s", "-o", log_path)
    log = json.loads(log_path.read_text())
    ops = {(e["N"], e["K"]): e["op"] for e in log["entries"] if e["M"] > 1}
    ffn_up = (CONFIG.intermediate_size, CONFIG.hidden_size)
    assert ops.pop(ffn_up) == "dense_f32" and set(ops.values()) == {"dense_s8"}, log["entries"]
    forced_log = forced(forced(log, AVX2_ODD), dict(AVX2_ODD, kc=0), "dense_s8")
    forced_path = write(tmp_path / "forced_excluded.json", forced_log)
    art = tmp_path / "excluded"
    proc = run(KILN, "compile", model, "-o", art, *excluded, "--tuning-log", forced_path)
    assert "measured their GEMM as another kernel" not in proc.stderr, proc.stderr
    dense = [n for n in json.loads((art / "model.json").read_text())["nodes"] if n["op"] == "Dense"]
    assert dense and all(n.get("schedule") for n in dense), dense
    # INT8 everywhere: the FFN-up GEMMs are INT8 there, and the log has them as FP32.
    proc = run(KILN, "compile", model, "-o", tmp_path / "all_int8", "--quantize", "int8",
               "--tuning-log", forced_path)
    assert (f"{CONFIG.num_hidden_layers} Dense node(s) keep the default schedule: the log "
            "measured their GEMM as another kernel ('/encoder/layer.0/intermediate/dense/Dense'"
            " is dense_s8, the log has dense_f32") in proc.stderr, proc.stderr
    # --min-cosine this close to 1 keeps layers in FP32: the tuner sees FP32 GEMMs. Without --seq
    # the tuner takes 128 or, as here, the model's 64 positions.
    mixed = tmp_path / "mixed.json"
    run(KILN, "tune", model, "--quantize", "int8", "--min-cosine", "0.99999999", "--budget", "5s",
        "-o", mixed)
    mixed_log = json.loads(mixed.read_text())
    assert "dense_f32" in {e["op"] for e in mixed_log["entries"]}
    assert mixed_log["seq"] == [CONFIG.max_position_embeddings], mixed_log["seq"]
    for flags, message in [
        (["--min-cosine", "0.999"], "--min-cosine needs --quantize int8"),
        (["--quantize-exclude", "*"], "--quantize-exclude needs --quantize int8"),
        (["--quantize", "int8", "--calibrate", str(tmp_path / "texts.txt")],
         "a text file (one text per line) needs the tokenizer"),
        (["--quantize", "int8", "--calibrate", str(tmp_path / "missing.npz")], "missing.npz"),
    ]:
        proc = run(KILN, "tune", model, *flags, "--seq", "16", "-o", tmp_path / "x.json",
                   check=False)
        assert proc.returncode != 0 and message in proc.stderr, (flags, proc.stderr)


def test_logs_that_do_not_fit_the_target_are_refused(model, tuned_log, tmp_path):
    avx512 = dict(AVX2_ODD, variant="avx512", mr=14, panels=2)
    log = write(tmp_path / "avx512.json", forced(tuned_log, avx512))
    proc = run(KILN, "compile", model, "-o", tmp_path / "v3", "--target", "x86-64-v3",
               "--tuning-log", log, check=False)
    assert proc.returncode != 0
    assert "tuned with variant 'avx512', which target 'x86-64-v3' does not build" in proc.stderr
    arm = json.loads(log.read_text())
    arm["cpu"].update(arch="aarch64", key="aarch64/0x41/0xd0b/asimd,asimddp", name="Cortex-A76")
    proc = run(KILN, "compile", model, "-o", tmp_path / "x", "--tuning-log",
               write(tmp_path / "arm.json", arm), check=False)
    assert proc.returncode != 0 and "tuned on aarch64 (Cortex-A76)" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "kiln-tuning", "version": 7}')
    proc = run(KILN, "compile", model, "-o", tmp_path / "y", "--tuning-log", bad, check=False)
    assert proc.returncode != 0 and "tuning log version 7" in proc.stderr
    proc = run(KILN, "tune", model, "--target", "rpi5", "--runner", "local", "--probe",
               KILN.parent.parent / "tune-probe" / "kiln-tune-probe", "-o", tmp_path / "z.json",
               check=False)
    assert proc.returncode != 0


needs_aarch64 = pytest.mark.skipif(
    not (have_qemu() and have_aarch64_runtime() and AARCH64_PROBE.exists()),
    reason="needs qemu-aarch64, the aarch64 runtime and kiln-tune-probe (build-aarch64)")


@needs_aarch64
def test_tuned_on_a76_under_qemu_is_active_there_and_inactive_on_a72(model, tmp_path):
    # Target aarch64 (any ARMv8, both boards; rpi5's model.so would refuse the A72 outright).
    log_path = tmp_path / "a76.json"
    proc = run(KILN, "tune", model, "--target", "aarch64", "--runner", "qemu:cortex-a76", "--seq", "8",
               "--budget", "5s", "-o", log_path, env={"KILN_AARCH64_BUILD_DIR": str(AARCH64_BUILD)})
    assert "meaningless" in proc.stderr
    log = json.loads(log_path.read_text())
    assert log["cpu"]["name"] == "Cortex-A76" and log["timings_meaningful"] is False
    odd = {"variant": "neon", "mr": 6, "panels": 1, "mc": 6, "kc": 24, "nc": 16, "threads": 1}
    art = tmp_path / "aarch64"
    proc = run(KILN, "compile", model, "--target", "aarch64", "-o", art, "--tuning-log",
               write(tmp_path / "forced.json", forced(log, odd)))
    assert "measured under emulation" in proc.stderr
    default = tmp_path / "host"
    run(KILN, "compile", model, "-o", default)
    want, _ = run_artifact(default, tmp_path)
    qemu = ("qemu-aarch64", "-L", AARCH64_SYSROOT, "-cpu")
    got, stderr = run_artifact(art, tmp_path, prefix=(*qemu, "cortex-a76"), rt=AARCH64_KILN_RT)
    assert "note" not in stderr
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    got72, stderr = run_artifact(art, tmp_path, prefix=(*qemu, "cortex-a72"), rt=AARCH64_KILN_RT)
    assert "tuned for Cortex-A76" in stderr and "this CPU is Cortex-A72" in stderr
    np.testing.assert_allclose(got72, want, rtol=1e-4, atol=1e-4)

"""Bad input gets a clear error naming what is wrong, never a crash, a hang or wrong output."""
import json
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from harness import (KILN, KILN_RT_AARCH64, KilnError, compile_model, qemu_prefix, run_model)
from kiln.models.bert import BertConfig, build_model, export_onnx, make_inputs

CFG = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=24)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    onnx_path = tmp / "bert.onnx"
    export_onnx(build_model(CFG), onnx_path, opset=14)
    return {"tmp": tmp, "onnx": onnx_path, "art": compile_model(onnx_path, tmp / "art")}


def fresh_copy(env, name):
    dst = env["tmp"] / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(env["art"], dst)
    return dst


def inputs(batch=1, seq=8):
    return make_inputs(CFG, batch, seq)


def expect_error(fn, *fragments):
    with pytest.raises(KilnError) as e:
        fn()
    msg = e.value.stderr
    assert e.value.returncode not in (-6, -11, 134, 139), f"crashed: {msg}"
    for f in fragments:
        assert f in msg, f"expected {f!r} in error message:\n{msg}"
    return msg


# --- compiler ---------------------------------------------------------------------------------

def test_missing_onnx_file(env):
    expect_error(lambda: compile_model(env["tmp"] / "nope.onnx", env["tmp"] / "o"), "nope.onnx")


def test_truncated_onnx_file(env):
    data = env["onnx"].read_bytes()
    bad = env["tmp"] / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 3])
    expect_error(lambda: compile_model(bad, env["tmp"] / "o"), "truncated.onnx")


def test_unsupported_op_names_op_node_and_opset(env):
    node = helper.make_node("Det", ["x"], ["y"], name="my_det")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    path = env["tmp"] / "det.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]), path)
    expect_error(lambda: compile_model(path, env["tmp"] / "o"), "Det", "my_det", "14")


def test_unknown_target(env):
    expect_error(lambda: compile_model(env["onnx"], env["tmp"] / "o", "pdp11"), "pdp11")


# --- inputs -----------------------------------------------------------------------------------

def test_missing_input(env):
    feed = inputs()
    del feed["attention_mask"]
    expect_error(lambda: run_model(env["art"], feed, env["tmp"]), "attention_mask")


def test_unknown_input_name(env):
    feed = inputs()
    feed["input_idz"] = feed.pop("input_ids")
    expect_error(lambda: run_model(env["art"], feed, env["tmp"]), "input_idz")


def test_wrong_dtype(env):
    feed = inputs()
    feed["input_ids"] = feed["input_ids"].astype(np.float32)
    expect_error(lambda: run_model(env["art"], feed, env["tmp"]), "input_ids", "float32")


def test_wrong_rank(env):
    feed = inputs()
    feed["input_ids"] = feed["input_ids"][0]
    expect_error(lambda: run_model(env["art"], feed, env["tmp"]), "input_ids")


def test_inconsistent_sequence_lengths(env):
    feed = inputs(seq=8)
    feed["attention_mask"] = np.ones((1, 9), np.int64)
    expect_error(lambda: run_model(env["art"], feed, env["tmp"]), "seq")


def test_sequence_longer_than_compiled_maximum(env):
    expect_error(lambda: run_model(env["art"], inputs(seq=CFG.max_position_embeddings + 1),
                                   env["tmp"]), "seq", str(CFG.max_position_embeddings))


def test_max_seq_option_lowers_the_maximum(env):
    art = compile_model(env["onnx"], env["tmp"] / "art16", "native", "--max-seq", "16")
    run_model(art, inputs(seq=16), env["tmp"])
    expect_error(lambda: run_model(art, inputs(seq=17), env["tmp"]), "16")


@pytest.mark.parametrize("bad_id", [CFG.vocab_size, -1, 10**12])
def test_token_id_out_of_range(env, bad_id):
    feed = inputs()
    feed["input_ids"][0, 3] = bad_id
    expect_error(lambda: run_model(env["art"], feed, env["tmp"]), str(bad_id), "input_ids")


# --- artifacts --------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0, 10, 63, 64, 200, -1000, -1])
def test_truncated_params(env, keep):
    art = fresh_copy(env, "trunc")
    p = art / "model.params"
    data = p.read_bytes()
    p.write_bytes(data[:keep])
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "model.params")


def test_corrupted_params_data(env):
    art = fresh_copy(env, "flip")
    p = art / "model.params"
    data = bytearray(p.read_bytes())
    data[len(data) - 100] ^= 0x40
    p.write_bytes(bytes(data))
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "model.params")


def test_truncated_model_json(env):
    art = fresh_copy(env, "json")
    j = art / "model.json"
    j.write_text(j.read_text()[:500])
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "model.json")


def test_model_json_tensor_index_out_of_range(env):
    art = fresh_copy(env, "json_idx")
    j = art / "model.json"
    meta = json.loads(j.read_text())
    meta["nodes"][0]["inputs"][0] = 10**6
    j.write_text(json.dumps(meta))
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "model.json")


def test_model_json_edited_after_compilation(env):
    # Well-formed and self-consistent, but model.so has the old shape baked in.
    art = fresh_copy(env, "json_edit")
    j = art / "model.json"
    meta = json.loads(j.read_text())
    arena = next(t for t in meta["tensors"] if t["storage"] == "arena")
    arena["offset"] += 64
    j.write_text(json.dumps(meta))
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "model.json",
                 "edited after compilation")


def test_model_json_without_graph_checksum(env):
    art = fresh_copy(env, "json_nocrc")
    j = art / "model.json"
    meta = json.loads(j.read_text())
    del meta["graph_crc32"]
    j.write_text(json.dumps(meta))
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "no graph_crc32", "model.so")


def test_model_json_from_another_compile(env):
    other = compile_model(env["onnx"], env["tmp"] / "other_compile", "native", "--max-seq", "16")
    art = fresh_copy(env, "json_swap")
    shutil.copy(other / "model.json", art / "model.json")
    # model.json records model.so's size and CRC-32: checked first, before dlopen.
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "model.so",
                 "not the one this model.json was compiled with")
    # Without them (compiled before they existed) the graph checksum still tells.
    meta = json.loads((art / "model.json").read_text())
    del meta["library_bytes"], meta["library_crc32"]
    (art / "model.json").write_text(json.dumps(meta))
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "different compiles")


def test_other_format_version(env):
    art = fresh_copy(env, "ver")
    j = art / "model.json"
    meta = json.loads(j.read_text())
    meta["format_version"] = 99
    j.write_text(json.dumps(meta))
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "99")


def test_missing_library(env):
    art = fresh_copy(env, "nolib")
    (art / "model.so").unlink()
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "model.so")


def test_aarch64_artifact_on_x86(env):
    art = compile_model(env["onnx"], env["tmp"] / "art_rpi4", "rpi4")
    expect_error(lambda: run_model(art, inputs(), env["tmp"]), "aarch64", "x86_64")


def test_x86_artifact_on_aarch64(env):
    expect_error(lambda: run_model(env["art"], inputs(), env["tmp"], qemu_cpu="cortex-a72"),
                 "x86_64", "aarch64")


def test_pi5_artifact_on_pi4_names_missing_feature(env):
    art = compile_model(env["onnx"], env["tmp"] / "art_rpi5", "rpi5")
    expect_error(lambda: run_model(art, inputs(), env["tmp"], qemu_cpu="cortex-a72"), "asimddp")

"""`kiln bench --compare`: the CLI front of bench/compare.py times kiln and the peers in one run.

Runs the tiny config against PyTorch only (ONNX Runtime and TVM need their venvs, which the
suite does not install); checks the JSON it writes, not the timings.
"""
import json
import subprocess

from kiln_testenv import KILN


def test_bench_compare_runs_kiln_and_peer(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [str(KILN), "bench", "--compare", "torch", "--config", "tiny", "--seq", "8",
         "--threads", "1", "--rounds", "1", "--runs", "2", "--warmup", "1",
         "--out", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kiln/PyTorch" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["failed"] == {}
    timed = {r["system"]: r for r in doc["results"]}
    assert set(timed) == {"kiln", "torch"}
    assert all(r["median_ms"] > 0 for r in timed.values())
    diff = {d["system"]: d["max_abs_diff"] for d in doc["accuracy_max_abs_diff"]}
    assert diff["kiln"] <= 1e-4


def test_bench_compare_refuses_systems_flag(tmp_path):
    proc = subprocess.run([str(KILN), "bench", "--compare", "torch", "--systems", "kiln"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--compare PEERS instead of --systems" in proc.stderr

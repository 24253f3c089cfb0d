"""`kiln tune`'s command line with the local and qemu runners: --identify with a fake probe and
the real one, option checks, the probe's failures as errors, and the tuning run's argument errors."""
import json
import shutil

import pytest

from tune_testenv import (AARCH64_PROBE, HOST_PROBE, build_stand_in_aarch64_probe, kiln,
                          write_probe)


def test_identify_local_with_fake_probe(fake_probe):
    r = kiln("tune", "--identify", "--probe", fake_probe)
    assert r.returncode == 0, r.stderr
    assert "probe on local" in r.stdout and "Fake CPU 9000" in r.stdout
    r = kiln("tune", "--identify", "--json", "--probe", fake_probe)
    assert json.loads(r.stdout)["threads"] == 2


def test_identify_local_with_the_host_probe():
    if not HOST_PROBE.exists():
        pytest.skip(f"{HOST_PROBE} not built yet")
    r = kiln("tune", "--identify")  # the probe next to kiln
    assert r.returncode == 0, r.stderr
    assert "probe on local (kiln " in r.stdout and "dense_f32:" in r.stdout
    r = kiln("tune", "--identify", "--json")
    response = json.loads(r.stdout)
    assert response["protocol"] == "kiln-tune-probe/1" and response["cpu"]["key"]


def test_local_probe_failures(tmp_path):
    cases = {
        "#!/bin/sh\necho '{\"error\": \"bad request: no op\"}'\nexit 2\n": "bad request: no op",
        "#!/bin/sh\necho not json\n": "invalid JSON",
        "#!/bin/sh\necho 'no /proc/cpuinfo' >&2\nexit 3\n": "exited with code 3 on local: no /proc",
        "#!/bin/sh\nkill -ILL $$\n": "crashed (signal 4, SIGILL)",
    }
    for i, (body, expected) in enumerate(cases.items()):
        probe = write_probe(tmp_path / f"p{i}", body)
        r = kiln("tune", "--identify", "--probe", probe)
        assert r.returncode != 0
        assert expected in r.stderr, r.stderr


def test_probe_timeout(tmp_path):
    probe = write_probe(tmp_path / "slow", "#!/bin/sh\nexec sleep 60\n")
    r = kiln("tune", "--identify", "--probe", probe, env={"KILN_TUNE_PROBE_TIMEOUT": "1"},
             timeout=30)
    assert r.returncode != 0
    assert "timed out after 1 s" in r.stderr, r.stderr


@pytest.mark.parametrize("args,expected", [
    (["--budget", "5x"], "--budget"),
    (["--seq", "16,a"], "--seq"),
    (["--cpus", "3-1"], "--cpus"),
    (["--quantize", "int4"], "--quantize"),
    (["--int8-weight-group", "64"], "--int8-weight-group needs --quantize int8"),
    (["--quantize", "int8", "--int8-weight-group", "6"], "--int8-weight-group 6"),
    (["--runner", "tcp://x"], "expected local, ssh://"),
    (["--target", "rpi5"], "--runner local"),
])
def test_bad_options(fake_probe, args, expected):
    r = kiln("tune", "--identify", "--probe", fake_probe, *args)
    assert r.returncode != 0
    assert expected in r.stderr, r.stderr


def test_tuning_run_errors_name_what_is_wrong(fake_probe, tmp_path):
    r = kiln("tune", tmp_path / "model.onnx", "--probe", fake_probe, "-o", tmp_path / "t.json",
             "--budget", "90s", "--seq", "16,128", "--batch", "1,8", "--cpus", "0-1")
    assert r.returncode != 0
    assert "model.onnx" in r.stderr, r.stderr  # no such model
    r = kiln("tune", tmp_path / "model.onnx", "--probe", fake_probe, "-o", tmp_path / "t.json",
             "--threads", "1,2")
    assert r.returncode != 0
    assert "--threads takes one count" in r.stderr, r.stderr


@pytest.mark.parametrize("cpu", ["cortex-a76", "cortex-a72"])
def test_identify_under_qemu_runner(cpu):
    if not AARCH64_PROBE.exists():
        pytest.skip(f"{AARCH64_PROBE} not built yet (scripts/build.sh --aarch64)")
    if not shutil.which("qemu-aarch64"):
        pytest.skip("qemu-aarch64 missing (qemu-user)")
    r = kiln("tune", "--identify", "--target", "aarch64", "--runner", f"qemu:{cpu}",
             timeout=300)
    assert r.returncode == 0, r.stderr
    assert "timings meaningless" in r.stdout
    assert "aarch64" in r.stdout.lower(), r.stdout


def test_qemu_runner_with_a_stand_in_aarch64_probe(tmp_path):
    if not shutil.which("qemu-aarch64"):
        pytest.skip("qemu-aarch64 missing (qemu-user)")
    probe = build_stand_in_aarch64_probe(tmp_path)
    if probe is None:
        pytest.skip("aarch64-linux-gnu-gcc missing (g++-aarch64-linux-gnu)")
    r = kiln("tune", "--identify", "--target", "rpi5", "--runner", "qemu:cortex-a76", "--probe",
             probe, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "probe on qemu cortex-a76 (timings meaningless)" in r.stdout
    assert "aarch64/part-0xd0b" in r.stdout, r.stdout
    r = kiln("tune", "--identify", "--target", "rpi5", "--probe", probe)  # local: wrong machine
    assert r.returncode != 0 and "--runner local" in r.stderr, r.stderr

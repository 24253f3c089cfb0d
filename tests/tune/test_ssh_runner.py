"""`kiln tune --runner ssh://...` against a private sshd on 127.0.0.1 (conftest.py): identify
through ssh with the probe copied to a temporary directory on the "board" and removed afterwards,
the aarch64 probe under qemu through ssh (KILN_TUNE_SSH_EMULATOR, test-only), and the failures
a user meets (wrong key, unknown host key, unreachable host, crashing probe, bad urls), each a
clear error and never a hang."""
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tune_testenv import (AARCH64_PROBE, HOST_PROBE, KILN, build_stand_in_aarch64_probe,
                          free_port, keygen, kiln, write_probe)

# The "board" is this machine, so its /tmp/kiln-tune.* directories are the ones the tests check
# for leftovers: every test that makes them runs on one xdist worker (scripts/test.sh -n).
pytestmark = pytest.mark.xdist_group("ssh_board_tmp")

DIR_RE = re.compile(r"^/tmp/kiln-tune\.[A-Za-z0-9]{6}$")


def leftover_dirs():
    return set(Path("/tmp").glob("kiln-tune.*"))


def test_identify_through_ssh_and_cleanup(sshd, fake_probe):
    before = leftover_dirs()
    r = kiln("tune", "--identify", "--json", "--runner", sshd.url, "--ssh-config", sshd.config,
             "--probe", fake_probe)
    assert r.returncode == 0, r.stderr
    response = json.loads(r.stdout)
    assert response["cpu"]["key"] == "x86_64/FakeVendor/25/17/avx2,fma"
    assert DIR_RE.match(response["dir"]), response["dir"]
    assert not Path(response["dir"]).exists(), "the runner left its directory on the board"
    assert leftover_dirs() <= before

    r = kiln("tune", "--identify", "--runner", sshd.url, "--ssh-config", sshd.config, "--probe",
             fake_probe)
    assert r.returncode == 0, r.stderr
    assert f"probe on {sshd.url}" in r.stdout
    assert "Fake CPU 9000 (x86_64, FakeVendor family 25 model 17 stepping 1)" in r.stdout
    assert "x86_64/FakeVendor/25/17/avx2,fma" in r.stdout
    assert "L1d 48 KiB, L2 1 MiB, L3 unknown" in r.stdout
    assert "dense_f32: f32_a (default); not on this CPU: f32_b" in r.stdout
    assert "threads:   2 (cpus 0,1)" in r.stdout
    assert leftover_dirs() <= before


def test_host_probe_through_ssh(sshd):
    if not HOST_PROBE.exists():
        pytest.skip(f"{HOST_PROBE} not built yet")
    before = leftover_dirs()
    r = kiln("tune", "--identify", "--runner", sshd.url, "--ssh-config", sshd.config)
    assert r.returncode == 0, r.stderr
    assert f"probe on {sshd.url} (kiln " in r.stdout
    assert "key:" in r.stdout and "dense_f32:" in r.stdout and "(default)" in r.stdout
    assert leftover_dirs() <= before


@pytest.mark.parametrize("cpu,part", [("cortex-a76", "d0b"), ("cortex-a72", "d08")])
def test_aarch64_probe_under_qemu_through_ssh(sshd, cpu, part):
    if not AARCH64_PROBE.exists():
        pytest.skip(f"{AARCH64_PROBE} not built yet (scripts/build.sh --aarch64)")
    if not shutil.which("qemu-aarch64"):
        pytest.skip("qemu-aarch64 missing (qemu-user)")
    env = {"KILN_TUNE_SSH_EMULATOR": f"qemu-aarch64 -cpu {cpu}"}
    target = {"cortex-a76": "rpi5", "cortex-a72": "rpi4"}[cpu]
    r = kiln("tune", "--identify", "--target", target, "--runner", sshd.url, "--ssh-config",
             sshd.config, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "(emulated: timings meaningless)" in r.stdout
    text = r.stdout.lower()
    assert "aarch64" in text, r.stdout
    assert cpu in text or part in text, r.stdout
    r = kiln("tune", "--identify", "--json", "--target", target, "--runner", sshd.url,
             "--ssh-config", sshd.config, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    dumped = json.dumps(json.loads(r.stdout)).lower()
    assert cpu in dumped or part in dumped, r.stdout


@pytest.mark.parametrize("cpu,part", [("cortex-a76", "d0b"), ("cortex-a72", "d08")])
def test_emulator_hook_with_a_stand_in_aarch64_probe(sshd, tmp_path, cpu, part):
    """The emulator path without the real probe: a static aarch64 program that reports MIDR."""
    if not shutil.which("qemu-aarch64"):
        pytest.skip("qemu-aarch64 missing (qemu-user)")
    probe = build_stand_in_aarch64_probe(tmp_path)
    if probe is None:
        pytest.skip("aarch64-linux-gnu-gcc missing (g++-aarch64-linux-gnu)")
    before = leftover_dirs()
    r = kiln("tune", "--identify", "--target", "aarch64", "--runner", sshd.url, "--ssh-config",
             sshd.config, "--probe", probe,
             env={"KILN_TUNE_SSH_EMULATOR": f"qemu-aarch64 -cpu {cpu}"}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{sshd.url} (emulated: timings meaningless)" in r.stdout
    assert f"aarch64/part-0x{part}" in r.stdout, r.stdout
    assert leftover_dirs() <= before


def test_emulator_hook_refuses_anything_else(sshd, fake_probe):
    for bad in ["sh -c id", "qemu-aarch64 -cpu a;id", "qemu-aarch64 -L /"]:
        r = kiln("tune", "--identify", "--runner", sshd.url, "--ssh-config", sshd.config,
                 "--probe", fake_probe, env={"KILN_TUNE_SSH_EMULATOR": bad})
        assert r.returncode != 0
        assert "KILN_TUNE_SSH_EMULATOR" in r.stderr and "refused" in r.stderr, r.stderr


def test_wrong_key_is_a_clear_error(sshd, fake_probe):
    other = keygen(sshd.tmp / "other_key")
    config = sshd.ssh_config("ssh_config_wrong_key", other)
    r = kiln("tune", "--identify", "--runner", sshd.url, "--ssh-config", config, "--probe",
             fake_probe, timeout=60)
    assert r.returncode != 0
    assert "key authentication only" in r.stderr, r.stderr
    assert "Permission denied" in r.stderr


def test_unknown_host_key_is_not_accepted(sshd, fake_probe):
    empty = sshd.tmp / "empty_known_hosts"
    empty.write_text("")
    config = sshd.ssh_config("ssh_config_unknown_host", sshd.client_key, known_hosts=empty)
    r = kiln("tune", "--identify", "--runner", sshd.url, "--ssh-config", config, "--probe",
             fake_probe, timeout=60)
    assert r.returncode != 0
    assert "host key" in r.stderr and "ssh to it once" in r.stderr, r.stderr
    assert empty.read_text() == "", "the host key was accepted"


def test_unreachable_host_names_host_and_port(sshd, fake_probe):
    port = free_port()  # nothing listens there
    r = kiln("tune", "--identify", "--runner", f"ssh://{sshd.user}@127.0.0.1:{port}",
             "--ssh-config", sshd.config, "--probe", fake_probe, timeout=60)
    assert r.returncode != 0
    assert f"cannot reach 127.0.0.1:{port}" in r.stderr, r.stderr


def test_crashing_probe_names_the_signal(sshd, tmp_path):
    before = leftover_dirs()
    probe = write_probe(tmp_path / "crash", "#!/bin/sh\ncat > /dev/null\nkill -SEGV $$\n")
    r = kiln("tune", "--identify", "--runner", sshd.url, "--ssh-config", sshd.config, "--probe",
             probe, timeout=60)
    assert r.returncode != 0
    assert "crashed (signal 11, SIGSEGV)" in r.stderr, r.stderr
    assert sshd.url in r.stderr
    assert leftover_dirs() <= before


def test_interrupt_kills_the_run_and_cleans_up(sshd, tmp_path):
    marker = tmp_path / "probe-dir"
    probe = write_probe(tmp_path / "slow", "#!/bin/sh\ncat > /dev/null\n"
                        f'cd "$(dirname "$0")" && pwd > {marker}\nexec sleep 20\n')
    env = {k: v for k, v in os.environ.items() if k != "KILN_TUNE_SSH_EMULATOR"}
    proc = subprocess.Popen([str(KILN), "tune", "--identify", "--runner", sshd.url, "--ssh-config",
                             str(sshd.config), "--probe", str(probe)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text().strip()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the probe never started"
            time.sleep(0.1)
        board_dir = Path(marker.read_text().strip())
        assert DIR_RE.match(str(board_dir)) and board_dir.exists()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert time.monotonic() - t0 < 15
    assert not board_dir.exists(), "Ctrl-C left the runner's directory on the board"


def test_probe_error_json_is_surfaced(sshd, tmp_path):
    probe = write_probe(tmp_path / "refuse", "#!/bin/sh\ncat > /dev/null\n"
                        "echo '{\"error\": \"unsupported protocol kiln-tune-probe/9\"}'\nexit 2\n")
    r = kiln("tune", "--identify", "--runner", sshd.url, "--ssh-config", sshd.config, "--probe",
             probe, timeout=60)
    assert r.returncode != 0
    assert "unsupported protocol kiln-tune-probe/9" in r.stderr, r.stderr


@pytest.mark.parametrize("url", ["ssh://-oProxyCommand=x", "ssh://a b", "ssh://h;id",
                                 "ssh://-l@h", "ssh://h:0", "ssh://h:99999", "ssh://h'x"])
def test_url_injection_refused_before_ssh_runs(tmp_path, fake_probe, url):
    marker = tmp_path / "ssh-ran"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ssh", "scp"):
        write_probe(bin_dir / tool, f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    r = kiln("tune", "--identify", "--runner", url, "--probe", fake_probe,
             env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}, timeout=30)
    assert r.returncode != 0
    assert "expected ssh://[user@]host[:port]" in r.stderr, r.stderr
    assert not marker.exists(), "ssh ran for a url that should have been refused"

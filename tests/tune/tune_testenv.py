"""Paths and helpers for the `kiln tune` runner tests (fixtures: conftest.py): binaries, fake
probes and a private sshd.

The sshd runs as this user on 127.0.0.1 with generated host and client keys (Debian's
openssh-server, installed by scripts/setup.sh), and is stopped at the end of the session.
Binaries come from KILN_BUILD_DIR (default build/) and KILN_AARCH64_BUILD_DIR (default
build-aarch64/), as in tests/python.
"""
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build")).resolve()
AARCH64_BUILD = Path(os.environ.get("KILN_AARCH64_BUILD_DIR", ROOT / "build-aarch64")).resolve()
KILN = BUILD / "tools" / "kiln" / "kiln"
AARCH64_PROBE = AARCH64_BUILD / "tools" / "tune-probe" / "kiln-tune-probe"
SSHD = Path("/usr/sbin/sshd")

HOST_PROBE = BUILD / "tools" / "tune-probe" / "kiln-tune-probe"

# A stand-in for kiln-tune-probe (same answer shape, tools/tune-probe/probe.h): reads the
# request, answers an identify with a fixed CPU and the directory it runs from (so a test can
# check that the runner removed it).
FAKE_PROBE = r"""#!/bin/sh
cat > /dev/null
printf '{"protocol": "kiln-tune-probe/1", "kiln_version": "0.0.0",
 "cpu": {"arch": "x86_64", "vendor": "FakeVendor", "family": 25, "model": 17, "stepping": 1,
         "implementer": 0, "part": 0, "variant": 0, "revision": 0, "features": "avx2,fma",
         "key": "x86_64/FakeVendor/25/17/avx2,fma", "name": "Fake CPU 9000"},
 "threads": 2, "cpus": [0, 1], "cache": {"l1d": 49152, "l2": 1048576, "l3": 0},
 "variants": {"dense_f32": [{"name": "f32_a", "supported": true},
                            {"name": "f32_b", "supported": false}]},
 "default": {"dense_f32": "f32_a"}, "results": [], "dir": "%s"}\n' "$(cd "$(dirname "$0")" && pwd)"
"""


def kiln(*args, env=None, timeout=120):
    """Runs kiln with args; returns the CompletedProcess (text)."""
    if not KILN.exists():
        pytest.fail(f"{KILN} not built (KILN_BUILD_DIR)")
    full_env = dict(os.environ)
    full_env.pop("KILN_TUNE_SSH_EMULATOR", None)
    full_env.update(env or {})
    return subprocess.run([str(KILN), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def write_probe(path, body):
    path.write_text(body)
    path.chmod(0o700)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kiln-test", "-f",
                    str(path)], check=True)
    return path


class Sshd:
    """A running sshd and the ssh_config files that reach it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.user = getpass.getuser()
        host_key = keygen(tmp / "host_key")
        self.client_key = keygen(tmp / "client_key")
        (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
        (tmp / "known_hosts").write_text(
            f"[127.0.0.1]:{self.port} {(tmp / 'host_key.pub').read_text()}")
        (tmp / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"PidFile {tmp / 'sshd.pid'}\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n")
        self.config = self.ssh_config("ssh_config", self.client_key)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        self.log = open(tmp / "sshd.log", "w")
        self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(tmp / "sshd_config")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited ({self.proc.returncode}): "
                                   f"{(tmp / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("sshd did not listen within 15 s")
                time.sleep(0.1)

    def ssh_config(self, name, key, known_hosts=None):
        path = self.tmp / name
        path.write_text(
            f"Host *\n  User {self.user}\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts or self.tmp / 'known_hosts'}\n"
            "  GlobalKnownHostsFile /dev/null\n  IdentityAgent none\n")
        return path

    @property
    def url(self):
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


# A stand-in for the aarch64 kiln-tune-probe until the real one is built: static, reads the
# request, reports MIDR_EL1 (qemu-user answers with the -cpu's value, as Linux does on a board).
STAND_IN_AARCH64_PROBE = r"""
#include <stdint.h>
#include <stdio.h>
int main(void) {
  while (getchar() != EOF) {
  }
  uint64_t midr;
  __asm__ volatile("mrs %0, midr_el1" : "=r"(midr));
  printf("{\"protocol\": \"kiln-tune-probe/1\", \"cpu\": {\"name\": \"stand-in\", "
         "\"arch\": \"aarch64\", \"midr\": \"0x%llx\"}, \"key\": \"aarch64/part-0x%03llx\"}\n",
         (unsigned long long)midr, (unsigned long long)((midr >> 4) & 0xfff));
  return 0;
}
"""


def build_stand_in_aarch64_probe(tmp):
    """The stand-in compiled with aarch64-linux-gnu-gcc -static; None without the cross compiler."""
    cc = shutil.which("aarch64-linux-gnu-gcc")
    if not cc:
        return None
    src = tmp / "stand_in_probe.c"
    src.write_text(STAND_IN_AARCH64_PROBE)
    out = tmp / "stand-in-probe"
    subprocess.run([cc, "-static", "-O2", "-o", str(out), str(src)], check=True)
    return out

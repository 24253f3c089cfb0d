"""Fixtures for the `kiln tune` runner tests (helpers: tune_testenv.py)."""
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_testenv import FAKE_PROBE, SSHD, Sshd, write_probe  # noqa: E402


@pytest.fixture
def fake_probe(tmp_path):
    return write_probe(tmp_path / "fake-probe", FAKE_PROBE)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if not SSHD.exists() or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        why = ("/usr/sbin/sshd or ssh missing: install openssh-server openssh-client "
               "(scripts/setup.sh)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()

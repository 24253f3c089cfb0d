"""Suite-wide: scripts/test.sh runs the e2e stage on every core (pytest-xdist, -n auto --dist
loadgroup). A test file's module and session fixtures export models and compile artifacts, so by
default a file's tests all run on one worker; a test that names its own xdist_group (the ssh
runner's, which share the "board's" /tmp) is scheduled by that instead."""
import pytest


def pytest_configure(config):  # known without xdist too (the harness stage runs without it)
    config.addinivalue_line("markers", "xdist_group(name): tests that run on one xdist worker")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))

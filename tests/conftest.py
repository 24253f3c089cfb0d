"""Suite-wide: scripts/test.sh runs pytest on both cores (pytest-xdist, -n auto --dist loadgroup).
A test file's module and session fixtures export models and compile artifacts, so by default a
file's tests all run on one worker; a test that names its own xdist_group (the op harness: one
group per configuration) is scheduled by that instead."""
import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))

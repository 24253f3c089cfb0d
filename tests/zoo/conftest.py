"""Shared by the zoo tests: every model is built, and exported with each exporter, once per pytest
session (exporting is the slow part: test_zoo_exports.py and test_zoo_compile.py use the same
files)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class ZooExports:
    """Built models and their ONNX exports, made on first use. A failed export is kept and raised
    again for every test that needs it."""

    def __init__(self, root):
        self.root = root
        self._cases = {}
        self._paths = {}  # (name, exporter) -> path or the exception the export raised

    def case(self, name):
        import zoo  # here, not at the top: zoo needs torch 2.x and the test modules skip without it
        if name not in self._cases:
            self._cases[name] = zoo.build(name)
        return self._cases[name]

    def path(self, name, exporter):
        import zoo
        key = (name, exporter)
        if key not in self._paths:
            try:
                self._paths[key] = zoo.export(self.case(name), exporter,
                                              str(self.root / f"{name}.{exporter}.onnx"))
            except Exception as e:  # noqa: BLE001 -- kept and raised for each test of this export
                self._paths[key] = e
        if isinstance(self._paths[key], Exception):
            raise self._paths[key]
        return self._paths[key]


@pytest.fixture(scope="session")
def zoo_exports(tmp_path_factory):
    return ZooExports(tmp_path_factory.mktemp("zoo_exports"))

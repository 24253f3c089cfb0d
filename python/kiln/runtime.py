"""Runs a kiln artifact from Python with nothing but ctypes, numpy and libkiln_runtime.so.

Mirrors TVM's graph_executor.GraphModule so an existing infer.py ports by changing its imports:

    import kiln.runtime
    m = kiln.runtime.load("bert/")
    m.set_input("input_ids", ids)
    m.set_input("attention_mask", mask)
    m.run()
    hidden = m.get_output(0)
    # or: outputs = m(input_ids=ids, attention_mask=mask)

Needs no compiler on the board: the C ABI (include/kiln/c_api.h) is stable and plain C.
"""
import ctypes
import ctypes.util
import os
from pathlib import Path

import numpy as np

_DTYPES = {1: np.float32, 2: np.int64, 3: np.int32, 4: np.int8, 5: np.uint8, 6: np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


class KilnError(RuntimeError):
    """A kiln runtime call failed; the message names what is wrong."""


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("data", ctypes.c_void_p),
                ("nbytes", ctypes.c_size_t)]


class _LoadOptions(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_int32), ("verify_params", ctypes.c_int32)]


def _candidates(artifact_dir):
    env = os.environ.get("KILN_RUNTIME_LIB")
    if env:
        yield Path(env)
    here = Path(__file__).resolve().parent
    for d in (here, here.parent, Path(artifact_dir) if artifact_dir else None,
              here.parents[1] / "build" / "runtime"):
        if d is not None:
            yield d / "libkiln_runtime.so"
    found = ctypes.util.find_library("kiln_runtime")
    if found:
        yield Path(found)


_lib = None


def _library(artifact_dir=None):
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates(artifact_dir):
        tried.append(str(path))
        if path.is_absolute() and not path.exists():
            continue
        try:
            lib = ctypes.CDLL(str(path))
            break
        except OSError as e:
            tried[-1] += f" ({e})"
    else:
        raise KilnError("libkiln_runtime.so not found; set KILN_RUNTIME_LIB or put it next to "
                        "the kiln package. Tried: " + ", ".join(tried))
    P, I32, STATUS = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int
    sigs = {
        "kiln_last_error": ([], ctypes.c_char_p), "kiln_version": ([], ctypes.c_char_p),
        "kiln_model_load": ([ctypes.c_char_p, ctypes.POINTER(_LoadOptions),
                             ctypes.POINTER(P)], STATUS),
        "kiln_model_free": ([P], None),
        "kiln_model_num_inputs": ([P], I32), "kiln_model_num_outputs": ([P], I32),
        "kiln_model_input_index": ([P, ctypes.c_char_p], I32),
        "kiln_model_output_index": ([P, ctypes.c_char_p], I32),
        "kiln_model_input_info": ([P, I32, ctypes.POINTER(_TensorInfo)], STATUS),
        "kiln_model_output_info": ([P, I32, ctypes.POINTER(_TensorInfo)], STATUS),
        "kiln_model_set_input": ([P, I32, ctypes.c_int, ctypes.POINTER(ctypes.c_int64), I32, P],
                                 STATUS),
        "kiln_model_run": ([P], STATUS),
        "kiln_model_get_output": ([P, I32, ctypes.POINTER(_TensorInfo)], STATUS),
        "kiln_model_set_num_threads": ([P, I32], STATUS),
        "kiln_model_num_threads": ([P], I32),
        "kiln_model_describe": ([P], ctypes.c_char_p),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    _lib = lib
    return lib


def _check(status):
    if status != 0:
        raise KilnError(_lib.kiln_last_error().decode("utf-8", "replace"))


class Module:
    """A loaded artifact. Use kiln.runtime.load(path)."""

    def __init__(self, path, num_threads=0, verify_params=True):
        lib = _library(path)
        self._handle = ctypes.c_void_p()
        opts = _LoadOptions(num_threads, 1 if verify_params else 0)
        _check(lib.kiln_model_load(str(path).encode(), ctypes.byref(opts),
                                   ctypes.byref(self._handle)))
        self._lib = lib
        self._keep = {}

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.kiln_model_free(self._handle)
            self._handle = None

    def _info(self, fn, index):
        info = _TensorInfo()
        _check(fn(self._handle, index, ctypes.byref(info)))
        return info

    def get_num_inputs(self):
        return self._lib.kiln_model_num_inputs(self._handle)

    def get_num_outputs(self):
        return self._lib.kiln_model_num_outputs(self._handle)

    def get_input_index(self, name):
        i = self._lib.kiln_model_input_index(self._handle, name.encode())
        if i < 0:
            raise KilnError(self._lib.kiln_last_error().decode())
        return i

    def get_output_index(self, name):
        i = self._lib.kiln_model_output_index(self._handle, name.encode())
        if i < 0:
            raise KilnError(self._lib.kiln_last_error().decode())
        return i

    @property
    def input_names(self):
        return [self._info(self._lib.kiln_model_input_info, i).name.decode()
                for i in range(self.get_num_inputs())]

    @property
    def output_names(self):
        return [self._info(self._lib.kiln_model_output_info, i).name.decode()
                for i in range(self.get_num_outputs())]

    def set_input(self, key, value):
        index = self.get_input_index(key) if isinstance(key, str) else int(key)
        arr = np.ascontiguousarray(value)
        code = _CODES.get(arr.dtype)
        if code is None:
            raise KilnError(f"input {key!r}: dtype {arr.dtype} is not supported "
                            f"(float32, int64, int32, int8, uint8, bool)")
        shape = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
        _check(self._lib.kiln_model_set_input(self._handle, index, code, shape, arr.ndim,
                                              arr.ctypes.data_as(ctypes.c_void_p)))

    def run(self, **inputs):
        for k, v in inputs.items():
            self.set_input(k, v)
        _check(self._lib.kiln_model_run(self._handle))

    def get_output(self, index):
        index = self.get_output_index(index) if isinstance(index, str) else int(index)
        info = self._info(self._lib.kiln_model_get_output, index)
        shape = tuple(info.shape[i] for i in range(info.rank))
        dtype = np.dtype(_DTYPES[info.dtype])
        buf = (ctypes.c_char * info.nbytes).from_address(info.data) if info.nbytes else b""
        return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()

    def __call__(self, **inputs):
        self.run(**inputs)
        return {name: self.get_output(i) for i, name in enumerate(self.output_names)}

    @property
    def num_threads(self):
        return self._lib.kiln_model_num_threads(self._handle)

    @num_threads.setter
    def num_threads(self, n):
        _check(self._lib.kiln_model_set_num_threads(self._handle, int(n)))

    def describe(self):
        return self._lib.kiln_model_describe(self._handle).decode()


def load(path, num_threads=0, verify_params=True):
    """Loads the artifact directory `path` (model.json, model.so, model.params)."""
    return Module(path, num_threads, verify_params)

"""Runs a kiln artifact from Python with nothing but ctypes, numpy and libkiln_runtime.so.

Mirrors TVM's graph_executor.GraphModule so an existing infer.py ports by changing its imports:

    import kiln.runtime
    m = kiln.runtime.load("bert/")
    m.set_input("input_ids", ids)
    m.set_input("attention_mask", mask)
    m.run()
    hidden = m.get_output(0)
    # or: outputs = m(input_ids=ids, attention_mask=mask)
    # artifacts compiled with --vocab: outputs = m(text=["a sentence", "another"])
    # with a tokenizer and pooling: vectors = m.embed(["a sentence", "another"])  # [2, dim]

Needs no compiler on the board: the C ABI (include/kiln/c_api.h) is stable and plain C.
"""
import ctypes
import ctypes.util
import os
import warnings
from pathlib import Path

import numpy as np

_DTYPES = {1: np.float32, 2: np.int64, 3: np.int32, 4: np.int8, 5: np.uint8, 6: np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


class KilnError(RuntimeError):
    """A kiln runtime call failed; the message names what is wrong. .status is the kiln_status
    code (1 invalid argument, 2 I/O, 3 corrupt, 4 incompatible, 5 runtime, 6 call order)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class KilnWarning(UserWarning):
    """Something was adjusted, e.g. a text truncated to the compiled maximum sequence length."""


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("data", ctypes.c_void_p),
                ("nbytes", ctypes.c_size_t)]


class _LoadOptions(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_int32), ("verify_params", ctypes.c_int32)]


class _Encoding(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int64), ("seq", ctypes.c_int64),
                ("input_ids", ctypes.POINTER(ctypes.c_int64)),
                ("attention_mask", ctypes.POINTER(ctypes.c_int64)),
                ("token_type_ids", ctypes.POINTER(ctypes.c_int64)),
                ("num_truncated", ctypes.c_int32), ("warning", ctypes.c_char_p)]


class _EmbedOptions(ctypes.Structure):
    _fields_ = [("max_batch", ctypes.c_int32), ("keep_order", ctypes.c_int32)]


class _EmbedStats(ctypes.Structure):
    _fields_ = [("tokens", ctypes.c_int64), ("padded_tokens", ctypes.c_int64),
                ("runs", ctypes.c_int32), ("num_truncated", ctypes.c_int32),
                ("warning", ctypes.c_char_p)]


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
    yield Path("libkiln_runtime.so")  # the dynamic linker's search path (e.g. the .deb)


_lib = None


def _library(artifact_dir=None):
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates(artifact_dir):
        tried.append(str(path))
        if path.is_absolute() and not path.exists():
            tried[-1] += " (missing)"
            continue
        try:
            lib = ctypes.CDLL(str(path))
            break
        except OSError as e:
            tried[-1] += f" ({e})"
    else:
        raise KilnError("libkiln_runtime.so not found: set KILN_RUNTIME_LIB to its path, or put "
                        "it next to the kiln package (a deploy bundle has it there). Tried: " +
                        "; ".join(tried), status=2)
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
        "kiln_model_has_tokenizer": ([P], I32),
        "kiln_model_encode": ([P, ctypes.POINTER(ctypes.c_char_p), I32, I32,
                               ctypes.POINTER(_Encoding)], STATUS),
        "kiln_model_embedding_dim": ([P, ctypes.POINTER(ctypes.c_int64)], STATUS),
        "kiln_model_count_tokens": ([P, ctypes.POINTER(ctypes.c_char_p), I32,
                                     ctypes.POINTER(ctypes.c_int64)], STATUS),
        "kiln_model_embed": ([P, ctypes.POINTER(ctypes.c_char_p), I32,
                              ctypes.POINTER(_EmbedOptions), ctypes.POINTER(ctypes.c_float),
                              ctypes.c_int64, ctypes.POINTER(_EmbedStats)], STATUS),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    _lib = lib
    return lib


def _text_list(texts, what):
    """texts (a str or an iterable of str) as a non-empty list; errors name the call and text."""
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what}: no texts (an empty list)")
    for i, t in enumerate(texts):
        if not isinstance(t, (str, bytes)):
            raise TypeError(f"{what}: text {i} is a {type(t).__name__}, not a str")
    return texts


def _check(status):
    if status != 0:
        raise KilnError(_lib.kiln_last_error().decode("utf-8", "replace"), status)


class Module:
    """A loaded artifact. Use kiln.runtime.load(path)."""

    def __init__(self, path, num_threads=0, verify_params=True):
        self._handle = None
        lib = _library(path)
        handle = ctypes.c_void_p()
        opts = _LoadOptions(int(num_threads), 1 if verify_params else 0)
        _check(lib.kiln_model_load(os.fsencode(str(path)), ctypes.byref(opts),
                                   ctypes.byref(handle)))
        self._lib, self._handle = lib, handle
        self.path = Path(path)

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.kiln_model_free(self._handle)
            self._handle = None

    def _info(self, fn, index):
        info = _TensorInfo()
        _check(fn(self._handle, index, ctypes.byref(info)))
        return info

    def _io(self, fn, count):
        out = []
        for i in range(count):
            info = self._info(fn, i)
            out.append({"name": info.name.decode(), "dtype": np.dtype(_DTYPES[info.dtype]),
                        "shape": tuple(info.shape[k] for k in range(info.rank))})
        return out

    def get_num_inputs(self):
        return self._lib.kiln_model_num_inputs(self._handle)

    def get_num_outputs(self):
        return self._lib.kiln_model_num_outputs(self._handle)

    def get_input_index(self, name):
        i = self._lib.kiln_model_input_index(self._handle, name.encode())
        if i < 0:
            raise KilnError(self._lib.kiln_last_error().decode(), 1)
        return i

    def get_output_index(self, name):
        i = self._lib.kiln_model_output_index(self._handle, name.encode())
        if i < 0:
            raise KilnError(self._lib.kiln_last_error().decode(), 1)
        return i

    def input_info(self):
        """[{"name", "dtype", "shape"}] per input; -1 marks a symbolic dimension."""
        return self._io(self._lib.kiln_model_input_info, self.get_num_inputs())

    def output_info(self):
        return self._io(self._lib.kiln_model_output_info, self.get_num_outputs())

    @property
    def input_names(self):
        return [i["name"] for i in self.input_info()]

    @property
    def output_names(self):
        return [o["name"] for o in self.output_info()]

    def _input_index(self, key):
        if isinstance(key, str):
            return self.get_input_index(key)
        index = int(key)
        if not 0 <= index < self.get_num_inputs():
            raise KilnError(f"input index {index} is out of range (the model has "
                            f"{self.get_num_inputs()} inputs: {self.input_names})", 1)
        return index

    def set_input(self, key=None, value=None, **params):
        """set_input(name_or_index, array), or set_input(name=array, ...) like TVM's."""
        if key is not None and value is None and not params:
            raise KilnError(f"input {key!r}: no value given", 1)
        items = ([(key, value)] if key is not None else []) + list(params.items())
        for k, v in items:
            index = self._input_index(k)
            want = self.input_info()[index]
            if hasattr(v, "detach"):  # a torch.Tensor
                v = v.detach().cpu().numpy()
            arr = np.ascontiguousarray(v)
            code = _CODES.get(arr.dtype)
            ok = arr.dtype == want["dtype"] or (want["dtype"] == np.int64 and arr.dtype == np.int32)
            if code is None or not ok:
                raise KilnError(f"input '{want['name']}': dtype {arr.dtype}, expected "
                                f"{want['dtype']}" +
                                (" (int32 is accepted too)" if want["dtype"] == np.int64 else ""),
                                1)
            shape = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
            _check(self._lib.kiln_model_set_input(self._handle, index, code, shape, arr.ndim,
                                                  arr.ctypes.data_as(ctypes.c_void_p)))

    def run(self, **inputs):
        if inputs:
            self.set_input(None, **inputs)
        _check(self._lib.kiln_model_run(self._handle))

    def get_output(self, index, out=None):
        """Output `index` (or name) of the last run, as a new array (or copied into `out`)."""
        index = self.get_output_index(index) if isinstance(index, str) else int(index)
        info = self._info(self._lib.kiln_model_get_output, index)
        shape = tuple(info.shape[i] for i in range(info.rank))
        dtype = np.dtype(_DTYPES[info.dtype])
        buf = (ctypes.c_char * info.nbytes).from_address(info.data) if info.nbytes else b""
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
        if out is None:
            return arr.copy()
        if out.shape != shape or out.dtype != dtype:
            raise KilnError(f"get_output: out is {out.dtype}{list(out.shape)}, the output is "
                            f"{dtype}{list(shape)}", 1)
        np.copyto(out, arr)
        return out

    # ---- text (artifacts compiled with `kiln compile --tokenizer tokenizer.json` or --vocab) ----

    @property
    def has_tokenizer(self):
        return bool(self._lib.kiln_model_has_tokenizer(self._handle))

    def encode(self, texts, max_length=None):
        """The packed tokenizer (vocab.txt WordPiece or tokenizer.json) on the board:
        {"input_ids", "attention_mask", "token_type_ids"} as int64
        [len(texts), longest] arrays, also set as the model's inputs. Texts longer than
        max_length (default: the compiled maximum) are truncated with a KilnWarning."""
        if isinstance(texts, (str, bytes)):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise KilnError("encode: no texts", 1)
        raw = _c_texts([t if isinstance(t, bytes) else str(t) for t in texts])
        enc = _Encoding()
        _check(self._lib.kiln_model_encode(self._handle, raw, len(texts), int(max_length or 0),
                                           ctypes.byref(enc)))
        if enc.num_truncated:
            warnings.warn(enc.warning.decode("utf-8", "replace"), KilnWarning, stacklevel=2)
        n = enc.batch * enc.seq

        def array(ptr):
            if n == 0:  # only empty texts and a tokenizer without special tokens
                return np.zeros((enc.batch, enc.seq), np.int64)
            return np.ctypeslib.as_array(ptr, shape=(n,)).reshape(enc.batch, enc.seq).copy()

        return {"input_ids": array(enc.input_ids), "attention_mask": array(enc.attention_mask),
                "token_type_ids": array(enc.token_type_ids)}

    def embed(self, texts, max_batch=0, keep_order=False, stats=None):
        """Sentence embeddings of texts (a str or a list of str) on the board, no torch:
        a float32 ndarray [len(texts), dim], row i for texts[i]. The packed tokenizer, the model
        on batches of similar length (sorted by token count, max_batch texts per run; 0 = the
        runtime's default; keep_order=True pads each run of the given order to its longest,
        for comparisons), then the artifact's pooling and L2 normalisation (kiln compile
        --pooling / --normalize, or kiln.compile(SentenceTransformer)). Texts longer than the
        compiled maximum are truncated with a KilnWarning. stats: a dict to receive tokens,
        padded_tokens, runs and truncated."""
        texts = _text_list(texts, "embed")
        raw = _c_texts(texts)
        dim = ctypes.c_int64()
        _check(self._lib.kiln_model_embedding_dim(self._handle, ctypes.byref(dim)))
        out = np.empty((len(texts), dim.value), np.float32)
        info = _EmbedStats()
        opts = _EmbedOptions(int(max_batch), 1 if keep_order else 0)
        _check(self._lib.kiln_model_embed(
            self._handle, raw, len(texts), ctypes.byref(opts),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size, ctypes.byref(info)))
        if info.num_truncated:
            warnings.warn(info.warning.decode("utf-8", "replace"), KilnWarning, stacklevel=2)
        if stats is not None:
            stats.update(tokens=info.tokens, padded_tokens=info.padded_tokens, runs=info.runs,
                         truncated=info.num_truncated)
        return out

    def count_tokens(self, texts):
        """Tokens of each text (a str or a list of str) before truncation, special tokens
        included: a list of int, for a caller that splits or rejects long texts before embed."""
        texts = _text_list(texts, "count_tokens")
        counts = (ctypes.c_int64 * len(texts))()
        _check(self._lib.kiln_model_count_tokens(self._handle, _c_texts(texts), len(texts),
                                                 counts))
        return list(counts)

    @property
    def embedding_dim(self):
        """The size of one embedding; KilnError when the artifact has no pooling."""
        dim = ctypes.c_int64()
        _check(self._lib.kiln_model_embedding_dim(self._handle, ctypes.byref(dim)))
        return dim.value

    def __call__(self, text=None, **inputs):
        """m(input_ids=..., attention_mask=...) or m(text=[...]): runs, returns {name: array}."""
        if text is not None:
            self.encode(text)
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


def _c_texts(texts):
    """NUL-terminated UTF-8 for the C ABI. C strings end at NUL; the tokenizers drop U+0000
    anyway, so it is dropped here first."""
    return (ctypes.c_char_p * len(texts))(
        *[(t if isinstance(t, bytes) else t.encode("utf-8", "surrogatepass")).replace(b"\0", b"")
          for t in texts])


def load(path, num_threads=0, verify_params=True):
    """Loads the artifact directory `path` (model.json, model.so, model.params)."""
    return Module(path, num_threads, verify_params)

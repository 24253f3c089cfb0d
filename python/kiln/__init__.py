"""kiln: compile PyTorch transformers into small, fast artifacts for x86 and Raspberry Pi.

    import kiln
    art = kiln.compile(hf_model, output_dir="bert/")   # a transformers / sentence-transformers
    m = kiln.load(art)                                 # model, a torch.nn.Module or an ONNX file
    out = m(input_ids=ids, attention_mask=mask)        # {"last_hidden_state": array, ...}

kiln.compile(...) runs on the PC (needs torch and the kiln compiler); kiln.runtime runs anywhere
with numpy and libkiln_runtime.so, and imports nothing else.
"""
__version__ = "0.1.0"


def compile(model, example_inputs=None, **kwargs):  # noqa: A001 - mirrors the CLI verb
    """See kiln.compiler.compile."""
    from .compiler import compile as _compile

    return _compile(model, example_inputs, **kwargs)


def load(path, num_threads=0, verify_params=True):
    """See kiln.runtime.load."""
    from .runtime import load as _load

    return _load(path, num_threads, verify_params)


def __getattr__(name):
    # kiln.CompileError / kiln.CompileWarning without importing the compiler side up front (a
    # deploy bundle ships only __init__.py and runtime.py)
    if name in ("CompileError", "CompileWarning"):
        from . import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module 'kiln' has no attribute {name!r}")

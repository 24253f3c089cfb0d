"""kiln: compile PyTorch transformers into small, fast artifacts for x86 and Raspberry Pi.

kiln.compile(...) runs on the PC (needs torch and the kiln compiler); kiln.runtime runs anywhere
with numpy and libkiln_runtime.so, and imports nothing else.
"""
__version__ = "0.1.0"


def compile(model, example_inputs=None, **kwargs):  # noqa: A001 - mirrors the CLI verb
    """See kiln.compiler.compile."""
    from .compiler import compile as _compile

    return _compile(model, example_inputs, **kwargs)

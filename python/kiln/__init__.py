"""kiln: compile PyTorch transformers into small, fast artifacts for x86 and Raspberry Pi."""
__version__ = "0.1.0"

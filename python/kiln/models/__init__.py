"""Reference models built in plain PyTorch, for demos, tests and benchmarks (no model hub)."""

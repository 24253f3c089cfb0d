"""The llvm-mca rates kiln tune's analytic model ranks aarch64 variants by
(compiler/tune/mca_rates.inc) still describe the micro-kernels in the tree: bench/mca_rates.py
recompiles each K loop and reruns llvm-mca, and any rate that moved more than 5 % fails here
until the table is regenerated."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mca_rates_match_the_kernels():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "mca_rates.py"), "--check"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout

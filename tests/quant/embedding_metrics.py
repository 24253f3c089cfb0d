"""The embedding users' view of INT8 error, shared by the tests in tests/quant (issue 12)."""
import numpy as np


def agreement(ref, got):
    """Cosine mean and worst of each embedding in `got` to its row in `ref` (both normalised
    here), and the fraction of rows whose nearest neighbour (by cosine among the other rows) is
    the same in both."""
    ref, got = (np.asarray(e, np.float64) for e in (ref, got))
    ref, got = (e / np.linalg.norm(e, axis=1, keepdims=True) for e in (ref, got))
    cos = (ref * got).sum(1)

    def nearest(e):
        s = e @ e.T
        np.fill_diagonal(s, -2)
        return s.argmax(1)

    return float(cos.mean()), float(cos.min()), float((nearest(ref) == nearest(got)).mean())

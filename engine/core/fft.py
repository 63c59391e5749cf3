"""FFTs for the engine: scipy.fft when it is installed (single precision, threaded), else numpy.

scipy comes with the Scipion extra; a plain install falls back to numpy's (double precision,
one thread), which gives the same results a little slower.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np

try:
    from scipy import fft as _sfft
except ImportError:  # pragma: no cover - numpy fallback
    _sfft = None

__all__ = ["rfft2", "irfft2", "fft", "rfft", "set_workers", "thread_workers", "BACKEND"]

BACKEND = "scipy" if _sfft is not None else "numpy"
_WORKERS = 1
_LOCAL = threading.local()  # per-thread override (engine.core.parallel's block workers)


def set_workers(n: int) -> None:
    """Threads that scipy's FFTs may use (ignored by numpy)."""
    global _WORKERS
    _WORKERS = max(1, int(n))


@contextlib.contextmanager
def thread_workers(n: int) -> Iterator[None]:
    """FFT threads for the calling thread only, inside the ``with`` block."""
    before = getattr(_LOCAL, "n", None)
    _LOCAL.n = max(1, int(n))
    try:
        yield
    finally:
        _LOCAL.n = before


def _workers() -> int:
    n = getattr(_LOCAL, "n", None)
    return _WORKERS if n is None else int(n)


def rfft2(a: np.ndarray) -> np.ndarray:
    if _sfft is not None:
        return _sfft.rfft2(a, workers=_workers())
    return np.fft.rfft2(a)


def irfft2(a: np.ndarray, s: tuple[int, int]) -> np.ndarray:
    if _sfft is not None:
        return _sfft.irfft2(a, s=s, workers=_workers())
    return np.fft.irfft2(a, s=s)


def fft(a: np.ndarray, axis: int = -1) -> np.ndarray:
    if _sfft is not None:
        return _sfft.fft(a, axis=axis, workers=_workers())
    return np.fft.fft(a, axis=axis)


def rfft(a: np.ndarray, axis: int = -1) -> np.ndarray:
    if _sfft is not None:
        return _sfft.rfft(a, axis=axis, workers=_workers())
    return np.fft.rfft(a, axis=axis)

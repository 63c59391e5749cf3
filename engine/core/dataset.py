"""The particles the classification runs on (on the small box), and which of them this
process holds when several processes share the work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset"]


@dataclass
class Dataset:
    """Particles on the small box (normalised on the background, not masked)."""

    images: np.ndarray  # (N, b, b) float32/float16, RAM or memory-mapped cache
    ctfm: np.ndarray | None  # (N, 8) CTF rows (engine.core.ctf.CtfParams.as_matrix) or None
    box: int  # original box (px)
    apix_A: float  # original pixel size
    b: int  # small box (px)
    n_total: int = -1  # particles in the whole set (all processes)
    rank: int = 0  # this process owns particles rank, rank + size, ...
    size: int = 1
    # called with the rows just read (a memory-mapped cache drops them from resident memory)
    after_read: Callable[[np.ndarray], None] | None = None

    def __post_init__(self) -> None:
        if self.n_total < 0:
            self.n_total = int(self.images.shape[0])

    @property
    def n(self) -> int:
        """Particles in the whole set."""
        return self.n_total

    def owned(self, idx: np.ndarray) -> np.ndarray:
        """The particles of ``idx`` that this process holds."""
        return idx[idx % self.size == self.rank] if self.size > 1 else idx

    def images_of(self, idx: np.ndarray) -> np.ndarray:
        """Cached small-box images of owned particles ``idx`` (global numbers), float32."""
        rows = idx // self.size if self.size > 1 else idx
        out = np.asarray(self.images[rows], dtype=np.float32)
        if self.after_read is not None and len(rows):
            self.after_read(rows)
        return out

    @property
    def apix_small_A(self) -> float:
        return self.apix_A * self.box / self.b

"""The online-EM schedule: iterations, annealing temperature, step sizes and batches."""

from __future__ import annotations

import numpy as np

from engine.params import ClassifyParams

__all__ = ["n_iterations", "temperature", "step_size", "batch_indices"]


def n_iterations(p: ClassifyParams) -> int:
    return p.online_iters + p.full_passes


def temperature(p: ClassifyParams, it: int) -> float:
    """Annealing factor A of iteration ``it`` (1-based): ``uncertainty`` -> 1 while online."""
    if it > p.online_iters or p.online_iters <= 1:
        return 1.0 if it > p.online_iters else float(p.uncertainty)
    f = (it - 1) / (p.online_iters - 1)
    return float(p.uncertainty) ** (1.0 - f)


def step_size(it: int, batch_fraction: float = 0.0) -> float:
    """Online-EM step eta of iteration ``it``: ``it^-0.6``, or 1 when the batch is the whole
    data set (``batch_fraction`` = batch size / particles >= 1).

    The running class sums are ``(1 - eta) old + eta batch``. With the decay (1, 0.66, 0.52,
    ... 0.17 at iteration 20) they keep sums from early, hot, blurred iterations long after
    the references have sharpened; when every batch is the whole data set (5,000 particles
    and 100 x 50 per batch) the old sums are only staler copies of the new ones, and keeping
    them mixed views in the final classes. Such a batch replaces the sums (plain EM).
    """
    return 1.0 if batch_fraction >= 1.0 else float(it) ** -0.6


def batch_indices(p: ClassifyParams, n: int, it: int) -> np.ndarray:
    """Particles of online iteration ``it``: consecutive slices of per-epoch permutations."""
    size = p.batch_per_class * p.n_classes
    if size >= n:
        return np.arange(n)
    start = (it - 1) * size
    out = []
    pos = start
    while pos < start + size:
        epoch, off = divmod(pos, n)
        perm = np.random.default_rng([p.seed, 7919, epoch]).permutation(n)
        take = min(n - off, start + size - pos)
        out.append(perm[off : off + take])
        pos += take
    return np.sort(np.concatenate(out))

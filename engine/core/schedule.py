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
    """Online-EM step eta of iteration ``it``: ``max(it^-0.6, batch_fraction)``.

    The running class sums are ``(1 - eta) old + eta batch``. With the decay alone (1, 0.66,
    0.52, ... 0.17 at iteration 20) they keep sums from early, hot, blurred iterations long
    after the references have sharpened, which mixes views in the final classes: with 5,000
    particles and 100 x 50 per batch, every batch is the whole data set and the old sums are
    only staler copies of it. ``batch_fraction`` (batch size / particles, capped at 1) keeps
    the memory to about one pass over the data: a batch that covers the data set replaces
    the sums (plain EM), half of it keeps one batch back, and a batch much smaller than the
    data set leaves the decay unchanged.
    """
    return max(float(it) ** -0.6, min(float(batch_fraction), 1.0))


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

"""The online-EM schedule: iterations, annealing temperature, step sizes and batches.

An *update* is one E+M iteration of the engine. Online iteration ``i`` of the user's
``--online-iters`` is one update from a batch of ``batch_per_class x K`` particles, or, when
that batch would hold the whole data set and ``--half-batches`` is on, two updates from the
two halves of a fresh permutation (:func:`half_batches`). The full passes follow.
"""

from __future__ import annotations

import numpy as np

from engine.params import ClassifyParams

__all__ = [
    "half_batches",
    "online_updates",
    "n_iterations",
    "temperature",
    "step_size",
    "update_step",
    "batch_indices",
    "visits",
    "recentre_update",
    "HALF_MIN_PER_CLASS",
    "RECENTRE_FRACTION",
]

#: fewest particles per class in a half batch; smaller data sets keep one update per pass
HALF_MIN_PER_CLASS = 20

#: share of the online updates after which classes are re-centred (``--center-classes``)
RECENTRE_FRACTION = 0.75


def half_batches(p: ClassifyParams, n: int) -> bool:
    """Whether each online iteration is two updates from half of the ``n`` particles each."""
    whole = p.batch_per_class * p.n_classes >= n
    return bool(p.half_batches) and whole and n // 2 >= HALF_MIN_PER_CLASS * p.n_classes


def online_updates(p: ClassifyParams, n: int) -> int:
    return p.online_iters * (2 if half_batches(p, n) else 1)


def n_iterations(p: ClassifyParams, n: int) -> int:
    """Updates of a whole run on ``n`` particles: online updates, then the full passes."""
    return online_updates(p, n) + p.full_passes


def temperature(p: ClassifyParams, it: int, n: int) -> float:
    """Annealing factor A of update ``it`` (1-based): ``uncertainty`` -> 1 over the online
    updates, 1 in the full passes."""
    u = online_updates(p, n)
    if it > u or u <= 1:
        return 1.0 if it > u else float(p.uncertainty)
    f = (it - 1) / (u - 1)
    return float(p.uncertainty) ** (1.0 - f)


def step_size(it: int, batch_fraction: float = 0.0) -> float:
    """Online-EM step eta of update ``it``: ``it^-0.6``, or 1 when the batch is the whole
    data set or one of its halves (``batch_fraction`` = batch size / particles >= 1; a half
    batch counts as 1, :func:`update_step`).

    The running class sums are ``(1 - eta) old + eta batch``. With the decay (1, 0.66, 0.52,
    ... 0.17 at iteration 20) they keep sums from early, hot, blurred iterations long after
    the references have sharpened; when every batch is the whole data set (5,000 particles
    and 100 x 50 per batch) the old sums are only staler copies of the new ones, and keeping
    them mixed views in the final classes. Such a batch replaces the sums (plain EM), and so
    does a half of it: the references then follow the data twice as often (README,
    "Half batches").
    """
    return 1.0 if batch_fraction >= 1.0 else float(it) ** -0.6


def update_step(p: ClassifyParams, n: int, it: int) -> float:
    """:func:`step_size` of online update ``it`` on ``n`` particles: a half batch replaces the
    sums as the whole data set does."""
    fraction = 1.0 if half_batches(p, n) else p.batch_per_class * p.n_classes / max(n, 1)
    return step_size(it, fraction)


def batch_indices(p: ClassifyParams, n: int, it: int) -> np.ndarray:
    """Particles of online update ``it``: consecutive slices of per-epoch permutations (with
    :func:`half_batches`, the two halves of one permutation per online iteration)."""
    if half_batches(p, n):
        perm = np.random.default_rng([p.seed, 7919, (it - 1) // 2]).permutation(n)
        half = perm[: n // 2] if it % 2 == 1 else perm[n // 2 :]
        return np.sort(half)
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


def visits(p: ClassifyParams, n: int) -> int:
    """Particle visits of a whole run: the online batches and the full passes."""
    if half_batches(p, n):
        online = p.online_iters * n
    else:
        online = min(p.batch_per_class * p.n_classes, n) * p.online_iters
    return online + n * p.full_passes


def recentre_update(p: ClassifyParams, n: int, it: int) -> bool:
    """Whether update ``it`` re-centres the classes (``--center-classes``): the first
    :data:`RECENTRE_FRACTION` of the online updates, while the classes form and particles
    picked off centre find their offsets, and the last update of the run (the class averages
    written; the members' offsets follow). In the last online updates the classes keep
    their place: re-centring every update moved each class by the centre of mass of a noisy
    average, junk classes included, and its members with it (README, "Re-centring": junk in
    junk classes 64.6% / 72.3% against 76.5% / 77.3% on the simulation,
    compact / elongated)."""
    if not p.center_classes:
        return False
    if it == n_iterations(p, n):
        return True
    return it <= RECENTRE_FRACTION * online_updates(p, n)

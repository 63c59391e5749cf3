"""The per-particle filter of a selection.

Whole-class decisions cannot remove junk that sits inside good classes: an aggregate
aligns on one of its particles and lands in that particle's class, and so do some pieces of
ice and carbon. :func:`particle_outliers` removes such particles one by one, from the
per-particle statistics of the run (:mod:`engine.core.particle_residuals`): a particle whose
low-resolution residual against its posed class average is far above that of the other
selected particles (robust z-score), or whose signal is far below. Those particles go to
``particles_removed.star`` with the reason (:mod:`engine.select.files`), so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.select.selection import SelectionThresholds

__all__ = [
    "ParticleVerdict",
    "particle_outliers",
    "EXCESS",
    "WEAK",
    "FILTER_OFF",
    "MIN_FILTER_POPULATION",
]

#: fewest particles in the selected classes for the robust statistics of the particle filter
MIN_FILTER_POPULATION = 30


@dataclass
class ParticleVerdict:
    """Which particles of the selected classes the particle filter keeps, and why not.

    Attributes
    ----------
    in_classes : ndarray of bool
        Per row of ``run_data.star``: the particle belongs to a selected class.
    keep : ndarray of bool
        Per row: in a selected class and not removed by the filter.
    reason : ndarray of str
        Per row: ``""``, or why the filter removed it.
    removed : dict
        ``{"excess low-resolution power": n, "weak signal": n}``.
    note : str
        Why the filter did not run (empty when it did).
    stats : dict
        Median and robust standard deviation of each statistic among the selected particles.
    limits : dict
        The thresholds it applied (``max_residual_z``, ``min_signal_z``).
    """

    in_classes: np.ndarray
    keep: np.ndarray
    reason: np.ndarray
    removed: dict[str, int]
    note: str = ""
    stats: dict[str, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)

    @property
    def n_removed(self) -> int:
        return int(self.in_classes.sum() - self.keep.sum())

    def summary(self) -> str:
        if self.note:
            return f"particle filter: {self.note}"
        parts = ", ".join(f"{n} {k}" for k, n in self.removed.items() if n)
        return (
            f"particle filter: {self.n_removed} of {int(self.in_classes.sum())} particles "
            f"of the selected classes removed" + (f" ({parts})" if parts else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": not self.note,
            "note": self.note,
            "n_in_classes": int(self.in_classes.sum()),
            "n_removed": self.n_removed,
            "removed": {k: int(v) for k, v in self.removed.items()},
            "stats": {k: round(float(v), 4) for k, v in self.stats.items()},
            **{k: float(v) for k, v in self.limits.items()},
        }


EXCESS = "excess low-resolution power"
WEAK = "weak signal"
#: what a selection says when the particle filter is switched off
FILTER_OFF = "particle filter: off (every particle of the selected classes kept)"


def _robust(v: np.ndarray) -> tuple[float, float]:
    """Median and 1.4826 x median absolute deviation (a standard deviation for normal data)."""
    med = float(np.median(v))
    return med, float(1.4826 * np.median(np.abs(v - med)))


def particle_outliers(
    data: pd.DataFrame, class_ids: Iterable[int], thresholds: SelectionThresholds | None = None
) -> ParticleVerdict:
    """Find the particles of the selected classes that do not look like their class-mates.

    Uses the per-particle columns of ``run_data.star`` (:mod:`engine.core.particle_residuals`):
    ``tdcResidualLowRes`` (power the posed class average leaves unexplained, 200-25 Å) and
    ``tdcSignalLowRes`` (signal matched to the class average). Each becomes a robust z-score
    among all particles of the selected classes (median, 1.4826 x MAD); a particle is
    removed when its residual z exceeds ``max_residual_z`` (an overlapping neighbour or
    aggregate, ice, carbon) or its signal z is below ``-min_signal_z`` (an empty or
    off-centre pick). A threshold of 0 switches that test off. Without those columns (a job
    of another program) or with fewer than 30 particles nothing is removed and ``note`` says
    why.
    """
    th = thresholds or SelectionThresholds()
    cols = {c.lstrip("_"): c for c in data.columns}
    in_cls = (
        data[cols.get("rlnClassNumber", "rlnClassNumber")]
        .astype(int)
        .isin({int(c) for c in class_ids})
        .to_numpy()
    )
    n = len(data)
    keep = in_cls.copy()
    reason = np.full(n, "", dtype=object)
    removed = {EXCESS: 0, WEAK: 0}
    limits = {"max_residual_z": float(th.max_residual_z), "min_signal_z": float(th.min_signal_z)}
    tests = [
        (name, z, sign, label)
        for name, z, sign, label in (
            ("tdcResidualLowRes", th.max_residual_z, 1.0, EXCESS),
            ("tdcSignalLowRes", th.min_signal_z, -1.0, WEAK),
        )
        if z > 0
    ]
    if not tests:
        return ParticleVerdict(in_cls, keep, reason, removed, "switched off", limits=limits)
    missing = [name for name, *_ in tests if name not in cols]
    if missing:
        return ParticleVerdict(
            in_cls,
            keep,
            reason,
            removed,
            f"no {', '.join(missing)} column in the particle file (a job "
            "of another program or an older version): nothing removed",
            limits=limits,
        )
    if in_cls.sum() < MIN_FILTER_POPULATION:
        return ParticleVerdict(
            in_cls,
            keep,
            reason,
            removed,
            f"fewer than {MIN_FILTER_POPULATION} particles in the selected "
            "classes: nothing removed",
            limits=limits,
        )
    stats: dict[str, float] = {}
    for name, limit, sign, label in tests:
        v = pd.to_numeric(data[cols[name]], errors="coerce").to_numpy(float)
        ok = in_cls & np.isfinite(v)
        med, sd = _robust(v[ok])
        stats[f"{name}_median"], stats[f"{name}_sd"] = med, sd
        if not sd > 0:
            continue
        z = (v - med) / sd
        bad = in_cls & (sign * z > limit)
        bad |= in_cls & ~np.isfinite(v)
        cmp = ">" if sign > 0 else "<"
        for i in np.flatnonzero(bad & keep):
            reason[i] = (
                f"{label} (z {z[i]:+.1f} {cmp} {sign * limit:+.1f})"
                if np.isfinite(z[i])
                else f"{label} (no value)"
            )
        removed[label] = int((bad & keep).sum())
        keep &= ~bad
    return ParticleVerdict(in_cls, keep, reason, removed, "", stats, limits)

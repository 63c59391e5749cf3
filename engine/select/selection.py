"""Explained automatic class selection, view families and the selection files.

:func:`auto_select` turns the per-class statistics (:mod:`engine.select.class_stats`) into a
decision per class with a reason a user can check ("resolution 28 Å > 15 Å", "straight edge
(carbon) (0.92 > 0.60)"). A class is kept when it looks like a particle (no carbon edge, no
ice ring/blob, no signal at the mask edge, centred, some contrast) and has enough particles
at a good enough resolution. A small class that is the only good class of its *view family*
(classes showing the same view, :func:`engine.select.class_stats.view_families`) is kept too, so a
rare view survives. :func:`view_coverage` says which views a selection keeps and warns
when it drops the last class of one.

:func:`write_selection` writes, atomically, into the job folder (or ``out_dir``):
``particles_selected.star`` (optics unchanged + the rows of ``run_data.star`` of the selected
classes), ``classes_selected.mrcs`` / ``classes_selected.star`` (the selected class averages
and their ``data_model_classes`` rows) and ``selection.json``.

Whole-class decisions cannot remove junk that sits inside good classes: an aggregate
aligns on one of its particles and lands in that particle's class, and so do some pieces of
ice and carbon. :func:`particle_outliers` removes such particles one by one, from the
per-particle statistics of the run (:mod:`engine.core.particle_residuals`): a particle whose
low-resolution residual against its posed class average is far above that of the other
selected particles (robust z-score), or whose signal is far below. Those particles go to
``particles_removed.star`` with the reason, so nothing is lost.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import InputError, ParameterError
from engine.fields import from_dict_strict, range_problems
from engine.io.jobfolder import Job, load_job
from engine.select import class_stats as _stats

__all__ = [
    "SelectionThresholds",
    "ViewCoverage",
    "ParticleVerdict",
    "auto_select",
    "view_coverage",
    "particle_outliers",
    "write_selection",
    "load_selection",
    "parse_class_list",
    "SELECTION_FILES",
]

SELECTION_FILES = (
    "particles_selected.star",
    "classes_selected.mrcs",
    "classes_selected.star",
    "selection.json",
    "particles_removed.star",
)

#: fewest particles in the selected classes for the robust statistics of the particle filter
MIN_FILTER_POPULATION = 30


def _t(
    default: Any,
    *,
    flag: str,
    label: str,
    help: str,
    unit: str = "",
    min: float | None = None,
    max: float | None = None,
) -> Any:
    return field(
        default=default,
        metadata=dict(flag=flag, label=label, help=help, unit=unit, min=min, max=max),
    )


@dataclass
class SelectionThresholds:
    """Thresholds of the automatic class selection (defaults keep good particles)."""

    min_particles: int = _t(
        30,
        flag="--min-particles",
        label="Minimum particles per class",
        help="Classes with fewer particles are dropped, unless they are the "
        "only good class of their view (see --rare-min-particles).",
        min=0,
    )
    max_res_A: float | None = _t(
        None,
        flag="--max-res-A",
        label="Maximum class resolution",
        unit="Å",
        help="Drop classes whose estimated resolution is "
        "worse (larger); default: --res-factor x the particle-weighted "
        "median resolution of the populated classes.",
        min=0.1,
    )
    res_factor: float = _t(
        1.5,
        flag="--res-factor",
        label="Resolution factor",
        help="Automatic --max-res-A: this factor times the median resolution.",
        min=1.0,
    )
    max_edge_signal: float = _t(
        0.15,
        flag="--max-edge-signal",
        label="Maximum edge signal",
        help="Share of the signal variance in the ring at the mask edge "
        "(0-1): centred particles 0.0-0.1; a particle cut by the "
        "mask, off-centre, or junk filling the box 0.15-0.7.",
        min=0.0,
        max=1.0,
    )
    max_centre_offset: float = _t(
        0.25,
        flag="--max-centre-offset",
        label="Maximum centre offset",
        unit="mask radius",
        help="Distance of the density's centre from the box centre, "
        "as a fraction of the mask radius.",
        min=0.0,
    )
    max_carbon_score: float = _t(
        0.60,
        flag="--max-carbon",
        label="Maximum straight-edge score",
        help="Structure-tensor coherence (0-1); a straight edge "
        "(carbon) gives about 0.9, particles below 0.4.",
        min=0.0,
        max=1.0,
    )
    max_ice_score: float = _t(
        0.985,
        flag="--max-ice",
        label="Maximum ring/blob score",
        help="Variance explained by the rotational average (0-1): a ring "
        "or blob without structure (ice) gives 0.99 or more, compact "
        "particles 0.8-0.97.",
        min=0.0,
        max=1.0,
    )
    min_contrast: float = _t(
        1.0,
        flag="--min-contrast",
        label="Minimum contrast",
        help="Low-passed over high-frequency standard deviation inside "
        "the mask; pure noise gives about 0.5.",
        min=0.0,
    )
    family_similarity: float = _t(
        0.85,
        flag="--family-similarity",
        label="View family similarity",
        help="Rotation/mirror-invariant correlation above which two classes show the same view.",
        min=0.0,
        max=1.0,
    )
    rare_min_particles: int = _t(
        10,
        flag="--rare-min-particles",
        label="Minimum particles of a rare view",
        help="A smaller class is kept if it is the only good class of "
        "its view family and has at least this many particles.",
        min=0,
    )
    rare_res_factor: float = _t(
        1.0,
        flag="--rare-res-factor",
        label="Resolution allowance of a rare view",
        help="A rare view may be this much worse than --max-res-A (1 = it must meet it too).",
        min=1.0,
    )
    max_residual_z: float = _t(
        4.0,
        flag="--max-residual-z",
        label="Maximum particle residual (z)",
        help="Drop a particle of a selected class when the low-resolution "
        "power its posed class average leaves unexplained is this "
        "many robust standard deviations above the median of the "
        "selected particles (overlapping neighbours or aggregates, "
        "ice, carbon); 0 keeps them all.",
        min=0.0,
    )
    min_signal_z: float = _t(
        3.0,
        flag="--min-signal-z",
        label="Minimum particle signal (z)",
        help="Drop a particle of a selected class when its signal (matched "
        "to its class average) is this many robust standard "
        "deviations below the median of the selected particles "
        "(empty or off-centre picks); 0 keeps them all.",
        min=0.0,
    )

    def validate(self) -> list[str]:
        """Human-readable problems (empty when valid): wrong type, NaN, out of range."""
        return [str(p) for p in range_problems(self)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SelectionThresholds:
        return from_dict_strict(cls, d, "threshold")


# ------------------------------------------------------------------------------------------
def _col(df: pd.DataFrame, name: str, default: Any = None) -> np.ndarray | None:
    for cand in (name, "_" + name, name.lstrip("_")):
        if cand in df.columns:
            return df[cand].to_numpy()
    return default


def _table_from_job(job: Job, th: SelectionThresholds) -> tuple[pd.DataFrame, float]:
    """Statistics of a job's classes (recomputed from the images) and the mask radius (Å)."""
    b = job.classes.shape[-1]
    d_in, d_out = _stats.default_diameters_A(b, job.apix_A, job.diameter_A, job.diameter_outer_A)
    counts = job.counts
    st = _stats.class_statistics(
        job.classes, job.apix_A, d_in, d_out, counts=counts, family_similarity=th.family_similarity
    )
    st.insert(1, "tdcParticleCount", counts)
    st["rlnClassDistribution"] = job.weights
    st["rlnEstimatedResolution"] = job.resolution_A
    st["tdcClassNumber"] = job.class_numbers
    return st, min(d_in / 2, b * job.apix_A / 2)


def auto_resolution_limit(resolution_A: np.ndarray, counts: np.ndarray, factor: float) -> float:
    """``factor`` x the particle-weighted median resolution of the populated classes (Å)."""
    res = np.asarray(resolution_A, dtype=np.float64)
    w = np.asarray(counts, dtype=np.float64)
    ok = np.isfinite(res) & (w > 0) & (res > 0)
    if not ok.any():
        return float("inf")
    order = np.argsort(res[ok])
    r, ww = res[ok][order], w[ok][order]
    med = r[np.searchsorted(np.cumsum(ww), 0.5 * ww.sum())]
    return float(factor * med)


def auto_select(
    job_or_model: Job | pd.DataFrame | str | os.PathLike[str],
    thresholds: SelectionThresholds | None = None,
    mask_radius_A: float | None = None,
) -> pd.DataFrame:
    """Decide, per class, keep or drop, and say why.

    Parameters
    ----------
    job_or_model : Job, job folder, or DataFrame
        A :class:`engine.io.jobfolder.Job` (or its folder): the statistics are computed from its
        class averages. Or a ``data_model_classes`` table that already holds the
        statistics columns of :func:`engine.select.class_stats.class_statistics`
        (``tdcParticleCount``,
        ``rlnEstimatedResolution``, ``tdcEdgeSignalFraction``, ...); its
        ``tdcViewFamily`` is used as is.
    thresholds : SelectionThresholds, optional
        Defaults if omitted.
    mask_radius_A : float, optional
        Inner mask radius (Å) for the centre-offset test of a DataFrame input (a Job knows
        it); without it that test is skipped.

    Returns
    -------
    DataFrame
        One row per class in class-number order: ``class_number``, ``count``,
        ``resolution_A``, ``family`` (view family, 1 = largest), ``particle_like`` (looks
        like a particle and could stand for a view), ``selected`` (bool), ``reason`` (why:
        ``"ok"``, ``"kept: only good class of view family 3"``, or the failed tests joined
        by ``"; "``), then the statistics columns (``tdc*``).
    """
    th = thresholds or SelectionThresholds()
    errs = th.validate()
    if errs:
        raise ParameterError("; ".join(errs))
    if isinstance(job_or_model, (str, os.PathLike)):
        job_or_model = load_job(job_or_model, read_data=False)
    if isinstance(job_or_model, Job):
        st, mask_radius_A = _table_from_job(job_or_model, th)
        recompute_families = True
    else:
        st = job_or_model.reset_index(drop=True).copy()
        st.columns = [c.lstrip("_") for c in st.columns]
        missing = [c for c in _stats.STAT_COLUMNS if c not in st.columns]
        if missing:
            raise InputError(
                "data_model_classes",
                f"no class statistics (missing {', '.join(missing)}); pass the job folder instead",
            )
        recompute_families = False
    k = len(st)
    number = _col(st, "tdcClassNumber", np.arange(1, k + 1)).astype(np.int64)
    counts = _col(st, "tdcParticleCount")
    if counts is None:
        counts = np.zeros(k)
    counts = np.asarray(counts, dtype=np.int64)
    res_raw = _col(st, "rlnEstimatedResolution", np.full(k, np.inf))
    res = pd.to_numeric(pd.Series(res_raw), errors="coerce").fillna(np.inf).to_numpy(float)
    max_res = (
        th.max_res_A
        if th.max_res_A is not None
        else auto_resolution_limit(res, counts, th.res_factor)
    )

    edge = st["tdcEdgeSignalFraction"].to_numpy(float)
    offset = st["tdcCentreOffsetAngst"].to_numpy(float)
    contrast = st["tdcContrast"].to_numpy(float)
    carbon = st["tdcStraightEdge"].to_numpy(float)
    ice = st["tdcRingScore"].to_numpy(float)
    max_off_A = th.max_centre_offset * mask_radius_A if mask_radius_A else np.inf

    image_fail: list[list[str]] = [[] for _ in range(k)]
    other_fail: list[list[str]] = [[] for _ in range(k)]
    for i in range(k):
        f = image_fail[i]
        if counts[i] <= 0:
            f.append("empty class")
            continue
        if contrast[i] < th.min_contrast:
            f.append(f"no structure, noise (contrast {contrast[i]:.2f} < {th.min_contrast:.2f})")
        if carbon[i] > th.max_carbon_score:
            f.append(f"straight edge (carbon) ({carbon[i]:.2f} > {th.max_carbon_score:.2f})")
        if ice[i] > th.max_ice_score:
            f.append(f"ring/blob without structure (ice) ({ice[i]:.3f} > {th.max_ice_score:.3f})")
        if edge[i] > th.max_edge_signal:
            f.append(f"signal at the mask edge ({edge[i]:.2f} > {th.max_edge_signal:.2f})")
        if offset[i] > max_off_A:
            f.append(f"off-centre ({offset[i]:.0f} Å > {max_off_A:.0f} Å)")
        if res[i] > max_res * (1 + 1e-6):  # resolutions sit on Fourier shells: ties pass
            other_fail[i].append("resolution " + _fmt_res_pair(res[i], max_res))
        if counts[i] < th.min_particles:
            other_fail[i].append(f"too few particles ({counts[i]} < {th.min_particles})")

    image_ok = np.array([not f for f in image_fail])
    if recompute_families and k > 1:
        job = job_or_model
        assert isinstance(job, Job)
        sim = _stats.class_similarity(job.classes, job.apix_A, job.diameter_A)
        family = _stats.view_families(sim, th.family_similarity, counts, member=image_ok)
    else:
        family = np.asarray(st["tdcViewFamily"].to_numpy(), dtype=np.int64)
    rare_res = max_res * th.rare_res_factor
    particle_like = image_ok & (counts >= th.rare_min_particles) & (res <= rare_res * (1 + 1e-6))
    full_ok = image_ok & np.array([not f for f in other_fail])
    good_families = set(family[full_ok].tolist())

    selected = full_ok.copy()
    reason = []
    for i in range(k):
        if full_ok[i]:
            reason.append("ok")
        elif particle_like[i] and family[i] not in good_families:
            selected[i] = True
            reason.append(
                f"kept: only good class of view family {family[i]} ("
                + "; ".join(other_fail[i])
                + ")"
            )
        else:
            reason.append("; ".join(image_fail[i] + other_fail[i]))

    out = pd.DataFrame(
        {
            "class_number": number,
            "count": counts,
            "resolution_A": res,
            "family": family,
            "particle_like": particle_like,
            "selected": selected,
            "reason": reason,
        }
    )
    for c in _stats.STAT_COLUMNS:
        if c != "tdcViewFamily":
            out[c] = st[c].to_numpy()
    out.attrs["max_res_A"] = max_res
    out.attrs["thresholds"] = th.to_dict()
    return out


def _fmt_res(r: float, digits: int | None = None) -> str:
    if not np.isfinite(r):
        return "∞ Å"
    d = digits if digits is not None else (0 if r >= 10 else 1)
    return f"{r:.{d}f} Å"


def _fmt_res_pair(res: float, limit: float) -> str:
    """``"28 Å > 15 Å"``; one decimal where whole numbers would read ``"24 Å > 24 Å"``."""
    a, b = _fmt_res(res), _fmt_res(limit)
    if a == b:
        a, b = _fmt_res(res, 1), _fmt_res(limit, 1)
    return f"{a} > {b}"


# ------------------------------------------------------------------------------------------
@dataclass
class ViewCoverage:
    """Which view families a selection keeps.

    Attributes
    ----------
    n_families : int
        View families with at least one particle-like class.
    kept : list[int]
        Those with at least one selected class.
    dropped : list[int]
        Those without (the view is lost).
    warnings : list[str]
        One line per dropped family, naming its classes and particles.
    """

    n_families: int
    kept: list[int]
    dropped: list[int]
    warnings: list[str]

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    def summary(self) -> str:
        return f"{self.n_kept} of {self.n_families} views kept"


def view_coverage(
    families: pd.DataFrame | Mapping[int, int], selected: Iterable[int] | np.ndarray | pd.Series
) -> ViewCoverage:
    """Report how many distinct views a selection keeps, and warn about lost ones.

    Parameters
    ----------
    families : DataFrame or mapping
        :func:`auto_select`'s table (``class_number``, ``family``, optional
        ``particle_like`` and ``count``; only families with a particle-like class count),
        a statistics table (``tdcClassNumber``, ``tdcViewFamily``, optional
        ``tdcParticleCount``; every family counts), or ``{class_number: family}``.
    selected : iterable of int or bool array
        Selected class numbers, or a boolean mask aligned with the table rows.
    """
    if isinstance(families, pd.DataFrame):
        tab = families.reset_index(drop=True)
        if "class_number" not in tab.columns:  # a class_statistics / data_model_classes table
            tab = tab.rename(columns=lambda c: str(c).lstrip("_"))
            tab = tab.rename(
                columns={
                    "tdcClassNumber": "class_number",
                    "tdcViewFamily": "family",
                    "tdcParticleCount": "count",
                }
            )
        numbers = tab["class_number"].to_numpy(dtype=np.int64)
        fam = tab["family"].to_numpy(dtype=np.int64)
        like = (
            tab["particle_like"].to_numpy(bool)
            if "particle_like" in tab.columns
            else np.ones(len(tab), bool)
        )
        cnt = (
            tab["count"].to_numpy(dtype=np.int64)
            if "count" in tab.columns
            else np.zeros(len(tab), np.int64)
        )
    else:
        numbers = np.array(list(families.keys()), dtype=np.int64)
        fam = np.array(list(families.values()), dtype=np.int64)
        like = np.ones(len(numbers), bool)
        cnt = np.zeros(len(numbers), np.int64)
    sel_arr = np.asarray(list(selected) if not isinstance(selected, np.ndarray) else selected)
    if sel_arr.dtype == bool:
        if sel_arr.size != numbers.size:
            raise ValueError("boolean selection must have one entry per class")
        sel = set(numbers[sel_arr].tolist())
    else:
        sel = {int(c) for c in sel_arr.tolist()}
    relevant = sorted(set(fam[like].tolist()))
    kept, dropped, warns = [], [], []
    for f in relevant:
        members = np.flatnonzero(fam == f)
        if any(int(numbers[m]) in sel for m in members):
            kept.append(f)
            continue
        dropped.append(f)
        names = ", ".join(str(int(numbers[m])) for m in members if like[m])
        n = int(cnt[members].sum())
        plural = "es" if "," in names else ""
        part = f", {n} particles" if n else ""
        warns.append(
            f"view family {f} (class{plural} {names}{part}) has no selected class: "
            "this view would be lost"
        )
    return ViewCoverage(len(relevant), kept, dropped, warns)


# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
def parse_class_list(text: str) -> list[int]:
    """``"1,4,7-9"`` -> ``[1, 4, 7, 8, 9]``."""
    out: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if lo > hi:
                    raise ParameterError(
                        f"class range {part} in {text!r} runs backwards: write {hi}-{lo}"
                    )
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ParameterError(
                f"cannot read class list {text!r}: expected numbers like 1,4,7-9"
            ) from None
    if not out:
        raise ParameterError(f"class list {text!r} names no class: expected e.g. 1,4,7-9")
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _check_selection_folder(out: Path, job: Job, overwrite: bool) -> None:
    """Create ``out``; refuse an earlier selection there (unless ``overwrite``) and any
    selection file that is the job's input."""
    from engine.io.claim import prepare_output_dir

    prepare_output_dir(out, "-o")
    present = [n for n in SELECTION_FILES if (out / n).exists()]
    if present and not overwrite:
        raise InputError(
            out,
            f"already holds a selection ({', '.join(present)}); --overwrite replaces it, "
            "or write this one elsewhere with -o DIR",
        )
    if job.input_path and Path(job.input_path).exists():
        for n in present:
            if os.path.samefile(out / n, job.input_path):
                raise InputError(
                    out / n,
                    "this is the job's input and would be overwritten by the selection; "
                    "write the selection elsewhere with -o DIR",
                )


def write_selection(
    job_dir: str | os.PathLike[str] | Job,
    class_ids: Iterable[int],
    out_dir: str | os.PathLike[str] | None = None,
    reasons: Mapping[int, str] | None = None,
    thresholds: SelectionThresholds | None = None,
    coverage: ViewCoverage | None = None,
    resolution_limit_A: float | None = None,
    particle_filter: SelectionThresholds | ParticleVerdict | None = None,
    overwrite: bool = True,
) -> dict[str, Path]:
    """Write the selection files of the classes ``class_ids`` (atomically).

    Parameters
    ----------
    job_dir : path or Job
        A finished job folder (``run_data.star`` must exist).
    class_ids : iterable of int
        Selected class numbers (1-based); order does not matter.
    out_dir : path, optional
        Where to write (default: the job folder).
    reasons : mapping, optional
        ``{class_number: reason}`` recorded in ``selection.json`` (e.g. from auto_select).
    thresholds : SelectionThresholds, optional
        Recorded in ``selection.json`` (``null`` for a manual selection).
    coverage : ViewCoverage, optional
        Recorded in ``selection.json``.
    resolution_limit_A : float, optional
        The resolution limit the automatic selection applied (``auto_select(...).attrs
        ["max_res_A"]``), recorded in ``selection.json``.
    particle_filter : SelectionThresholds or ParticleVerdict, optional
        Remove the outlier particles of the selected classes (:func:`particle_outliers`
        with these thresholds, or its verdict for ``class_ids`` already computed) and write
        them, with the reason, to ``particles_removed.star``. Without it every particle of
        the selected classes is kept.
    overwrite : bool
        Replace a selection already in ``out_dir`` (the default, for the interactive
        faces); ``False`` refuses (``twodclass select`` without ``--overwrite``). The job's
        input file is never overwritten.

    Returns
    -------
    dict
        ``{"particles": ..., "classes_mrcs": ..., "classes_star": ..., "json": ...}`` paths,
        and ``"removed"`` when the particle filter ran.

    Raises
    ------
    InputError
        Unfinished job (no particle file), unknown class numbers, an output folder that
        cannot be written, a selection already there (``overwrite=False``), or a file to
        write that is the job's input.
    """
    from engine.io.atomic import atomic_write_text
    from engine.io.mrc import write_stack
    from engine.io.star import write_star

    job = job_dir if isinstance(job_dir, Job) else load_job(job_dir, read_data=True)
    if job.data is None:
        raise InputError(
            job.files.get("data", job.job_dir),
            "no particle file: the job has not finished "
            f"(status: {job.status}); wait for it or resume it",
        )
    ids = sorted({int(c) for c in class_ids})
    known = job.class_numbers.tolist()
    unknown = [c for c in ids if c not in known]
    if unknown:
        raise InputError(
            job.job_dir,
            f"unknown class number(s) {', '.join(map(str, unknown))}"
            f" (the job has classes {min(known)}..{max(known)})",
        )
    if not ids:
        raise ParameterError("no classes selected")
    out = Path(out_dir) if out_dir is not None else job.job_dir
    _check_selection_folder(out, job, overwrite)
    paths = {
        "particles": out / "particles_selected.star",
        "classes_mrcs": out / "classes_selected.mrcs",
        "classes_star": out / "classes_selected.star",
        "json": out / "selection.json",
    }

    data = job.data
    in_cls = data["rlnClassNumber"].astype(int).isin(ids).to_numpy()
    verdict = None
    if isinstance(particle_filter, ParticleVerdict):
        verdict = particle_filter
        if len(verdict.keep) != len(data) or (verdict.in_classes != in_cls).any():
            raise ValueError("the particle filter's verdict is for other classes")
    elif particle_filter is not None:
        verdict = particle_outliers(data, ids, particle_filter)
    keep = in_cls if verdict is None else verdict.keep
    optics = {"optics": job.optics} if job.optics is not None else {}
    write_star(paths["particles"], {**optics, "particles": data.loc[keep].reset_index(drop=True)})
    removed_path = out / "particles_removed.star"
    if verdict is not None and not verdict.note:
        gone = verdict.in_classes & ~verdict.keep
        rows = data.loc[gone].reset_index(drop=True)
        rows["tdcRemovedReason"] = verdict.reason[gone].astype(str)
        write_star(removed_path, {**optics, "particles": rows})
        paths["removed"] = removed_path
    elif removed_path.exists():
        removed_path.unlink()  # from an earlier selection in this folder: no longer true

    rows = [known.index(c) for c in ids]
    write_stack(paths["classes_mrcs"], job.classes[rows], job.apix_A)
    model = job.model.iloc[rows].reset_index(drop=True).copy()
    model["rlnReferenceImage"] = [
        f"{i:06d}@{paths['classes_mrcs'].name}" for i in range(1, len(rows) + 1)
    ]
    if "tdcClassNumber" not in model.columns:
        model["tdcClassNumber"] = ids
    write_star(paths["classes_star"], {"model_classes": model})

    counts = dict(zip(known, job.counts.tolist(), strict=True))
    info = {
        "job_dir": str(job.job_dir.resolve()),
        "class_ids": ids,
        "n_classes": len(ids),
        "n_particles": int(keep.sum()),
        "n_particles_in_classes": int(in_cls.sum()),
        "n_particles_total": int(len(data)),
        "particle_filter": None if verdict is None else verdict.to_dict(),
        "counts": {str(c): int(counts[c]) for c in ids},
        "mode": "manual" if thresholds is None else "auto",
        "thresholds": None if thresholds is None else thresholds.to_dict(),
        "resolution_limit_A": (
            None
            if resolution_limit_A is None or not np.isfinite(resolution_limit_A)
            else float(resolution_limit_A)
        ),
        "reasons": {str(int(c)): str(r) for c, r in sorted((reasons or {}).items())},
        "coverage": None if coverage is None else dataclasses.asdict(coverage),
        "files": {k: v.name for k, v in paths.items() if k != "json"},
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(paths["json"], json.dumps(info, indent=2, default=_json_default) + "\n")
    return paths


def load_selection(job_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``selection.json`` of a job (or output) folder as a dict, or None if there is none.

    ``class_ids`` is a list of int; ``thresholds`` a dict or None (manual selection).
    """
    p = Path(job_dir) / "selection.json"
    if not p.exists():
        return None
    try:
        info = dict(json.loads(p.read_text()))
    except (OSError, ValueError) as exc:
        raise InputError(p, f"cannot read the saved selection ({exc})") from None
    info["class_ids"] = [int(c) for c in info.get("class_ids", [])]
    return info

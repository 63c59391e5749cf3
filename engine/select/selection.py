"""Explained automatic class selection and view families.

:func:`auto_select` turns the per-class statistics (:mod:`engine.select.class_stats`) into a
decision per class with a reason a user can check ("resolution 28 Å > 15 Å", "straight edge
(carbon) (0.92 > 0.60)"). A class is kept when it looks like a particle (no carbon edge, no
ice ring/blob, no signal at the mask edge, centred, some contrast) and has enough particles
at a good enough resolution. A small class that is the only good class of its *view family*
(classes showing the same view, :func:`engine.select.class_stats.view_families`) is kept too,
so a rare view survives. :func:`engine.select.coverage.view_coverage` says which views a
selection keeps and warns when it drops the last class of one.

The particle filter is in :mod:`engine.select.particle_filter`, the selection files in
:mod:`engine.select.files`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import InputError, ParameterError
from engine.fields import from_dict_strict, range_problems
from engine.io.jobfolder import Job, load_job
from engine.params import mask_diameters_A
from engine.select import class_stats as _stats
from engine.select.reference import CALIBRATION, REFERENCE_COLUMNS, SINGLE_VIEW_MIN

__all__ = ["SelectionThresholds", "auto_select"]


def _t(
    default: Any,
    *,
    flag: str,
    label: str,
    help: str,
    unit: str = "",
    min: float | None = None,
    max: float | None = None,
    unset: str = "auto",
) -> Any:
    return field(
        default=default,
        metadata=dict(flag=flag, label=label, help=help, unit=unit, min=min, max=max, unset=unset),
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

    min_ref_structure: float | None = _t(
        None,
        flag="--min-ref-structure",
        label="Minimum reference structure score",
        help="Drop classes whose structure score against the reference map "
        f"(twodclass select --reference) is lower; {SINGLE_VIEW_MIN:.2f} keeps single "
        f"views only (calibration: {CALIBRATION}).",
        min=-1.0,
        max=1.0,
        unset="off",
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
    d_in, d_out = mask_diameters_A(b, job.apix_A, job.diameter_A, job.diameter_outer_A)
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
    number = np.asarray(_col(st, "tdcClassNumber", np.arange(1, k + 1))).astype(np.int64)
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
    ref_structure = _ref_structure(job_or_model, st, th)

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
        if ref_structure is not None and not ref_structure[i] >= th.min_ref_structure:
            f.append(
                f"not a single view of the reference (structure {ref_structure[i]:.2f} < "
                f"{th.min_ref_structure:.2f})"
            )
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
    ref = job_or_model.model if isinstance(job_or_model, Job) else st
    for c in REFERENCE_COLUMNS:
        if c in ref.columns:
            out[c] = ref[c].to_numpy()
    out.attrs["max_res_A"] = max_res
    out.attrs["thresholds"] = th.to_dict()
    return out


def _ref_structure(
    job_or_model: Job | pd.DataFrame, st: pd.DataFrame, th: SelectionThresholds
) -> np.ndarray | None:
    """``tdcRefStructure`` per class when ``th.min_ref_structure`` asks for it (None if not)."""
    if th.min_ref_structure is None:
        return None
    ref = job_or_model.model if isinstance(job_or_model, Job) else st
    if "tdcRefStructure" not in ref.columns:
        raise ParameterError(
            f"{_flag('min_ref_structure')} needs reference scores: score the classes "
            "against a map first (twodclass select --reference MAP)"
        )
    return pd.to_numeric(ref["tdcRefStructure"], errors="coerce").to_numpy(float)


def _flag(name: str) -> str:
    """The command-line flag of a :class:`SelectionThresholds` field."""
    return next(
        f.metadata["flag"] for f in dataclasses.fields(SelectionThresholds) if f.name == name
    )


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

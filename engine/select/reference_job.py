"""Reference-based scoring of a job's classes: the one call the CLI, the terminal browser and
the Scipion select protocol share, and where the scores are kept.

:func:`score_job` reads the map and scores the job's class averages
(:func:`engine.select.reference.score_classes`); :func:`store_reference_scores` adds the
``_tdcRef*`` columns (:data:`engine.select.reference.REFERENCE_COLUMNS`) to the job's
``run_model.star`` (with ``_tdcReferenceMap`` and ``_tdcReferenceSymmetry`` in
``data_model_general``) and writes the best projection of every class, posed like the class,
to ``reference_projections.mrcs``; :func:`load_reference_scores` reads both back;
:func:`reference_summary` is the report (share of particles in single-view classes, views,
blurred classes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import InputError, ParameterError
from engine.io.jobfolder import Job, JobFiles, load_job
from engine.select.reference import (
    REFERENCE_COLUMNS,
    ReferenceScores,
    ReferenceSettings,
    score_classes,
)

__all__ = [
    "ReferenceResult",
    "score_images",
    "score_job",
    "attach_reference_scores",
    "store_reference_scores",
    "load_reference_scores",
    "reference_summary",
]


def _read_map(reference: str | os.PathLike[str], map_apix_A: float | None) -> tuple[Any, float]:
    from engine.io.mrc import read_volume

    p = Path(reference)
    if not p.is_file():
        raise InputError(p, "reference map not found")
    try:
        vol, apix = read_volume(p)
    except InputError:
        raise
    except Exception as exc:  # mrcfile's errors of every kind
        raise InputError(p, f"cannot read the reference map ({exc})") from None
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise InputError(p, f"the reference must be a cubic 3D map, got shape {vol.shape}")
    apix = float(map_apix_A) if map_apix_A else float(apix)
    if not apix > 0:
        raise InputError(p, "the map's header has no pixel size: give it (--map-apix)")
    return vol, apix


def score_images(
    images: np.ndarray,
    apix_A: float,
    reference: str | os.PathLike[str],
    symmetry: str = "C1",
    map_apix_A: float | None = None,
    diameter_A: float | None = None,
    weights: np.ndarray | None = None,
    settings: ReferenceSettings | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> ReferenceScores:
    """Score class averages ``(K, b, b)`` (any program's) against the map file
    ``reference``: :func:`engine.select.reference.score_classes` after reading the map
    (``map_apix_A`` overrides its header's voxel size)."""
    vol, apix = _read_map(reference, map_apix_A)
    if not apix_A or not apix_A > 0:
        raise ParameterError("the class averages have no pixel size")
    return score_classes(
        images, apix_A, vol, apix, symmetry, diameter_A, weights, settings, progress
    )


def score_job(
    job: Job | str | os.PathLike[str],
    reference: str | os.PathLike[str],
    symmetry: str = "C1",
    map_apix_A: float | None = None,
    settings: ReferenceSettings | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> ReferenceScores:
    """Score a job's class averages against the map ``reference`` (an MRC file).

    The run's mask diameter and the classes' pixel size come from the job; the map is
    resampled to them. ``map_apix_A`` overrides the map header's voxel size.
    """
    j = job if isinstance(job, Job) else load_job(job, read_data=False)
    if not j.apix_A > 0:
        raise InputError(j.job_dir, "the class averages have no pixel size")
    return score_images(
        j.classes, j.apix_A, reference, symmetry, map_apix_A, j.diameter_A, j.counts, settings,
        progress,
    )  # fmt: skip


def attach_reference_scores(
    job: Job, scores: ReferenceScores, reference: str | os.PathLike[str]
) -> None:
    """Put the scores into ``job.model`` (columns) and ``job.general`` (map, symmetry), in
    memory only: :func:`engine.select.auto_select` and :func:`engine.select.write_selection`
    then use them."""
    table = scores.table()
    if len(table) != len(job.model):
        raise ValueError("the scores are for another number of classes")
    for c in REFERENCE_COLUMNS:
        job.model[c] = table[c].to_numpy()
    job.general["tdcReferenceMap"] = str(Path(reference).resolve())
    job.general["tdcReferenceSymmetry"] = scores.symmetry


def store_reference_scores(
    job: Job, scores: ReferenceScores, reference: str | os.PathLike[str]
) -> dict[str, Path]:
    """Keep the scores with the job: :func:`attach_reference_scores`, the same columns in
    ``run_model.star`` (a twodclass job folder) and ``reference_projections.mrcs``.

    Returns the paths written (``{"model": ..., "projections": ...}``; a RELION job folder's
    model file is left alone).
    """
    from engine.io.mrc import write_stack
    from engine.io.star import read_star, write_star

    attach_reference_scores(job, scores, reference)
    table = scores.table()
    out: dict[str, Path] = {}
    files = JobFiles.of(job.job_dir)
    if files.prefix == "run" and files.model.exists():  # a twodclass job (not RELION's)
        blocks = read_star(files.model)
        model = blocks["model_classes"]
        for c in REFERENCE_COLUMNS:
            model[c] = table[c].to_numpy()
        gen = blocks.get("model_general")
        if gen is not None:
            gen["tdcReferenceMap"] = str(Path(reference).resolve())
            gen["tdcReferenceSymmetry"] = scores.symmetry
        write_star(files.model, blocks)
        out["model"] = files.model
    proj = files.reference_projections
    write_stack(proj, scores.projections, scores.apix_A)
    out["projections"] = proj
    return out


@dataclass
class ReferenceResult:
    """Scores kept with a job (:func:`load_reference_scores`).

    ``table``: ``tdcClassNumber`` and :data:`REFERENCE_COLUMNS`, one row per class;
    ``projections``: ``(K, b, b)`` the best projection of each class (None if the file is
    missing); ``reference`` and ``symmetry`` as recorded.
    """

    table: pd.DataFrame
    projections: np.ndarray | None
    reference: str | None
    symmetry: str | None


def load_reference_scores(job: Job | str | os.PathLike[str]) -> ReferenceResult | None:
    """The scores stored with a job, or None when it has none."""
    j = job if isinstance(job, Job) else load_job(job, read_data=False)
    if not all(c in j.model.columns for c in REFERENCE_COLUMNS):
        return None
    table = j.model[list(REFERENCE_COLUMNS)].copy()
    table.insert(0, "tdcClassNumber", j.class_numbers)
    proj = None
    p = JobFiles(j.job_dir).reference_projections
    if p.exists():
        from engine.io.mrc import open_stack

        arr, _ = open_stack(p)
        if arr.shape[0] == len(table):
            proj = np.array(arr, dtype=np.float32)
    ref = j.general.get("tdcReferenceMap")
    sym = j.general.get("tdcReferenceSymmetry")
    return ReferenceResult(
        table, proj, None if ref is None else str(ref), None if sym is None else str(sym)
    )


def reference_summary(
    table: pd.DataFrame, counts: np.ndarray, class_numbers: np.ndarray | None = None
) -> dict[str, Any]:
    """What the scores say about a set of classes (``table``: :data:`REFERENCE_COLUMNS`,
    ``counts``: particles per class, both in class order).

    Returns a dict: ``single_share`` (fraction of the particles in single-view classes),
    ``n_single`` / ``n_blurred`` / ``n_none`` (classes), ``n_views`` (distinct views among
    the single-view classes), ``views`` (per view: classes, particles, direction),
    ``text`` (the same as lines to print).
    """
    t = table.reset_index(drop=True)
    missing = [c for c in ("tdcRefVerdict", "tdcRefView") if c not in t.columns]
    if missing:
        raise ParameterError("no reference scores: score the classes against a map first")
    cnt = np.asarray(counts, dtype=np.int64)
    num = np.arange(1, len(t) + 1) if class_numbers is None else np.asarray(class_numbers)
    verdict = t["tdcRefVerdict"].astype(str).to_numpy()
    view = t["tdcRefView"].to_numpy(dtype=np.int64)
    total = max(int(cnt.sum()), 1)
    single = verdict == "single"
    views: list[dict[str, Any]] = []
    for v in sorted(set(view[single].tolist())):
        m = single & (view == v)
        lead = int(np.flatnonzero(m)[np.argmax(cnt[m])])
        views.append(
            dict(
                view=int(v),
                classes=[int(c) for c in num[m]],
                particles=int(cnt[m].sum()),
                rot=float(t["tdcRefRot"].iloc[lead]),
                tilt=float(t["tdcRefTilt"].iloc[lead]),
            )
        )
    share = float(cnt[single].sum()) / total
    out: dict[str, Any] = {
        "single_share": round(share, 4),
        "n_single": int(single.sum()),
        "n_blurred": int((verdict == "blurred").sum()),
        "n_none": int((verdict == "none").sum()),
        "particles_blurred": int(cnt[verdict == "blurred"].sum()),
        "particles_none": int(cnt[verdict == "none"].sum()),
        "n_views": len(views),
        "views": views,
    }
    lines = [
        f"reference score: {100 * share:.1f}% of the particles in {out['n_single']} single-view "
        f"classes, {len(views)} distinct views; {out['n_blurred']} classes blurred or mixed "
        f"({out['particles_blurred']} particles), {out['n_none']} without structure "
        f"({out['particles_none']} particles)"
    ]
    for v in views:
        cl = ",".join(str(c) for c in v["classes"])
        lines.append(
            f"  view {v['view']:>2} (rot {v['rot']:6.1f}°, tilt {v['tilt']:5.1f}°): "
            f"{len(v['classes'])} classes, {v['particles']} particles (classes {cl})"
        )
    out["text"] = "\n".join(lines)
    return out

"""The selection files of a job folder: writing them (atomically) and reading them back.

:func:`write_selection` writes, into the job folder (or ``out_dir``):
``particles_selected.star`` (optics unchanged + the rows of ``run_data.star`` of the selected
classes, less the particles the particle filter removed), ``particles_removed.star`` (those,
with their reason), ``classes_selected.mrcs`` / ``classes_selected.star`` (the selected class
averages and their ``data_model_classes`` rows) and ``selection.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError, ParameterError
from engine.io.jobfolder import Job, JobFiles, load_job
from engine.select.coverage import ViewCoverage
from engine.select.particle_filter import ParticleVerdict, particle_outliers
from engine.select.selection import SelectionThresholds

__all__ = ["SELECTION_FILES", "write_selection", "load_selection", "parse_class_list"]

#: names of the files a saved selection writes (all in one folder)
SELECTION_FILES = tuple(p.name for p in JobFiles(Path(".")).selection_files())


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
    present = [p.name for p in JobFiles(out).selection_files() if p.exists()]
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
    reference: Mapping[str, Any] | None = None,
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
    reference : mapping, optional
        The reference-based scoring (map, symmetry, summary), recorded in ``selection.json``
        with each selected class's ``_tdcRef*`` scores (taken from ``job.model``, which
        ``classes_selected.star`` copies too).

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
            JobFiles.of(job.job_dir).data,
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
    names = JobFiles(out)
    paths = {
        "particles": names.particles_selected,
        "classes_mrcs": names.classes_selected,
        "classes_star": names.classes_selected_star,
        "json": names.selection,
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
    removed_path = names.particles_removed
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
        "reference": _reference_info(reference, model, ids),
        "files": {k: v.name for k, v in paths.items() if k != "json"},
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(paths["json"], json.dumps(info, indent=2, default=_json_default) + "\n")
    return paths


def _reference_info(reference: Mapping[str, Any] | None, model: Any, ids: list[int]) -> Any:
    """``selection.json``'s ``reference``: the scoring and each selected class's scores."""
    from engine.select.reference import REFERENCE_COLUMNS

    if reference is None:
        return None
    cols = [c for c in REFERENCE_COLUMNS if c in model.columns]
    classes = {str(c): {k: model[k].iloc[i] for k in cols} for i, c in enumerate(ids)}
    return {**dict(reference), "classes": classes}


def load_selection(job_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``selection.json`` of a job (or output) folder as a dict, or None if there is none.

    ``class_ids`` is a list of int; ``thresholds`` a dict or None (manual selection).
    """
    p = JobFiles(Path(job_dir)).selection
    if not p.exists():
        return None
    try:
        info = dict(json.loads(p.read_text()))
    except (OSError, ValueError) as exc:
        raise InputError(p, f"cannot read the saved selection ({exc})") from None
    info["class_ids"] = [int(c) for c in info.get("class_ids", [])]
    return info

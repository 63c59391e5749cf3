"""Class selection for the browser: the automatic suggestion and writing the selection.

Both prefer the engine's shared implementation (``engine.selection``: ``auto_select`` and
``write_selection``, also used by ``twodclass select``); the fallbacks here follow the same
file contract so that the browser works before / without it.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tui.jobfiles import ClassInfo, JobData, read_run_data

__all__ = ["Suggestion", "auto_suggest", "save_selection", "SELECTION_FILES"]

SELECTION_FILES = ("particles_selected.star", "classes_selected.mrcs", "classes_selected.star",
                   "selection.json")


@dataclass(frozen=True)
class Suggestion:
    """The automatic decision for one class and why."""

    keep: bool
    reason: str


def auto_suggest(job: JobData) -> dict[int, Suggestion]:
    """Per class number: keep or not, with a one-line reason."""
    try:
        from engine import selection as eng_sel  # type: ignore[attr-defined]
    except ImportError:
        eng_sel = None
    if eng_sel is not None and hasattr(eng_sel, "auto_select"):
        try:
            return _from_engine(eng_sel, job)
        except Exception:  # noqa: BLE001 - fall back to the simple rule, never crash the UI
            pass
    return simple_rule(job.classes)


def _from_engine(eng_sel: Any, job: JobData) -> dict[int, Suggestion]:
    res = eng_sel.auto_select(job.job_dir)
    out: dict[int, Suggestion] = {}
    items = res.items() if isinstance(res, dict) else enumerate(res, start=1)
    for key, dec in items:
        number = int(getattr(dec, "class_number", getattr(dec, "number", key)))
        keep = bool(getattr(dec, "keep", getattr(dec, "selected", dec)))
        reason = str(getattr(dec, "reason", ""))
        out[number] = Suggestion(keep, reason)
    if not out:
        raise ValueError("empty suggestion")
    return out


def simple_rule(classes: list[ClassInfo], min_count: int = 20,
                min_fraction: float = 0.01, max_res_A: float = 20.0) -> dict[int, Suggestion]:
    """Keep classes with count >= max(20, 1% of particles) and resolution better than 20 Å."""
    total = sum(c.count for c in classes)
    need = max(min_count, int(np.ceil(min_fraction * total)))
    out = {}
    for c in classes:
        if c.count < need:
            out[c.number] = Suggestion(False, f"only {c.count} particles (< {need})")
        elif not c.resolution_A < max_res_A:
            out[c.number] = Suggestion(False, f"resolution {c.resolution_A:.1f} Å "
                                              f"(worse than {max_res_A:g} Å)")
        else:
            out[c.number] = Suggestion(True, f"{c.count} particles at {c.resolution_A:.1f} Å")
    return out


def save_selection(job_dir: Path, class_ids: list[int], out_dir: Path | None = None,
                   job: JobData | None = None) -> dict[str, Any]:
    """Write the selection files into ``out_dir`` (default: the job folder).

    Returns a small summary ``{"out_dir", "n_classes", "n_particles", "engine": bool}``.
    """
    out = Path(out_dir) if out_dir is not None else Path(job_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = sorted(int(c) for c in class_ids)
    try:
        from engine import selection as eng_sel  # type: ignore[attr-defined]
    except ImportError:
        eng_sel = None
    if eng_sel is not None and hasattr(eng_sel, "write_selection"):
        res = eng_sel.write_selection(Path(job_dir), ids, out)
        n = getattr(res, "n_particles", None)
        if n is None and isinstance(res, dict):
            n = res.get("n_particles")
        return {"out_dir": out, "n_classes": len(ids), "n_particles": n, "engine": True}
    n = _write_selection_fallback(Path(job_dir), ids, out, job)
    return {"out_dir": out, "n_classes": len(ids), "n_particles": n, "engine": False}


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _write_selection_fallback(job_dir: Path, ids: list[int], out: Path,
                              job: JobData | None) -> int:
    import mrcfile
    import starfile

    from tui.jobfiles import load_job

    job = job or load_job(job_dir)
    data = read_run_data(job_dir)
    parts = data["particles"]
    sel = parts[parts["rlnClassNumber"].isin(ids)]
    blocks = {k: v for k, v in data.items() if k != "particles"}
    blocks["particles"] = sel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _atomic(out / "particles_selected.star",
                lambda p: starfile.write(blocks, p, overwrite=True))
    by_number = {c.number: i for i, c in enumerate(job.classes)}
    stack = np.stack([job.images[by_number[c]] for c in ids]) if ids else \
        np.zeros((0,) + job.images.shape[1:], np.float32)

    def _write_mrcs(p: Path) -> None:
        with mrcfile.new(p, overwrite=True) as m:
            m.set_data(stack.astype(np.float32))
            m.voxel_size = job.apix_A

    _atomic(out / "classes_selected.mrcs", _write_mrcs)
    import pandas as pd

    info = {c.number: c for c in job.classes}
    rows = pd.DataFrame({
        "rlnReferenceImage": [f"{i + 1}@classes_selected.mrcs" for i in range(len(ids))],
        "rlnClassNumber": ids,
        "rlnClassDistribution": [info[c].distribution for c in ids],
        "rlnEstimatedResolution": [info[c].resolution_A for c in ids],
        "tdcParticleCount": [info[c].count for c in ids],
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _atomic(out / "classes_selected.star",
                lambda p: starfile.write({"model_classes": rows}, p, overwrite=True))
    summary = {"job_dir": str(job_dir), "classes": ids, "n_particles": int(len(sel)),
               "n_classes_total": len(job.classes), "written_by": "twodclass tui",
               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _atomic(out / "selection.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
    return int(len(sel))

"""What the TUI and the report read from a job folder beyond :mod:`tui.jobfiles`: each
class's resolution curve (SSNR per Fourier shell) and the run's convergence per iteration.

Curves come from ``run_model.star``'s ``data_model_class_ssnr`` table (twodclass) or from
RELION's ``data_model_class_N`` blocks (a RELION Class2D folder). Plain functions, for
thread workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ClassCurve", "read_class_curves", "convergence"]


@dataclass(frozen=True)
class ClassCurve:
    """A class's SSNR against spatial frequency."""

    number: int
    inv_A: np.ndarray
    """``(n,)`` spatial frequency of each shell (1/Å)."""
    ssnr: np.ndarray
    """``(n,)`` spectral signal-to-noise ratio of the class average."""


def read_class_curves(job_dir: Path) -> dict[int, ClassCurve]:
    """Class number -> its SSNR curve; empty when the job folder has none (older runs)."""
    from engine.io.jobfolder import JobFiles
    from engine.io.star import read_star

    path = JobFiles.of(job_dir).model
    if not path.exists():
        return {}
    blocks = read_star(path)
    out: dict[int, ClassCurve] = {}
    tab = blocks.get("model_class_ssnr")
    if tab is not None and hasattr(tab, "columns"):
        tab = tab.rename(columns=lambda c: str(c).lstrip("_"))
        if {"tdcClassNumber", "rlnResolution", "rlnSsnrMap"} <= set(tab.columns):
            for number, g in tab.groupby("tdcClassNumber"):
                g = g.sort_values("rlnResolution")
                out[int(number)] = ClassCurve(
                    int(number),
                    g["rlnResolution"].to_numpy(float),
                    g["rlnSsnrMap"].to_numpy(float),
                )
            return out
    for name, t in blocks.items():  # RELION: data_model_class_1, data_model_class_2, ...
        if not name.startswith("model_class_") or not hasattr(t, "columns"):
            continue
        suffix = name.rsplit("_", 1)[-1]
        cols = {str(c).lstrip("_") for c in t.columns}
        if suffix.isdigit() and {"rlnResolution", "rlnSsnrMap"} <= cols:
            t = t.rename(columns=lambda c: str(c).lstrip("_"))
            keep = t["rlnResolution"] > 0
            out[int(suffix)] = ClassCurve(
                int(suffix),
                t.loc[keep, "rlnResolution"].to_numpy(float),
                t.loc[keep, "rlnSsnrMap"].to_numpy(float),
            )
    return out


def convergence(iterations: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """``iteration``, ``changed`` (fraction of particles that changed class) and
    ``loglik`` (mean log-likelihood per particle) per iteration, from ``model_iterations``
    rows (missing values: NaN)."""

    def col(*names: str) -> np.ndarray:
        vals = []
        for row in iterations:
            v = next((row[n] for n in names if n in row), None)
            try:
                vals.append(float(v) if v is not None else np.nan)
            except (TypeError, ValueError):
                vals.append(np.nan)
        return np.asarray(vals, dtype=float)

    it = col("tdcIteration", "iteration")
    if np.isnan(it).all():
        it = np.arange(1, len(iterations) + 1, dtype=float)
    return {
        "iteration": it,
        "changed": col("tdcChangedFraction", "changed_fraction"),
        "loglik": col("tdcMeanLogLik", "mean_loglik"),
    }

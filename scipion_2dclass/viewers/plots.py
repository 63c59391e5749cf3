"""Matplotlib figures of a twodclass job (headless: plain ``Figure`` objects, no pyplot).

* :func:`montage_figure`: every class average with its particle count and resolution;
* :func:`distribution_figure`: particles per class (hard counts) and soft distribution;
* :func:`convergence_figure`: per-iteration curves of ``data_model_iterations``.

Each function takes plain arrays / a DataFrame and an optional figure to draw into, so the
same code serves the Scipion viewer (a pyplot figure) and the tests (Agg).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = [
    "convergence_figure",
    "distribution_figure",
    "job_figure",
    "job_figures",
    "montage_figure",
]

# data_model_iterations columns (starfile strips the leading underscore) and their titles
CONVERGENCE_CURVES = (
    ("tdcChangedFraction", "Particles changing class", "fraction"),
    ("tdcMeanLogLik", "Mean log-likelihood", "log L"),
    ("tdcTemperature", "Temperature (uncertainty)", "T"),
    ("tdcSeconds", "Time per iteration", "s"),
)


def montage_figure(
    averages: np.ndarray,
    counts: Sequence[int],
    resolutions: Sequence[float | None] | None = None,
    class_numbers: Sequence[int] | None = None,
    ncols: int | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Grid of class averages ``(K, b, b)``, titled ``#k  n=count  res Å``."""
    k = len(averages)
    class_numbers = list(class_numbers) if class_numbers is not None else list(range(1, k + 1))
    ncols = ncols or max(1, math.ceil(math.sqrt(k * 1.5)))
    nrows = max(1, math.ceil(k / ncols))
    fig = fig or Figure(figsize=(1.6 * ncols, 1.8 * nrows))
    for i in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.set_axis_off()
        if i >= k:
            continue
        img = np.asarray(averages[i], dtype=np.float32)
        lo, hi = np.percentile(img, (1, 99)) if img.size else (0, 1)
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        res = resolutions[i] if resolutions is not None else None
        res_s = f"  {res:.1f} Å" if res is not None and np.isfinite(res) and res > 0 else ""
        ax.set_title(f"#{class_numbers[i]}  n={int(counts[i])}{res_s}", fontsize=7)
    fig.suptitle(f"{k} classes, {int(np.sum(counts))} particles", fontsize=9)
    return fig


def distribution_figure(
    class_numbers: Sequence[int],
    counts: Sequence[int],
    distribution: Sequence[float] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Bar chart of particles per class (and the soft class distribution, if given)."""
    fig = fig or Figure(figsize=(7, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    x = np.asarray(class_numbers)
    ax.bar(x, np.asarray(counts), color="tab:blue", label="particles (hard assignment)")
    ax.set_xlabel("class")
    ax.set_ylabel("particles")
    if distribution is not None:
        ax2 = ax.twinx()
        ax2.plot(
            x, np.asarray(distribution), "o-", color="tab:orange", label="class distribution (soft)"
        )
        ax2.set_ylabel("fraction")
        ax2.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper right")
    ax.set_title("Class distribution")
    fig.tight_layout()
    return fig


def convergence_figure(iterations: pd.DataFrame, fig: Figure | None = None) -> Figure:
    """One panel per available curve of ``data_model_iterations``; full passes marked."""
    fig = fig or Figure(figsize=(8, 5.5))
    curves = [c for c in CONVERGENCE_CURVES if c[0] in iterations]
    if iterations.empty or not curves:
        ax = fig.add_subplot(1, 1, 1)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no iterations recorded yet", ha="center", va="center")
        return fig
    x = (
        iterations["tdcIteration"].to_numpy()
        if "tdcIteration" in iterations
        else np.arange(1, len(iterations) + 1)
    )
    full = (
        iterations["tdcKind"].astype(str).to_numpy() == "full"
        if "tdcKind" in iterations
        else np.zeros(len(x), bool)
    )
    ncols = 2 if len(curves) > 1 else 1
    nrows = math.ceil(len(curves) / ncols)
    for i, (col, title, unit) in enumerate(curves):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        y = iterations[col].to_numpy(dtype=float)
        ax.plot(x, y, "o-", ms=3, color="tab:blue")
        if full.any():
            ax.plot(x[full], y[full], "s", ms=5, color="tab:red", label="full pass")
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def job_figure(job_dir: str, name: str, fig: Figure | None = None) -> Figure:
    """One figure (``montage``, ``distribution`` or ``convergence``) of a job folder.

    Reads ``run_model.star`` and ``run_classes.mrcs`` only, so it works while the job runs.
    """
    from ..convert import read_job

    res = read_job(job_dir, need_data=False)
    cls = res.model
    counts = (
        cls["tdcParticleCount"].to_numpy() if "tdcParticleCount" in cls else np.zeros(len(cls), int)
    )
    numbers = res.class_numbers
    if name == "montage":
        resol = (
            cls["rlnEstimatedResolution"].to_numpy() if "rlnEstimatedResolution" in cls else None
        )
        return montage_figure(res.classes, counts, resol, numbers, fig=fig)
    if name == "distribution":
        dist = cls["rlnClassDistribution"].to_numpy() if "rlnClassDistribution" in cls else None
        return distribution_figure(numbers, counts, dist, fig=fig)
    if name == "convergence":
        iterations = res.iterations if res.iterations is not None else pd.DataFrame()
        return convergence_figure(iterations, fig=fig)
    raise ValueError(f"unknown figure {name!r} (montage, distribution, convergence)")


def job_figures(job_dir: str) -> dict[str, Figure]:
    """The three figures of a job folder."""
    return {n: job_figure(job_dir, n) for n in ("montage", "distribution", "convergence")}

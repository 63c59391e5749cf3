"""Writing the job folder: run_data.star, run_model.star, run_classes.mrcs, job.json, checkpoint/
(file names: :class:`engine.io.jobfolder.JobFiles`).

Formats are documented in the README ("Output files"). Every file is written atomically.
Classes are renumbered 1..K by decreasing hard particle count when results are written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine import __version__
from engine.core.model import Dataset, Geometry, State, class_counts
from engine.core.schedule import n_iterations
from engine.io.atomic import atomic_write, atomic_write_text
from engine.io.jobfolder import JobFiles
from engine.io.mrc import write_stack
from engine.io.particles import ParticleSet, particles_to_blocks
from engine.io.star import write_star
from engine.params import ClassifyParams

__all__ = [
    "class_order",
    "write_model",
    "write_data",
    "write_job_json",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_run_key",
    "class_table",
]

_NAMES = JobFiles(Path("."))  # file names (rlnReferenceImage points into the classes stack)


def class_order(state: State, K: int) -> np.ndarray:
    """Old class index of each new class number - 1 (decreasing hard count, then weight)."""
    counts = class_counts(state, K)
    return np.lexsort((-state.stats.weight, -counts))


def class_table(
    state: State, p: ClassifyParams, data: Dataset, geo: Geometry, order: np.ndarray
) -> pd.DataFrame:
    """One row per class (new numbering): RELION's model columns plus ours."""
    K = p.n_classes
    counts = class_counts(state, K)
    w = state.stats.weight
    frac = w / w.sum() if w.sum() > 0 else np.full(K, 1.0 / K)
    res = state.resolution_A if state.resolution_A is not None else np.full(K, 999.0)
    ok = state.cls >= 0
    mp = np.bincount(state.cls[ok], weights=state.maxprob[ok], minlength=K)
    mean_mp = np.where(counts > 0, mp / np.maximum(counts, 1), 0.0)
    ess = state.ess if state.ess is not None else np.zeros(K)
    a = data.apix_small_A
    df = pd.DataFrame(
        {
            "rlnReferenceImage": [f"{k + 1:06d}@{_NAMES.classes.name}" for k in range(K)],
            "rlnClassDistribution": frac[order],
            "rlnAccuracyRotations": np.full(K, 0.5 * geo.grid.psi_step_deg),
            "rlnAccuracyTranslationsAngst": np.full(K, 0.5 * a),
            "rlnEstimatedResolution": res[order],
            "tdcClassNumber": np.arange(1, K + 1),
            "tdcParticleCount": counts[order],
            "tdcEffectiveSampleSize": np.asarray(ess)[order],
            "tdcMeanMaxProb": mean_mp[order],
        }
    )
    return df


def _class_ssnr_table(state: State, b: int, apix_A: float, order: np.ndarray) -> pd.DataFrame:
    """Per class (new numbering) and Fourier shell 1 .. b/2: the SSNR of the class average
    (what its resolution is read from), long format for the class's resolution curve."""
    ssnr = np.asarray(state.ssnr)[order]
    K, n_sh = ssnr.shape
    shells = np.arange(1, n_sh)
    inv_A = shells / (b * apix_A)
    return pd.DataFrame(
        {
            "tdcClassNumber": np.repeat(np.arange(1, K + 1), n_sh - 1),
            "rlnSpectralIndex": np.tile(shells, K),
            "rlnResolution": np.tile(inv_A, K),
            "rlnAngstromResolution": np.tile(1.0 / inv_A, K),
            "rlnSsnrMap": ssnr[:, 1:].reshape(-1),
        }
    )


def _iterations_table(state: State) -> pd.DataFrame:
    h = state.history
    return pd.DataFrame(
        {
            "tdcIteration": [d["iteration"] for d in h],
            "tdcKind": [d["kind"] for d in h],
            "tdcTemperature": [d["temperature"] for d in h],
            "tdcChangedFraction": [d["changed_fraction"] for d in h],
            "tdcMeanLogLik": [d["mean_loglik"] for d in h],
            "tdcParticles": [d["n_particles"] for d in h],
            "tdcReseeded": [d.get("reseeded", 0) for d in h],
            "tdcBackToOrigin": [d.get("back_to_origin", 0) for d in h],
            "tdcSeconds": [d["seconds"] for d in h],
        }
    )


def write_model(
    files: JobFiles,
    state: State,
    p: ClassifyParams,
    data: Dataset,
    geo: Geometry,
    extra_columns: pd.DataFrame | None = None,
) -> np.ndarray:
    """Write run_classes.mrcs and run_model.star; return the class order used."""
    K = p.n_classes
    order = class_order(state, K)
    write_stack(files.classes, state.refs[order], data.apix_small_A)
    res = state.resolution_A if state.resolution_A is not None else np.full(K, 999.0)
    general = {
        "rlnReferenceDimensionality": 2,
        "rlnDataDimensionality": 2,
        "rlnOriginalImageSize": data.box,
        "rlnCurrentImageSize": data.b,
        "rlnPixelSize": data.apix_small_A,
        "rlnCurrentResolution": float(np.min(res)) if K else 999.0,
        "rlnNrClasses": K,
        "rlnTau2FudgeFactor": p.tau2_fudge,
        "rlnParticleDiameter": geo.diameter_A,
        "tdcIteration": state.iteration,
        "tdcIterations": n_iterations(p, data.n),
        "tdcInputPixelSize": data.apix_A,
        "tdcParticles": data.n,
        "tdcMaskOuterDiameter": geo.diameter_outer_A,
    }
    classes = class_table(state, p, data, geo, order)
    if extra_columns is not None:
        for col in extra_columns.columns:
            classes[col] = extra_columns[col].to_numpy()
    blocks = {
        "model_general": general,
        "model_classes": classes,
        "model_iterations": _iterations_table(state),
    }
    if state.ssnr is not None:
        blocks["model_class_ssnr"] = _class_ssnr_table(state, data.b, data.apix_small_A, order)
    write_star(files.model, blocks)
    return order


def write_data(
    files: JobFiles,
    state: State,
    pset: ParticleSet,
    data: Dataset,
    order: np.ndarray,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """run_data.star: every input column and the optics table, plus class and pose (and
    ``extra`` per-particle columns, e.g. engine.core.particle_residuals)."""
    new_number = np.empty_like(order)
    new_number[order] = np.arange(len(order))
    df = pset.particles.copy()
    a = data.apix_small_A
    visited = state.cls >= 0
    cls = np.where(visited, new_number[np.maximum(state.cls, 0)] + 1, 0)
    df["rlnClassNumber"] = cls.astype(np.int64)
    df["rlnAnglePsi"] = np.round(state.psi_deg.astype(np.float64), 4)
    df["rlnOriginXAngst"] = -state.shift_px[:, 0].astype(np.float64) * a
    df["rlnOriginYAngst"] = -state.shift_px[:, 1].astype(np.float64) * a
    df["rlnMaxValueProbDistribution"] = state.maxprob.astype(np.float64)
    df["rlnLogLikeliContribution"] = state.loglik.astype(np.float64)
    df["rlnNormCorrection"] = 1.0
    df["rlnNrOfSignificantSamples"] = state.nsig.astype(np.int64)
    for name, values in (extra or {}).items():
        df[name] = values
    write_star(files.data, particles_to_blocks(pset, df))


def write_job_json(files: JobFiles, info: dict[str, Any]) -> None:
    info = dict(info)
    info["twodclass_version"] = __version__
    info["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_text(files.job, json.dumps(info, indent=2, sort_keys=True) + "\n")


_STATE_ARRAYS = ("sigma2", "refs", "cls", "psi_deg", "shift_px", "maxprob", "loglik", "nsig")


def save_checkpoint(files: JobFiles, state: State, run_key: dict[str, Any] | None = None) -> None:
    """The state after an iteration, with the run key it belongs to
    (:func:`engine.io.fingerprint.run_key`, read back by :func:`checkpoint_run_key`)."""
    arrays = {k: getattr(state, k) for k in _STATE_ARRAYS}
    names = ("num", "den", "noise", "noise_w", "weight")
    for k, v in zip(names, state.stats.fields(), strict=True):
        arrays["stats_" + k] = v
    if state.resolution_A is not None:
        arrays["resolution_A"] = state.resolution_A
    if state.ssnr is not None:
        arrays["ssnr"] = state.ssnr
    if state.ess is not None:
        arrays["ess"] = state.ess
    meta = {"iteration": state.iteration, "history": state.history, "run_key": run_key}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_write(files.checkpoint, "wb") as fh:
        np.savez(fh, **arrays)


def checkpoint_run_key(files: JobFiles) -> dict[str, Any] | None:
    """The run key a checkpoint was saved with (None for checkpoints of older versions)."""
    # our own file handle: numpy leaves its own open when the archive is damaged
    with open(files.checkpoint, "rb") as fh, np.load(fh, allow_pickle=False) as z:
        return json.loads(str(z["meta"])).get("run_key")


def load_checkpoint(files: JobFiles) -> State:
    from engine.core.mstep import Stats

    with np.load(files.checkpoint, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        st = Stats(*(z["stats_" + k].copy() for k in ("num", "den", "noise", "noise_w", "weight")))
        state = State(
            stats=st,
            **{k: z[k].copy() for k in _STATE_ARRAYS},
            iteration=int(meta["iteration"]),
            history=list(meta["history"]),
        )
        if "resolution_A" in z:
            state.resolution_A = z["resolution_A"].copy()
        if "ssnr" in z:
            state.ssnr = z["ssnr"].copy()
        if "ess" in z:
            state.ess = z["ess"].copy()
    return state

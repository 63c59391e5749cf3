"""Hand-made finished job folders in the README's format, for tests of the faces.

``make_finished_job(tmp_path, n_classes=6, n_particles=120)`` writes::

    tmp_path/particles.star, tmp_path/particles.mrcs      (the input)
    tmp_path/job/run_data.star, run_model.star, run_classes.mrcs, job.json

Particles are noisy copies of the class images moved by known poses (RELION convention,
``engine.core.pose.class_to_particle``); classes are numbered by decreasing count. The truth is
kept in ``job.json`` under ``"_test_truth"`` only when ``with_truth=True``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile

from engine.core.pose import class_to_particle

__all__ = ["make_finished_job", "class_images", "write_input"]


def class_images(n_classes: int, box: int, seed: int = 0) -> np.ndarray:
    """``(K, box, box)`` float32 distinct blob patterns (one bright disc + a smaller offset one)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:box, 0:box].astype(np.float32) - box // 2
    out = np.zeros((n_classes, box, box), np.float32)
    for k in range(n_classes):
        r1 = box * (0.18 + 0.12 * rng.random())
        ang = 2 * np.pi * k / max(n_classes, 1)
        d = box * 0.22
        cx, cy = d * np.cos(ang), d * np.sin(ang)
        r2 = box * (0.06 + 0.06 * rng.random())
        img = (x**2 + y**2 < r1**2).astype(np.float32)
        img += 1.5 * (((x - cx) ** 2 + (y - cy) ** 2) < r2**2)
        out[k] = img
    return out


def _counts(n_classes: int, n_particles: int) -> np.ndarray:
    w = np.linspace(2.0, 0.5, n_classes)
    c = np.floor(w / w.sum() * n_particles).astype(int)
    c[0] += n_particles - c.sum()
    return np.sort(c)[::-1]


def _write_mrcs(path: Path, data: np.ndarray, apix: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(np.ascontiguousarray(data, dtype=np.float32))
            m.voxel_size = apix


def _optics(box: int, apix: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnAmplitudeContrast": [0.1],
            "rlnSphericalAberration": [2.7],
            "rlnVoltage": [300.0],
            "rlnImagePixelSize": [apix],
            "rlnImageSize": [box],
            "rlnImageDimensionality": [2],
        }
    )


def write_input(
    folder: Path, images: np.ndarray, apix: float, name: str = "particles"
) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """Write ``name.mrcs`` + ``name.star`` (optics + particles) and return the tables."""
    n, box, _ = images.shape
    rng = np.random.default_rng(1)
    _write_mrcs(folder / f"{name}.mrcs", images, apix)
    parts = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@{name}.mrcs" for i in range(n)],
            "rlnMicrographName": [f"mic_{i // 20:03d}.mrc" for i in range(n)],
            "rlnCoordinateX": rng.uniform(100, 3900, n).round(1),
            "rlnCoordinateY": rng.uniform(100, 3900, n).round(1),
            "rlnDefocusU": rng.uniform(9000, 21000, n).round(1),
            "rlnDefocusV": rng.uniform(9000, 21000, n).round(1),
            "rlnDefocusAngle": rng.uniform(0, 180, n).round(2),
            "rlnOpticsGroup": np.ones(n, int),
        }
    )
    optics = _optics(box, apix)
    star = folder / f"{name}.star"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        starfile.write({"optics": optics, "particles": parts}, star, overwrite=True)
    return star, optics, parts


def make_finished_job(
    tmp_path: Path,
    n_classes: int = 6,
    n_particles: int = 120,
    box: int = 32,
    apix: float = 2.0,
    seed: int = 0,
    status: str = "finished",
    n_iterations: int = 5,
    job_name: str = "job",
    with_truth: bool = False,
    n_outliers: int = 0,
) -> Path:
    """Write an input STAR/stack and a finished job folder; return the job folder.

    The per-particle statistics of the particle filter (``tdcResidualLowRes``,
    ``tdcSignalLowRes``) lie within 2.5 robust standard deviations of their median, except for
    ``n_outliers`` particles (rows 0, 7, 14, ...): the first half of those get a residual
    far above (an aggregate), the rest a signal far below (an empty pick), so
    :func:`engine.select.particle_outliers` removes exactly those of the selected classes.
    """
    tmp_path = Path(tmp_path)
    rng = np.random.default_rng(seed)
    refs = class_images(n_classes, box, seed)
    counts = _counts(n_classes, n_particles)
    cls = np.repeat(np.arange(1, n_classes + 1), counts)
    rng.shuffle(cls)
    psi = rng.uniform(0, 360, n_particles).round(2)
    ox = rng.uniform(-2, 2, n_particles).round(2)
    oy = rng.uniform(-2, 2, n_particles).round(2)
    imgs = np.stack(
        [class_to_particle(refs[c - 1], psi[i], ox[i], oy[i]) for i, c in enumerate(cls)]
    )
    imgs += rng.normal(0, 0.3, imgs.shape).astype(np.float32)
    star, optics, parts = write_input(tmp_path, imgs, apix)

    job = tmp_path / job_name
    job.mkdir(parents=True, exist_ok=True)
    data = parts.copy()
    data["rlnClassNumber"] = cls
    data["rlnAnglePsi"] = psi
    data["rlnOriginXAngst"] = (ox * apix).round(3)
    data["rlnOriginYAngst"] = (oy * apix).round(3)
    data["rlnMaxValueProbDistribution"] = rng.uniform(0.5, 1.0, n_particles).round(3)
    data["rlnLogLikeliContribution"] = rng.normal(1000, 10, n_particles).round(2)
    data["rlnNormCorrection"] = np.ones(n_particles)
    data["rlnNrOfSignificantSamples"] = np.ones(n_particles, int)
    data["tdcResidualLowRes"] = (0.8 + 0.1 * rng.uniform(-1.0, 1.0, n_particles)).round(4)
    data["tdcSignalLowRes"] = (8.0 + 1.0 * rng.uniform(-1.0, 1.0, n_particles)).round(4)
    outliers = np.arange(0, 7 * n_outliers, 7)[:n_outliers]
    n_res = (len(outliers) + 1) // 2
    data.loc[outliers[:n_res], "tdcResidualLowRes"] = 3.0
    data.loc[outliers[n_res:], "tdcSignalLowRes"] = 1.0
    # resolutions: most classes good, the last one poor
    res = np.round(np.linspace(6.0, 14.0, n_classes), 2)
    if n_classes > 2:
        res[-1] = 25.0
    classes = pd.DataFrame(
        {
            "rlnReferenceImage": [f"{k:06d}@run_classes.mrcs" for k in range(1, n_classes + 1)],
            "rlnClassDistribution": (counts / counts.sum()).round(5),
            "rlnEstimatedResolution": res,
            "rlnAccuracyRotations": np.full(n_classes, 5.0),
            "rlnAccuracyTranslationsAngst": np.full(n_classes, apix),
            "tdcClassNumber": np.arange(1, n_classes + 1),
            "tdcParticleCount": counts,
            "tdcEffectiveSampleSize": (counts * 0.9).round(1),
            "tdcMeanMaxProb": np.full(n_classes, 0.8),
        }
    )
    iters = pd.DataFrame(
        {
            "tdcIteration": np.arange(1, n_iterations + 1),
            "tdcKind": ["online"] * (n_iterations - 1) + ["full"],
            "tdcTemperature": np.linspace(2.0, 1.0, n_iterations).round(3),
            "tdcChangedFraction": np.geomspace(0.8, 0.02, n_iterations).round(4),
            "tdcMeanLogLik": np.linspace(900, 1000, n_iterations).round(2),
            "tdcSeconds": np.full(n_iterations, 0.5),
        }
    )
    general = {
        "rlnReferenceDimensionality": 2,
        "rlnNrClasses": n_classes,
        "rlnPixelSize": apix,
        "rlnOriginalImageSize": box,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        starfile.write({"optics": optics, "particles": data}, job / "run_data.star", overwrite=True)
        starfile.write(
            {"model_general": general, "model_classes": classes, "model_iterations": iters},
            job / "run_model.star",
            overwrite=True,
        )
    _write_mrcs(job / "run_classes.mrcs", refs, apix)
    meta = {
        "status": status,
        "input": str(star),
        "job_dir": str(job),
        "params": {"n_classes": n_classes},
        "iteration": n_iterations,
        "n_iterations": n_iterations,
        "n_particles": n_particles,
    }
    if with_truth:
        meta["_test_truth"] = {"classes": cls.tolist(), "outliers": outliers.tolist()}
    (job / "job.json").write_text(json.dumps(meta, indent=2))
    return job

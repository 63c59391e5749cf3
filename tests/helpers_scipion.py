"""Test data for the plugin's tests: simulated particle sets and hand-made job folders.

Nothing here is used by the protocols. :func:`write_particles_sqlite` writes a Scipion
``SetOfParticles`` (sqlite + MRC stack, with acquisition and per-particle CTF) that
``ProtImportParticles(importFrom=IMPORT_FROM_SCIPION)`` imports. :func:`write_fake_job` writes
a job folder in the README's format (as ``twodclass run`` would), from known classes and poses.
"""

from __future__ import annotations

import os

import mrcfile
import numpy as np
import pandas as pd
import starfile

from engine.io.jobfolder import JobFiles
from scipion_2dclass.constants import SCIPION_ID_COLUMN

__all__ = ["write_fake_job", "write_particles_sqlite", "write_stack"]


def write_stack(path: str, images: np.ndarray, apix: float) -> None:
    """``(n, b, b)`` float32 MRC stack with the pixel size in its header."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.ascontiguousarray(images, dtype=np.float32))
        m.header.ispg = 0
        m.voxel_size = apix


def write_particles_sqlite(
    sqlite_path: str,
    stack_path: str,
    n: int,
    apix: float,
    *,
    defocus_u: np.ndarray | None = None,
    defocus_v: np.ndarray | None = None,
    defocus_angle: np.ndarray | None = None,
    voltage: float = 300.0,
    cs: float = 2.7,
    amp_contrast: float = 0.1,
) -> None:
    """A Scipion ``SetOfParticles`` sqlite over ``stack_path`` (CTF if defoci are given)."""
    from pwem.objects import CTFModel, Particle, SetOfParticles

    if os.path.exists(sqlite_path):
        os.remove(sqlite_path)
    parts = SetOfParticles(filename=sqlite_path)
    parts.setSamplingRate(apix)
    acq = parts.getAcquisition()
    acq.setVoltage(voltage)
    acq.setSphericalAberration(cs)
    acq.setAmplitudeContrast(amp_contrast)
    acq.setMagnification(50000)
    has_ctf = defocus_u is not None
    parts.setHasCTF(has_ctf)
    for i in range(n):
        p = Particle()
        p.setLocation(i + 1, os.path.abspath(stack_path))
        p.setSamplingRate(apix)
        p.setAcquisition(acq)
        if has_ctf:
            ctf = CTFModel()
            ctf.setStandardDefocus(
                float(defocus_u[i]), float(defocus_v[i]), float(defocus_angle[i])
            )
            ctf.setPhaseShift(0.0)
            p.setCTF(ctf)
        p.setObjId(i + 1)
        parts.append(p)
    parts.write()
    parts.close()


def write_fake_job(
    job_dir: str,
    *,
    averages: np.ndarray,
    classes_apix: float,
    particle_apix: float,
    box: int,
    class_number: np.ndarray,
    psi_deg: np.ndarray,
    origin_x_A: np.ndarray,
    origin_y_A: np.ndarray,
    scipion_ids: np.ndarray,
    stack_path: str = "stack.mrcs",
    resolution_A: np.ndarray | None = None,
    n_iterations: int = 4,
    particle_stats: dict[str, np.ndarray] | None = None,
) -> None:
    """A job folder in the README's format with the given classes and per-particle results.

    ``particle_stats``: extra per-particle columns of ``run_data.star`` (e.g. the particle
    filter's ``tdcResidualLowRes``, ``tdcSignalLowRes``), one value per particle in the order
    of ``scipion_ids``."""
    os.makedirs(job_dir, exist_ok=True)
    k = len(averages)
    n = len(class_number)
    optics = pd.DataFrame(
        [
            {
                "rlnOpticsGroup": 1,
                "rlnOpticsGroupName": "opticsGroup1",
                "rlnVoltage": 300.0,
                "rlnSphericalAberration": 2.7,
                "rlnAmplitudeContrast": 0.1,
                "rlnImagePixelSize": particle_apix,
                "rlnImageSize": box,
                "rlnImageDimensionality": 2,
            }
        ]
    )
    # rows deliberately not in id order: readers must sort by the Scipion id
    order = np.argsort(-np.asarray(scipion_ids))
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "rlnImageName": [f"{int(scipion_ids[i])}@{stack_path}" for i in order],
            "rlnOpticsGroup": 1,
            SCIPION_ID_COLUMN: np.asarray(scipion_ids)[order].astype(int),
            "rlnClassNumber": np.asarray(class_number)[order].astype(int),
            "rlnAnglePsi": np.asarray(psi_deg, float)[order],
            "rlnOriginXAngst": np.asarray(origin_x_A, float)[order],
            "rlnOriginYAngst": np.asarray(origin_y_A, float)[order],
            "rlnMaxValueProbDistribution": rng.uniform(0.5, 1.0, n),
            "rlnLogLikeliContribution": rng.normal(-1000, 10, n),
            "rlnNormCorrection": 1.0,
            "rlnNrOfSignificantSamples": 1,
        }
    )
    for column, values in (particle_stats or {}).items():
        data[column] = np.asarray(values, float)[order]
    starfile.write({"optics": optics, "particles": data}, JobFiles(job_dir).data, overwrite=True)
    counts = np.array([(np.asarray(class_number) == j + 1).sum() for j in range(k)])
    res = (
        np.asarray(resolution_A, float) if resolution_A is not None else np.linspace(10.0, 20.0, k)
    )
    classes = pd.DataFrame(
        {
            "rlnReferenceImage": [f"{j + 1}@{JobFiles(job_dir).classes.name}" for j in range(k)],
            "rlnClassDistribution": counts / max(n, 1),
            "rlnEstimatedResolution": res,
            "rlnAccuracyRotations": 2.0,
            "rlnAccuracyTranslationsAngst": 1.0,
            "tdcClassNumber": np.arange(1, k + 1),
            "tdcParticleCount": counts,
            "tdcEffectiveSampleSize": counts * 0.8,
            "tdcMeanMaxProb": 0.9,
        }
    )
    iters = pd.DataFrame(
        {
            "tdcIteration": np.arange(1, n_iterations + 1),
            "tdcKind": ["online"] * (n_iterations - 1) + ["full"],
            "tdcTemperature": np.linspace(2.0, 1.0, n_iterations),
            "tdcChangedFraction": np.linspace(0.8, 0.05, n_iterations),
            "tdcMeanLogLik": np.linspace(-1100, -1000, n_iterations),
            "tdcSeconds": np.full(n_iterations, 1.5),
        }
    )
    general = pd.DataFrame(
        [{"rlnReferenceDimensionality": 2, "rlnNrClasses": k, "rlnPixelSize": classes_apix}]
    )
    starfile.write(
        {"model_general": general, "model_classes": classes, "model_iterations": iters},
        JobFiles(job_dir).model,
        overwrite=True,
    )
    write_stack(JobFiles(job_dir).classes, averages, classes_apix)

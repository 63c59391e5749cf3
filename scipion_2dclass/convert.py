"""Conversion between Scipion objects and the engine's files.

* :func:`write_particles_star` writes the engine's input STAR (RELION 3.1 layout: an optics
  table and a particles table) from a ``SetOfParticles``: image locations as ``index@stack``
  (links in the run's folder), CTF, existing 2D alignment and the Scipion id of every
  particle (column ``_tdcScipionId``) so that the results map back.
* :func:`read_job` reads an engine job folder with the engine's reader
  (:func:`engine.io.jobfolder.load_job`), its particle rows ordered by Scipion id.
* :func:`pose_to_matrix` / :func:`matrix_to_pose` convert RELION's in-plane pose
  (``rlnAnglePsi``, ``rlnOriginX/YAngst``) to and from a Scipion ``ALIGN_2D`` transform matrix
  exactly as scipion-em-relion does (reader: ``M = euler_matrix(0, 0, radians(psi), 'szyz')``,
  ``M[:3, 3] = origin_px``; writer: the inverse of that).
* :func:`align_with_matrix` applies such a matrix to a particle image, which moves the particle
  onto its class average (README "Pose convention": ``V(y) = P(R(-psi) y + c - origin)``).

How Scipion reads the matrix ``M = [A | t]`` of an ``ALIGN_2D`` particle: ``t`` is the
particle's offset in pixels (extract-coordinates re-centres at ``coordinate - t``, RELION's
``coordinate - origin``), and the particle moved by ``+t`` is turned onto its class by ``A``
(xmipp applies ``A`` forward: ``out(A x) = in(x)``, i.e. a rotation by ``+psi``). xmipp
applies the translation after the rotation while RELION shifts first; scipion-em-relion (and
this plugin) store RELION's origin unrotated, so the 2D matrix round-trips exactly through
scipion-em-relion and extract-coordinates.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import starfile
from pwem.convert import transformations as tfs

from engine.core.pose import sample_bilinear
from engine.errors import InputError
from engine.io.jobfolder import Job, JobFiles, load_job

from .constants import SCIPION_ID_COLUMN

__all__ = [
    "class_rows",
    "align_with_matrix",
    "matrix_to_pose",
    "pose_to_matrix",
    "read_job",
    "relion_location",
    "row_scipion_ids",
    "split_relion_location",
    "write_particles_star",
]

MRC_EXTENSIONS = (".mrcs", ".mrc", ".st", ".map")


# --------------------------------------------------------------------------- poses
def pose_to_matrix(psi_deg: float, origin_x_px: float, origin_y_px: float) -> np.ndarray:
    """Scipion ``ALIGN_2D`` matrix (4x4) of a RELION in-plane pose, as scipion-em-relion."""
    m = tfs.euler_matrix(0.0, 0.0, np.deg2rad(psi_deg), "szyz")
    m[:3, 3] = (origin_x_px, origin_y_px, 0.0)
    return m


def matrix_to_pose(matrix: np.ndarray) -> tuple[float, float, float]:
    """``(psi_deg, origin_x_px, origin_y_px)`` of an ``ALIGN_2D`` matrix (RELION's writer)."""
    m = np.asarray(matrix, dtype=np.float64)
    shifts = tfs.translation_from_matrix(m)
    angles = -np.rad2deg(tfs.euler_from_matrix(m, axes="szyz"))
    psi = -(angles[0] + angles[2])
    psi = (psi + 180.0) % 360.0 - 180.0
    return float(psi), float(shifts[0]), float(shifts[1])


def align_with_matrix(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a Scipion ``ALIGN_2D`` transform to a particle: the aligned image.

    With ``A = M[:2, :2]`` and ``t = M[:2, 3]`` (pixels) the particle is moved by ``+t`` (its
    centre to the box centre) and then turned by ``A`` (forward, as xmipp applies a matrix):
    ``aligned(y) = P(A^T y + c - t)`` with ``c = box // 2`` and ``y`` centred. For
    ``M = pose_to_matrix(psi, ox, oy)`` this is ``engine.core.pose.align_to_class``.
    ``image`` is ``(box, box)``; returns float32.
    """
    m = np.asarray(matrix, dtype=np.float64)
    box = image.shape[0]
    c = float(box // 2)
    yy, xx = np.mgrid[0:box, 0:box].astype(np.float64)
    x, y = xx - c, yy - c
    xs = m[0, 0] * x + m[1, 0] * y + c - m[0, 3]
    ys = m[0, 1] * x + m[1, 1] * y + c - m[1, 3]
    return sample_bilinear(np.asarray(image, dtype=np.float64), xs, ys).astype(np.float32)


# --------------------------------------------------------------------------- locations
def relion_location(index: int, path: str) -> str:
    """``index@path`` (1-based); a single image (Scipion index 0) is section 1."""
    return f"{max(int(index), 1)}@{path}"


def split_relion_location(loc: str) -> tuple[int, str]:
    """``'3@stack.mrcs'`` -> ``(3, 'stack.mrcs')``; no ``@`` -> ``(1, loc)``."""
    if "@" in loc:
        idx, path = loc.split("@", 1)
        return int(idx), path
    return 1, loc


def _link_stack(path: str, stacks_dir: str, links: dict[str, str]) -> str:
    """A link (``.mrcs``) in ``stacks_dir`` to an MRC stack; other formats are converted."""
    if path in links:
        return links[path]
    src = os.path.abspath(path)
    base, ext = os.path.splitext(os.path.basename(path))
    dst = os.path.join(os.path.abspath(stacks_dir), f"{len(links) + 1:04d}_{base}.mrcs")
    os.makedirs(stacks_dir, exist_ok=True)
    if ext.lower() in MRC_EXTENSIONS:
        if os.path.lexists(dst):
            os.remove(dst)
        os.symlink(os.path.realpath(src), dst)
    else:  # SPIDER, HDF, TIFF ...: convert once with Scipion's image handler
        from pwem.emlib.image import ImageHandler

        ImageHandler().convertStack(src, dst)
    links[path] = dst
    return dst


# --------------------------------------------------------------------------- writer
def _optics_key(acq, apix: float) -> tuple:
    return (
        round(acq.getVoltage() or 0.0, 4),
        round(acq.getSphericalAberration() or 0.0, 4),
        round(acq.getAmplitudeContrast() or 0.0, 4),
        round(apix, 6),
    )


def write_particles_star(
    particles, star_path: str, stacks_dir: str, write_ctf: bool | None = None
) -> dict:
    """Write ``particles`` (a Scipion ``SetOfParticles``) as the engine's input STAR.

    Rows follow the Scipion ids in increasing order. Returns a small summary
    (``n_particles``, ``box``, ``apix``, ``has_ctf``, ``has_alignment``, ``n_stacks``).
    """
    from pwem.constants import ALIGN_2D

    apix = float(particles.getSamplingRate() or 0.0)
    if apix <= 0:
        raise ValueError("the input particles have no pixel size (sampling rate)")
    box = int(particles.getXDim() or particles.getDimensions()[0])
    has_ctf = (
        bool(particles.hasCTF()) if write_ctf is None else bool(write_ctf and particles.hasCTF())
    )
    has_align = particles.getAlignment() == ALIGN_2D

    optics: dict[tuple, dict] = {}
    links: dict[str, str] = {}
    rows: list[dict] = []
    for part in particles.iterItems(orderBy="id", direction="ASC"):
        if not part.isEnabled():  # disabled items are excluded, as everywhere in Scipion
            continue
        acq = part.getAcquisition() or particles.getAcquisition()
        key = _optics_key(acq, apix)
        if key not in optics:
            optics[key] = {
                "rlnOpticsGroup": len(optics) + 1,
                "rlnOpticsGroupName": f"opticsGroup{len(optics) + 1}",
                "rlnVoltage": float(acq.getVoltage() or 300.0),
                "rlnSphericalAberration": float(acq.getSphericalAberration() or 0.0),
                "rlnAmplitudeContrast": float(acq.getAmplitudeContrast() or 0.1),
                "rlnImagePixelSize": apix,
                "rlnImageSize": box,
                "rlnImageDimensionality": 2,
            }
        index, fn = part.getLocation()
        row = {
            "rlnImageName": relion_location(index, _link_stack(fn, stacks_dir, links)),
            "rlnOpticsGroup": optics[key]["rlnOpticsGroup"],
        }
        if has_ctf:
            ctf = part.getCTF()
            row["rlnDefocusU"] = float(ctf.getDefocusU())
            row["rlnDefocusV"] = float(ctf.getDefocusV())
            row["rlnDefocusAngle"] = float(ctf.getDefocusAngle())
            row["rlnPhaseShift"] = float(ctf.getPhaseShift() or 0.0)
        if has_align:
            tr = part.getTransform()
            psi, ox, oy = matrix_to_pose(tr.getMatrix()) if tr is not None else (0.0, 0.0, 0.0)
            row["rlnAnglePsi"] = psi
            row["rlnOriginXAngst"] = ox * apix
            row["rlnOriginYAngst"] = oy * apix
        row[SCIPION_ID_COLUMN] = int(part.getObjId())
        rows.append(row)
    if not rows:
        raise ValueError("the input set of particles is empty")

    os.makedirs(os.path.dirname(os.path.abspath(star_path)), exist_ok=True)
    starfile.write(
        {"optics": pd.DataFrame(list(optics.values())), "particles": pd.DataFrame(rows)},
        star_path,
        overwrite=True,
    )
    missing = sorted(src for src, dst in links.items() if not os.path.exists(dst))
    return {
        "n_particles": len(rows),
        "box": box,
        "apix": apix,
        "has_ctf": has_ctf,
        "has_alignment": has_align,
        "n_stacks": len(links),
        "missing_stacks": missing,
    }


# --------------------------------------------------------------------------- reader
def read_job(job_dir: str, need_data: bool = True) -> Job:
    """An engine job folder, read by the engine (:func:`engine.io.jobfolder.load_job`), with
    the particle rows in increasing Scipion id (the order ``classifyItems`` visits them).

    ``need_data``: ``run_data.star`` must exist (a finished job) and is read."""
    job = load_job(os.path.abspath(job_dir), read_data=need_data)
    if need_data:
        if job.data is None:
            raise InputError(
                JobFiles.of(job_dir).data, "missing (the twodclass job did not finish)"
            )
        if SCIPION_ID_COLUMN in job.data:
            rows = job.data.sort_values(SCIPION_ID_COLUMN, kind="stable")
            job.data = rows.reset_index(drop=True)
    return job


def class_rows(job: Job) -> dict[int, dict]:
    """Class number -> its ``data_model_classes`` row (as a dict)."""
    return {
        int(k): row for k, row in zip(job.class_numbers, job.model.to_dict("records"), strict=True)
    }


def row_scipion_ids(particles: pd.DataFrame, enabled_ids) -> np.ndarray | None:
    """The Scipion id of every row of ``run_data.star`` (``particles``, as :func:`read_job`
    reads it), or None when the rows cannot be matched to the input particles.

    Rows carry their id in ``_tdcScipionId`` (written by :func:`write_particles_star`); without
    that column the rows follow the enabled input particles in increasing id, as the engine
    received them. ``enabled_ids``: those ids in increasing order, or a function returning
    them (only called when needed).
    """
    if SCIPION_ID_COLUMN in particles:
        return particles[SCIPION_ID_COLUMN].to_numpy(dtype=np.int64)
    ids = np.asarray(list(enabled_ids() if callable(enabled_ids) else enabled_ids), np.int64)
    return ids if len(ids) == len(particles) else None

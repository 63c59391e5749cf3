"""The job folder: its file names (:class:`JobFiles`, the one place they are spelled out) and
its reader (:func:`load_job` -> one :class:`Job`), for the engine, the terminal UI and Scipion.

A twodclass job folder holds ``job.json``, ``run_model.star``, ``run_classes.mrcs`` and,
once finished, ``run_data.star``; ``checkpoint/`` while it runs; the selection files once a
selection is saved. A RELION Class2D job folder (``run_itNNN_model.star``,
``run_itNNN_classes.mrcs``, ``run_itNNN_data.star``) is read too: its last iteration.
The writer is :mod:`engine.io.job_writer` (README "Output files").

Tables are pandas DataFrames named as starfile reads them (``rlnClassNumber``,
``tdcParticleCount``: the STAR labels without the leading underscore).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import InputError
from engine.io.mrc import open_stack
from engine.io.star import read_star

__all__ = ["Job", "JobFiles", "load_job", "read_job_info"]


@dataclass(frozen=True)
class JobFiles:
    """Paths of the files of a job folder (README "Output files").

    ``JobFiles(job_dir)`` names a twodclass job's files; :meth:`of` also finds the last
    iteration of a RELION Class2D folder (``prefix="run_itNNN"``) for reading.
    """

    dir: Path
    prefix: str = "run"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dir", Path(self.dir))

    @classmethod
    def of(cls, job_dir: str | os.PathLike[str]) -> JobFiles:
        """The files of a twodclass job folder, or of a RELION Class2D one's last iteration."""
        d = Path(job_dir)
        if (d / "run_model.star").exists():
            return cls(d)
        return cls(d, _relion_prefix(d) or "run")

    # results (written after every iteration / at the end)
    @property
    def model(self) -> Path:
        return self.dir / f"{self.prefix}_model.star"

    @property
    def classes(self) -> Path:
        return self.dir / f"{self.prefix}_classes.mrcs"

    @property
    def data(self) -> Path:
        return self.dir / f"{self.prefix}_data.star"

    @property
    def job(self) -> Path:
        return self.dir / "job.json"

    # working files of a run
    @property
    def lock(self) -> Path:
        """The claim of the folder by the command working in it (:mod:`engine.io.claim`)."""
        return self.dir / "job.lock"

    @property
    def checkpoint(self) -> Path:
        return self.dir / "checkpoint" / "state.npz"

    @property
    def cache(self) -> Path:
        """Folder of the on-disk cache of cropped particles (when they do not fit in RAM)."""
        return self.dir / "cache"

    # the selection (engine.select.files)
    @property
    def selection(self) -> Path:
        return self.dir / "selection.json"

    @property
    def particles_selected(self) -> Path:
        return self.dir / "particles_selected.star"

    @property
    def particles_removed(self) -> Path:
        return self.dir / "particles_removed.star"

    @property
    def classes_selected(self) -> Path:
        return self.dir / "classes_selected.mrcs"

    @property
    def classes_selected_star(self) -> Path:
        return self.dir / "classes_selected.star"

    @property
    def reference_projections(self) -> Path:
        """The best projection of a reference map for each class (``select --reference``)."""
        return self.dir / "reference_projections.mrcs"

    def selection_files(self) -> tuple[Path, ...]:
        return (
            self.particles_selected,
            self.classes_selected,
            self.classes_selected_star,
            self.selection,
            self.particles_removed,
        )


@dataclass
class Job:
    """A job folder as read from disk.

    Attributes
    ----------
    job_dir : Path
    classes : ``(K, b, b)`` float32
        Class averages, row ``k - 1`` is class ``k``.
    apix_A : float
        Pixel size of the class images (Å).
    model : DataFrame
        ``data_model_classes``, one row per class in class-number order.
    general : dict
        ``data_model_general`` (empty if absent).
    iterations : DataFrame or None
        ``data_model_iterations``.
    data : DataFrame or None
        Particles of ``run_data.star`` (None while the job runs or with ``read_data=False``).
    optics : DataFrame or None
        Optics table of ``run_data.star``, unchanged.
    params : dict
        Run parameters from ``job.json`` (names of :class:`engine.params.ClassifyParams`).
    input_path : str or None
        The input particle STAR file.
    status : str
        ``job.json`` status (``finished``, ``running``, ``interrupted`` when it says running
        but no process holds the folder, ...); ``finished`` for a RELION job
        with a data file, ``unknown`` without ``job.json``.
    info : dict
        ``job.json`` as read.
    """

    job_dir: Path
    classes: np.ndarray
    apix_A: float
    model: pd.DataFrame
    general: dict[str, Any] = field(default_factory=dict)
    iterations: pd.DataFrame | None = None
    data: pd.DataFrame | None = None
    optics: pd.DataFrame | None = None
    params: dict[str, Any] = field(default_factory=dict)
    input_path: str | None = None
    status: str = "unknown"
    info: dict[str, Any] = field(default_factory=dict)
    files: JobFiles | None = None

    @property
    def n_classes(self) -> int:
        return int(self.classes.shape[0])

    @property
    def class_numbers(self) -> np.ndarray:
        """``(K,)`` int class numbers (1..K)."""
        if "tdcClassNumber" in self.model.columns:
            return self.model["tdcClassNumber"].to_numpy(dtype=np.int64)
        return np.arange(1, self.n_classes + 1, dtype=np.int64)

    @property
    def counts(self) -> np.ndarray:
        """``(K,)`` hard particle counts (``tdcParticleCount``, else counted in the data)."""
        if "tdcParticleCount" in self.model.columns:
            return self.model["tdcParticleCount"].to_numpy(dtype=np.int64)
        if self.data is not None and "rlnClassNumber" in self.data.columns:
            vc = self.data["rlnClassNumber"].astype(int).value_counts()
            return np.array([int(vc.get(int(c), 0)) for c in self.class_numbers])
        w = self.weights
        n = int(self.info.get("n_particles", 0) or 0)
        return np.round(w * n).astype(np.int64)

    @property
    def weights(self) -> np.ndarray:
        """``(K,)`` soft weights (``rlnClassDistribution``), 0 if absent."""
        if "rlnClassDistribution" in self.model.columns:
            return self.model["rlnClassDistribution"].to_numpy(dtype=np.float64)
        return np.zeros(self.n_classes)

    @property
    def resolution_A(self) -> np.ndarray:
        """``(K,)`` ``rlnEstimatedResolution`` (Å), inf if absent or not a number."""
        if "rlnEstimatedResolution" in self.model.columns:
            r = pd.to_numeric(self.model["rlnEstimatedResolution"], errors="coerce")
            return r.fillna(np.inf).to_numpy(dtype=np.float64)
        return np.full(self.n_classes, np.inf)

    @property
    def diameter_A(self) -> float | None:
        """Inner mask diameter (Å) the run used (``rlnParticleDiameter``), None if unknown."""
        v = self.general.get("rlnParticleDiameter", self.params.get("diameter_A"))
        return None if v is None or not np.isfinite(float(v)) or float(v) <= 0 else float(v)

    @property
    def diameter_outer_A(self) -> float | None:
        """Outer mask diameter (Å) (``_tdcMaskOuterDiameter``), None if unknown."""
        v = self.general.get("tdcMaskOuterDiameter", self.params.get("diameter_outer_A"))
        return None if v is None or not np.isfinite(float(v)) or float(v) <= 0 else float(v)


def _clean(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """Column names as starfile reads ``_tdcX`` labels: ``tdcX`` (also from ``__tdcX``)."""
    if df is None:
        return None
    df = df.reset_index(drop=True)
    df.columns = [str(c).lstrip("_") for c in df.columns]
    return df


def _relion_prefix(job_dir: Path) -> str | None:
    best = None
    for p in job_dir.glob("run_it*_model.star"):
        m = re.fullmatch(r"run_it(\d+)_model\.star", p.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), f"run_it{m.group(1)}")
    return None if best is None else best[1]


def read_job_info(job_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``job.json`` of a job folder (parameters, input, status, counters); ``{}`` when the
    folder has none (a RELION job, or a run that has not started).

    Raises
    ------
    InputError
        ``job.json`` exists but cannot be read or is not a JSON object.
    """
    path = JobFiles(Path(job_dir)).job
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(path, f"damaged job.json ({type(exc).__name__}: {exc})") from None
    if not isinstance(info, dict):
        raise InputError(path, "damaged job.json (not a JSON object)")
    return info


def load_job(job_dir: str | os.PathLike[str], read_data: bool = True) -> Job:
    """Read a job folder.

    Parameters
    ----------
    job_dir : path
        A twodclass job folder (or a RELION Class2D folder).
    read_data : bool
        Read ``run_data.star`` too (all particles; skip it to show classes quickly). It is
        read anyway when the class table has no ``tdcParticleCount`` (a RELION job).

    Raises
    ------
    InputError
        Missing folder, no ``run_model.star`` / ``run_classes.mrcs`` yet, unreadable files,
        or a class table and image stack that disagree.
    """
    d = Path(job_dir)
    if not d.is_dir():
        raise InputError(d, "job folder not found" if not d.exists() else "not a folder")
    files = JobFiles.of(d)
    info = read_job_info(d)
    if not files.model.exists():
        st = info.get("status")
        hint = (
            f" (job status: {st}; no iteration finished yet)"
            if st
            else "; is this a twodclass job folder?"
        )
        raise InputError(d, f"no {files.model.name}{hint}")
    blocks = read_star(files.model)
    model = _clean(blocks.get("model_classes"))
    if model is None:
        raise InputError(files.model, "no data_model_classes block")
    general_df = _clean(blocks.get("model_general"))
    general = {} if general_df is None else {c: general_df[c].iloc[0] for c in general_df.columns}
    if not files.classes.exists():
        raise InputError(files.classes, "class averages not found")
    arr, apix = open_stack(files.classes)
    classes = np.array(arr, dtype=np.float32)
    if classes.shape[0] != len(model):
        raise InputError(
            files.classes,
            f"{classes.shape[0]} images but {len(model)} classes in {files.model.name}",
        )
    if not apix:
        apix = float(general.get("rlnPixelSize", 0.0) or 0.0)
    data = optics = None
    need_counts = "tdcParticleCount" not in model.columns  # e.g. RELION: count the particles
    if (read_data or need_counts) and files.data.exists():
        dblocks = read_star(files.data)
        data = _clean(dblocks.get("particles"))
        optics = dblocks.get("optics")
        if data is None:
            raise InputError(files.data, "no data_particles block")
    from engine.io.claim import job_status

    status = job_status(d, info.get("status", "unknown"))  # "running", nobody on it: interrupted
    if not files.job.exists() and files.data.exists():
        status = "finished"  # a RELION job: the data file is written per iteration
    params = info.get("params") or {}
    input_path = info.get("input")
    return Job(
        job_dir=d,
        classes=classes,
        apix_A=float(apix),
        model=model,
        general=general,
        iterations=_clean(blocks.get("model_iterations")),
        data=data,
        optics=optics,
        params=dict(params),
        input_path=None if input_path is None else str(input_path),
        status=status,
        info=info,
        files=files,
    )

"""Reading a twodclass job folder (the README's output-file contract) for the terminal UI.

No widgets here: plain functions and small dataclasses, called from thread workers.
Files: ``job.json``, ``run_model.star`` (classes, iterations), ``run_classes.mrcs``,
``run_data.star`` (particles with class and pose), ``selection.json`` (a saved selection).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ClassInfo",
    "JobData",
    "load_job",
    "read_job_json",
    "read_run_data",
    "read_selection",
    "read_selection_filter",
    "particle_info",
    "resolve_image_name",
    "member_samples",
]


@dataclass
class ClassInfo:
    """One class of a job: its number (1-based), hard particle count and resolution (Å)."""

    number: int
    count: int
    resolution_A: float
    distribution: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobData:
    """What the browser and the run screen show of a job folder."""

    job_dir: Path
    job: dict[str, Any]
    classes: list[ClassInfo]
    images: np.ndarray  # (K, b, b) float32 class averages
    iterations: list[dict[str, Any]]
    apix_A: float
    engine_job: Any = None  # engine.io.jobfolder.Job, for engine.select.selection

    @property
    def n_particles(self) -> int:
        return int(sum(c.count for c in self.classes))


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def load_job(job_dir: Path) -> JobData:
    """Read everything the class grid needs (not ``run_data.star``: it can be large).

    Uses :func:`engine.io.jobfolder.load_job` (twodclass and RELION Class2D folders).
    """
    from engine.io.jobfolder import load_job as engine_load_job

    job = engine_load_job(Path(job_dir), read_data=False)
    model = job.model
    numbers = job.class_numbers
    counts = job.counts
    res = job.resolution_A
    dist = job.weights
    classes = []
    for i in range(job.n_classes):
        stats = {c: _plain(model[c].iloc[i]) for c in model.columns}
        classes.append(
            ClassInfo(int(numbers[i]), int(counts[i]), float(res[i]), float(dist[i]), stats)
        )
    iterations = (
        []
        if job.iterations is None
        else [{c: _plain(v) for c, v in row.items()} for row in job.iterations.to_dict("records")]
    )
    return JobData(
        Path(job_dir), dict(job.info), classes, job.classes, iterations, float(job.apix_A), job
    )


def read_run_data(job_dir: Path) -> dict[str, Any]:
    """``run_data.star`` as ``{"optics": DataFrame, "particles": DataFrame}``."""
    from engine.io.jobfolder import JobFiles
    from engine.io.star import read_star

    return read_star(JobFiles.of(job_dir).data)


def read_selection(path: Path) -> list[int] | None:
    """Class numbers of the selection saved in a folder (``selection.json``), or None when
    there is none or it cannot be read (the browser then starts from no selection)."""
    info = _saved(path)
    return None if info is None else info["class_ids"]


def read_selection_filter(path: Path) -> bool | None:
    """Whether the selection saved in a folder was written with the particle filter on
    (``"particle_filter": null`` or absent: off); None when there is no readable selection."""
    info = _saved(path)
    return None if info is None else info.get("particle_filter") is not None


def _saved(path: Path) -> dict[str, Any] | None:
    from engine.errors import InputError
    from engine.select import load_selection

    try:
        return load_selection(path)
    except InputError:
        return None


def particle_info(path: Path) -> tuple[int, int, float]:
    """``(n_particles, box_px, apix_A)`` of an input particle file."""
    from engine.io.particles import read_particles

    ps = read_particles(Path(path))
    return len(ps), int(ps.box), float(ps.apix_A)


def read_job_json(job_dir: Path) -> dict[str, Any]:
    """``job.json`` of a folder for the forms and screens: ``{}`` when there is none or it
    cannot be read (the engine reports that itself when the job is opened or resumed)."""
    from engine.errors import InputError
    from engine.io.jobfolder import read_job_info

    try:
        return read_job_info(job_dir)
    except InputError:
        return {}


def resolve_image_name(name: str, bases: list[Path]) -> tuple[Path, int] | None:
    """``"12@stack.mrcs"`` -> ``(existing path, 0-based index)``, trying each base folder."""
    idx_s, _, fname = name.partition("@")
    if not fname:
        fname, idx_s = idx_s, "1"
    p = Path(fname)
    cands = [p] if p.is_absolute() else [b / p for b in bases]
    for c in cands:
        if c.exists():
            return c, int(idx_s) - 1
    return None


def member_samples(
    job_dir: Path,
    run_data: dict[str, Any],
    class_number: int,
    n: int = 6,
    job: dict[str, Any] | None = None,
) -> list[np.ndarray]:
    """Up to ``n`` member particles of a class, aligned onto the class (best-first order).

    Particles are sorted by ``rlnMaxValueProbDistribution`` when present; images that cannot
    be found are skipped.
    """
    import mrcfile

    from engine.core.pose import align_to_class

    parts = run_data.get("particles")
    if parts is None or "rlnClassNumber" not in parts.columns:
        return []
    members = parts[parts["rlnClassNumber"] == class_number]
    if "rlnMaxValueProbDistribution" in members.columns:
        members = members.sort_values("rlnMaxValueProbDistribution", ascending=False)
    members = members.head(n)
    optics = run_data.get("optics")
    apix_by_group: dict[int, float] = {}
    if optics is not None and "rlnImagePixelSize" in optics.columns:
        for _, row in optics.iterrows():
            apix_by_group[int(row.get("rlnOpticsGroup", 1))] = float(row["rlnImagePixelSize"])
    bases = [Path(job_dir), Path.cwd()]
    recorded = (job or read_job_json(Path(job_dir))).get("input")
    inp = Path(recorded) if isinstance(recorded, str) and recorded else None
    if inp is not None:
        bases.insert(0, inp.parent if inp.is_absolute() else (Path.cwd() / inp).parent)
    out = []
    open_stacks: dict[Path, Any] = {}
    try:
        for _, row in members.iterrows():
            loc = resolve_image_name(str(row["rlnImageName"]), bases)
            if loc is None:
                continue
            path, idx = loc
            if path not in open_stacks:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    open_stacks[path] = mrcfile.mmap(path, permissive=True)
            data = open_stacks[path].data
            img = np.asarray(data[idx] if data.ndim == 3 else data, dtype=np.float32)
            apix = apix_by_group.get(int(row.get("rlnOpticsGroup", 1)), 1.0)
            ox = float(row.get("rlnOriginXAngst", 0.0)) / apix
            oy = float(row.get("rlnOriginYAngst", 0.0)) / apix
            out.append(align_to_class(img, float(row.get("rlnAnglePsi", 0.0)), ox, oy))
    finally:
        for m in open_stacks.values():
            m.close()
    return out

"""Reading a twodclass job folder (the README's output-file contract) for the terminal UI.

No widgets here: plain functions and small dataclasses, called from thread workers.
Files: ``job.json``, ``run_model.star`` (classes, iterations), ``run_classes.mrcs``,
``run_data.star`` (particles with class and pose), ``selection.json`` (a saved selection).
"""

from __future__ import annotations

import json
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
    "read_star",
    "read_selection",
    "read_selection_filter",
    "read_particle_columns",
    "input_path_of",
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


def read_star(path: Path) -> dict[str, Any]:
    """All data blocks of a STAR file as ``{name: DataFrame or dict}``."""
    import starfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(starfile.read(path, always_dict=True))


def read_job_json(job_dir: Path) -> dict[str, Any]:
    p = Path(job_dir) / "job.json"
    if not p.exists():
        return {}
    try:
        return dict(json.loads(p.read_text()))
    except (OSError, ValueError):
        return {}


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
    from engine.io.jobfolder import job_files

    return read_star(job_files(Path(job_dir))["data"])


def read_particle_columns(path: Path, columns: tuple[str, ...]) -> Any:
    """Only ``columns`` of the particles table of a STAR file, as a DataFrame (or None).

    A fraction of the cost of reading the whole table (no strings are made), and the
    parser holds the GIL only briefly, so a thread reading 100,000 particles does not delay
    the UI. The numbers are parsed as :func:`engine.io.star.read_star` parses them. The
    table is the loop block with ``rlnClassNumber`` (``data_particles`` preferred); missing
    columns are left out. Returns None when the file is unusual (quoted values, no such
    block): read it with the engine then.
    """
    import pandas as pd

    blocks: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    state = ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for i, raw in enumerate(fh):
            line = raw.strip()
            if line.startswith("data_"):
                cur = {"name": line[5:], "cols": [], "start": None, "rows": 0, "quoted": False}
                blocks.append(cur)
                state = "block"
            elif cur is None or not line or line.startswith("#"):
                continue
            elif line.startswith("loop_"):
                state = "header"
            elif state == "header" and line.startswith("_"):
                cur["cols"].append(line.split()[0][1:])
            elif state in ("header", "rows") and cur["cols"]:
                if state == "header":
                    cur["start"] = i
                    state = "rows"
                cur["rows"] += 1
                cur["quoted"] = cur["quoted"] or "'" in line or '"' in line
    cands = [b for b in blocks if "rlnClassNumber" in b["cols"] and b["start"] is not None]
    cands.sort(key=lambda b: b["name"] != "particles")
    if not cands or cands[0]["quoted"]:
        return None
    b = cands[0]
    use = [c for c in columns if c in b["cols"]]
    df = pd.read_csv(
        path,
        delimiter=r"\s+",
        header=None,
        comment="#",
        engine="c",
        keep_default_na=False,
        na_values=["nan", "NaN", "<NA>"],
        skiprows=b["start"],
        nrows=b["rows"],
        usecols=[b["cols"].index(c) for c in use],
    )
    if len(df.columns) != len(use) or len(df) != b["rows"]:
        return None
    df.columns = [b["cols"][j] for j in df.columns]
    return df[use]


def _selection_json(path: Path) -> Any:
    """The parsed ``selection.json`` (a file or the folder holding it), or None."""
    p = Path(path)
    if p.is_dir():
        p = p / "selection.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def read_selection(path: Path) -> list[int] | None:
    """Class numbers of a saved ``selection.json`` (a file or the folder holding it)."""
    d = _selection_json(path)
    if not isinstance(d, dict):
        return None
    for key in ("classes", "class_ids", "selected_classes"):
        if key in d:
            return [int(c) for c in d[key]]
    return None


def read_selection_filter(path: Path) -> bool | None:
    """Whether a saved ``selection.json`` was written with the particle filter on.

    ``"particle_filter": null`` (off) or no such key (written before the filter existed, so
    every particle of the selected classes was kept) -> False; a record -> True; no readable
    file -> None.
    """
    d = _selection_json(path)
    if d is None:
        return None
    return isinstance(d, dict) and d.get("particle_filter") is not None


def input_path_of(job: dict[str, Any]) -> Path | None:
    """The input particle file recorded in ``job.json`` (key names tolerated loosely)."""
    for key in ("input", "particles", "input_star", "input_path"):
        v = job.get(key)
        if isinstance(v, str) and v:
            return Path(v)
    return None


def particle_info(path: Path) -> tuple[int, int, float]:
    """``(n_particles, box_px, apix_A)`` of an input particle file, read cheaply."""
    try:
        from engine.io.particles import read_particles  # type: ignore[import-not-found]
    except ImportError:
        read_particles = None
    if read_particles is not None:
        ps = read_particles(Path(path))
        return len(ps), int(ps.box), float(ps.apix_A)
    return _particle_info_fallback(Path(path))


def _particle_info_fallback(path: Path) -> tuple[int, int, float]:
    import mrcfile

    from engine.errors import InputError

    blocks = read_star(path)
    parts = blocks.get("particles")
    if parts is None:
        parts = next(
            (b for b in blocks.values() if hasattr(b, "columns") and "rlnImageName" in b.columns),
            None,
        )
    if parts is None or "rlnImageName" not in parts.columns:
        raise InputError(path, "no particles table with rlnImageName")
    optics = blocks.get("optics")
    apix = None
    if optics is not None and "rlnImagePixelSize" in optics.columns:
        apix = float(optics["rlnImagePixelSize"].iloc[0])
    name = str(parts["rlnImageName"].iloc[0])
    stack = resolve_image_name(name, [path.parent, Path.cwd()])
    if stack is None:
        raise InputError(path, f"cannot find the image stack of {name!r}", row=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.mmap(stack[0], permissive=True) as m:
            box = int(m.header.nx)
            if apix is None:
                apix = float(m.voxel_size.x)
    return len(parts), box, float(apix)


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
    seed: int = 0,
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
    inp = input_path_of(job or read_job_json(Path(job_dir)))
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

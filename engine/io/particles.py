"""Particle sets: RELION STAR (3.0, 3.1/4/5) or cryoSPARC ``.cs`` in, images out.

``read_particles`` reads the table, resolves every image stack and validates the set from
the stack headers only (cheap): stack files exist, image numbers are in range, every image
has the same square size. Images are read later, memory-mapped, with
:meth:`ParticleSet.read_images` / :meth:`ParticleSet.iter_blocks`. Inputs are only ever
opened read-only.

Rows in error messages are 1-based particle rows of the particle table (row 1 = first
particle).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.core.ctf import CtfParams
from engine.errors import InputError
from engine.io.cs import read_cs
from engine.io.mrc import open_stack, stack_info
from engine.io.star import read_star

__all__ = ["ParticleSet", "read_particles", "particles_to_blocks", "parse_image_names"]


@dataclass
class ParticleSet:
    """A set of particle images described by a STAR or .cs file.

    Attributes
    ----------
    path : Path
        The input file (.star or .cs).
    particles : DataFrame
        Every input column in input order (``.cs``: RELION names plus the original fields).
    optics : DataFrame or None
        Optics table; None for RELION 3.0 input.
    star_version : str
        ``"3.0"`` or ``"3.1"`` (3.1 also for RELION 4/5 and for .cs input).
    box : int
        Image size in pixels (square, shared by all particles).
    apix_A : float
        Pixel size in Å (0.0 if the input states it nowhere).
    ctf : CtfParams or None
        Per-particle CTF parameters, None without defocus columns.
    stack_paths : list[Path]
        Resolved image stack files.
    stack_index : (n,) int32
        Index into ``stack_paths`` of each particle.
    frame_index : (n,) int64
        0-based image number of each particle within its stack.
    ctf_premultiplied : bool
        The images were already multiplied by their CTF (``rlnCtfDataAreCtfPremultiplied``).
    block_name : str
        Name (without ``data_``) of the particle block in the input STAR file.
    other_blocks : dict[str, DataFrame]
        Other blocks of the input STAR file (kept when writing), in file order.
    """

    path: Path
    particles: pd.DataFrame
    optics: pd.DataFrame | None
    star_version: str
    box: int
    apix_A: float
    ctf: CtfParams | None
    stack_paths: list[Path] = field(default_factory=list)
    stack_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    frame_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ctf_premultiplied: bool = False
    block_name: str = "particles"
    other_blocks: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.particles))

    def read_images(self, idx: np.ndarray | list[int]) -> np.ndarray:
        """Images of particles ``idx`` (positions in the table), in that order.

        Returns
        -------
        (len(idx), box, box) float32

        Raises
        ------
        InputError
            An image has NaN or infinite pixels (names the stack, image and row).
        """
        idx = np.asarray(idx, dtype=np.int64).ravel()
        out = np.empty((idx.size, self.box, self.box), dtype=np.float32)
        if idx.size == 0:
            return out
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"particle index out of range 0..{len(self) - 1}")
        sid = self.stack_index[idx]
        order = np.argsort(sid, kind="stable")
        bounds = np.flatnonzero(np.diff(sid[order])) + 1
        for sel in np.split(order, bounds):
            s = int(sid[sel[0]])
            arr, _ = open_stack(self.stack_paths[s])
            frames = self.frame_index[idx[sel]]
            srt = np.argsort(frames, kind="stable")  # read the file front to back
            out[sel[srt]] = arr[frames[srt]]
        bad = ~np.isfinite(out).all(axis=(1, 2))
        if bad.any():
            j = int(np.argmax(bad))
            row = int(idx[j])
            raise InputError(
                self.path,
                f"image {int(self.frame_index[row]) + 1} of "
                f"{self.stack_paths[int(self.stack_index[row])]} contains NaN or "
                "infinite pixels",
                row=row + 1,
            )
        return out

    def iter_blocks(self, block_size: int = 1024) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, images)`` blocks in input order; images ``(b, box, box)``."""
        n = len(self)
        for start in range(0, n, max(int(block_size), 1)):
            stop = min(start + block_size, n)
            yield start, stop, self.read_images(np.arange(start, stop))


def parse_image_names(names: pd.Series, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rlnImageName`` values ``NNNNNN@stack`` into (0-based index, stack string).

    A value without ``@`` means image 1 of that file.
    """
    s = names.astype(str).str.strip()
    has_at = s.str.contains("@", regex=False).to_numpy(dtype=bool)
    parts = s.str.partition("@")
    num = parts[0].where(has_at, "1")
    stack = parts[2].where(has_at, s).to_numpy(dtype=object)
    idx = pd.to_numeric(num, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(idx) | (idx < 1) | (idx != np.round(idx))
    if bad.any():
        r = int(np.argmax(bad))
        raise InputError(
            path,
            f"bad rlnImageName '{s.iloc[r]}' (expected NNNNNN@stack.mrcs with NNNNNN >= 1)",
            row=r + 1,
        )
    empty = np.array([not x for x in stack])
    if empty.any():
        r = int(np.argmax(empty))
        raise InputError(path, f"bad rlnImageName '{s.iloc[r]}' (no stack file)", row=r + 1)
    return idx.astype(np.int64) - 1, stack


def _resolve(name: str, bases: list[Path]) -> Path | None:
    p = Path(name)
    if p.is_absolute():
        return p if p.is_file() else None
    for b in bases:
        q = b / p
        if q.is_file():
            return q
    return None


def _locate_stacks(
    stack_names: np.ndarray, path: Path, project_dir: str | os.PathLike[str] | None
) -> tuple[list[Path], np.ndarray]:
    uniq, first, inverse = np.unique(
        stack_names.astype(str), return_index=True, return_inverse=True
    )
    bases = [path.parent]
    if project_dir is not None:
        bases.append(Path(project_dir))
    bases.append(Path.cwd())
    paths: list[Path] = []
    for name, r in zip(uniq, first, strict=True):
        q = _resolve(str(name), bases)
        if q is None:
            looked = ", ".join(str(b) for b in bases)
            raise InputError(
                path,
                f"image stack '{name}' not found (looked relative to: "
                f"{looked}); pass the project folder if paths are relative "
                "to it",
                row=int(r) + 1,
            )
        paths.append(q)
    return paths, inverse.astype(np.int32).ravel()


def _check_stacks(
    path: Path, paths: list[Path], sid: np.ndarray, frame: np.ndarray
) -> tuple[int, float]:
    """Check image numbers and sizes against the stack headers; return (box, header apix)."""
    box = None
    box_row = 0
    apix = 0.0
    max_frame = np.full(len(paths), -1, dtype=np.int64)
    np.maximum.at(max_frame, sid, frame)
    first_row = np.full(len(paths), len(sid), dtype=np.int64)
    np.minimum.at(first_row, sid, np.arange(len(sid)))
    for s, p in enumerate(paths):
        n, ny, nx, a = stack_info(p)
        if ny != nx:
            raise InputError(
                path, f"images in {p} are not square ({nx} x {ny} px)", row=int(first_row[s]) + 1
            )
        if box is None:
            box, box_row = nx, int(first_row[s])
        elif nx != box:
            raise InputError(
                path,
                f"image size {nx} px in {p} differs from {box} px (row "
                f"{box_row + 1}); all particles must share one box size",
                row=int(first_row[s]) + 1,
            )
        if max_frame[s] >= n:
            rows = np.flatnonzero((sid == s) & (frame >= n))
            r = int(rows[0])
            raise InputError(
                path, f"image {int(frame[r]) + 1} is past the end of {p} ({n} images)", row=r + 1
            )
        if a > 0 and apix == 0.0:
            apix = a
    return int(box or 0), apix


def _optics_for_particles(
    path: Path, particles: pd.DataFrame, optics: pd.DataFrame
) -> pd.DataFrame:
    """Optics rows aligned with the particle rows."""
    if "rlnOpticsGroup" in particles.columns and "rlnOpticsGroup" in optics.columns:
        g = pd.to_numeric(particles["rlnOpticsGroup"], errors="coerce")
        table = optics.drop_duplicates("rlnOpticsGroup").set_index("rlnOpticsGroup")
        known = g.isin(table.index).to_numpy()
        if not known.all():
            r = int(np.argmax(~known))
            raise InputError(
                path,
                f"rlnOpticsGroup {particles['rlnOpticsGroup'].iloc[r]} is not in the optics table",
                row=r + 1,
            )
        return table.loc[g.to_numpy()].reset_index()
    if len(optics) == 1:
        return optics.loc[np.zeros(len(particles), dtype=np.int64)].reset_index(drop=True)
    raise InputError(
        path,
        f"particles have no rlnOpticsGroup column but the optics table has {len(optics)} groups",
    )


def _column(tables: list[pd.DataFrame], name: str, n: int) -> np.ndarray | None:
    for t in tables:
        if t is not None and name in t.columns:
            return pd.to_numeric(t[name], errors="coerce").to_numpy(dtype=np.float64)[:n]
    return None


def _positive(path: Path, name: str, v: np.ndarray) -> np.ndarray:
    bad = ~(np.isfinite(v) & (v > 0))
    if bad.any():
        r = int(np.argmax(bad))
        raise InputError(
            path, f"{name} {v[r]:g} is not a valid pixel size (must be a number > 0)", row=r + 1
        )
    return v


def _pixel_size(path: Path, tables: list[pd.DataFrame], n: int, header_apix: float) -> float:
    """The pixel size the table states (checked: > 0, one value), else the header's."""
    for name in ("rlnImagePixelSize", "rlnPixelSize"):
        v = _column(tables, name, n)
        if v is not None:
            return _single(path, name, _positive(path, name, v))
    det = _column(tables, "rlnDetectorPixelSize", n)
    mag = _column(tables, "rlnMagnification", n)
    if det is not None and mag is not None:
        _positive(path, "rlnDetectorPixelSize", det)
        _positive(path, "rlnMagnification", mag)
        return _single(path, "rlnDetectorPixelSize/rlnMagnification", det * 1e4 / mag)
    return float(header_apix)


def _single(path: Path, what: str, v: np.ndarray) -> float:
    if v.size == 0:
        return 0.0
    if np.ptp(v) > 1e-4 * v.max():
        r = int(np.argmax(np.abs(v - v[0]) > 1e-4 * v.max()))
        raise InputError(
            path,
            f"pixel size ({what}) {v[r]:g} Å differs from {v[0]:g} Å of "
            "row 1; classify one pixel size at a time",
            row=r + 1,
        )
    return float(f"{float(v[0]):.6g}")


def _ctf(
    path: Path, particles: pd.DataFrame, per_particle_optics: pd.DataFrame | None
) -> CtfParams | None:
    n = len(particles)
    tables = [particles] if per_particle_optics is None else [particles, per_particle_optics]
    du = _column([particles], "rlnDefocusU", n)
    if du is None:
        return None
    dv = _column([particles], "rlnDefocusV", n)
    ang = _column([particles], "rlnDefocusAngle", n)
    vals = {
        "defocus_u_A": du,
        "defocus_v_A": du if dv is None else dv,
        "defocus_angle_deg": np.zeros(n) if ang is None else ang,
    }
    for key, col, default in (
        ("voltage_kV", "rlnVoltage", 300.0),
        ("cs_mm", "rlnSphericalAberration", 2.7),
        ("amp_contrast", "rlnAmplitudeContrast", 0.1),
        ("phase_shift_deg", "rlnPhaseShift", 0.0),
        ("bfactor_A2", "rlnCtfBfactor", 0.0),
    ):
        # optics values from the optics table first; phase shift / B-factor per particle first
        v = _column(tables if key in ("phase_shift_deg", "bfactor_A2") else tables[::-1], col, n)
        vals[key] = np.full(n, default) if v is None else v
    for key, v in vals.items():
        bad = ~np.isfinite(v)
        if bad.any():
            r = int(np.argmax(bad))
            raise InputError(path, f"CTF value {key} is not a number", row=r + 1)
    return CtfParams(**vals)


def _particle_block(path: Path, blocks: dict[str, pd.DataFrame]) -> str:
    if "particles" in blocks and "rlnImageName" in blocks["particles"].columns:
        return "particles"
    for name, df in blocks.items():
        if "rlnImageName" in df.columns:
            return name
    listed = ", ".join(f"data_{k}" for k in blocks)
    raise InputError(
        path, f"no rlnImageName column in any data block ({listed}); is this a particle STAR file?"
    )


def read_particles(
    path: str | os.PathLike[str], project_dir: str | os.PathLike[str] | None = None
) -> ParticleSet:
    """Read a particle STAR (RELION 3.0 / 3.1+) or cryoSPARC ``.cs`` file and validate it.

    Relative stack paths are resolved against the file's folder, then ``project_dir``,
    then the current directory.

    Raises
    ------
    InputError
        Unreadable file, no ``rlnImageName``, missing stack, image past the end of a stack,
        mixed or non-square box sizes, unknown optics group, mixed pixel sizes.
    """
    p = Path(path)
    other: dict[str, pd.DataFrame] = {}
    if p.suffix.lower() == ".cs":
        particles, optics = read_cs(p)
        version, block = "3.1", "particles"
    else:
        blocks = read_star(p)
        block = _particle_block(p, blocks)
        particles = blocks[block]
        optics = blocks.get("optics") if block == "particles" else None
        if optics is not None and len(optics) == 0:
            optics = None
        version = "3.0" if optics is None else "3.1"
        other = {k: v for k, v in blocks.items() if k not in (block, "optics")}
    if len(particles) == 0:
        raise InputError(p, "the particle table is empty")
    particles = particles.reset_index(drop=True)
    frame, stack_names = parse_image_names(particles["rlnImageName"], p)
    paths, sid = _locate_stacks(stack_names, p, project_dir)
    box, header_apix = _check_stacks(p, paths, sid, frame)
    per_opt = None if optics is None else _optics_for_particles(p, particles, optics)
    tables = [particles] if per_opt is None else [per_opt, particles]
    apix = _pixel_size(p, tables, len(particles), header_apix)
    ctf = _ctf(p, particles, per_opt)
    pre = _column(tables, "rlnCtfDataAreCtfPremultiplied", len(particles))
    return ParticleSet(
        path=p,
        particles=particles,
        optics=optics,
        star_version=version,
        box=box,
        apix_A=apix,
        ctf=ctf,
        stack_paths=paths,
        stack_index=sid,
        frame_index=frame,
        ctf_premultiplied=bool(pre is not None and np.nan_to_num(pre).any()),
        block_name=block,
        other_blocks=other,
    )


def particles_to_blocks(pset: ParticleSet, particles_df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Blocks for writing ``particles_df`` as a STAR file in the input's layout.

    3.1 (and .cs input): ``{"optics": ..., "particles": ...}`` (plus any other input
    blocks, in input order); 3.0: the input's single block name (e.g. ``""`` or
    ``"images"``) -> ``particles_df``.
    """
    if pset.star_version == "3.0" or pset.optics is None:
        out = dict(pset.other_blocks)
        out[pset.block_name] = particles_df
        return out
    out = {"optics": pset.optics}
    out.update(pset.other_blocks)
    out["particles"] = particles_df
    return out

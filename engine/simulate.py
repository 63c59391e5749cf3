"""Realistic synthetic particle sets with a known ground truth.

Good particles are projections of a 3D map (or the built-in asymmetric phantom, see
:mod:`engine.phantom`) at chosen viewing directions, rotated in-plane by ``psi`` and moved
by ``-origin`` exactly as the README's pose convention says
(``particle = engine.pose.class_to_particle(P0, psi, origin_x_px, origin_y_px)`` with
``P0`` the projection at ``(rot, tilt, psi=0)``; equivalently RELION's projection with
``A(rot, tilt, psi)``, see :mod:`engine.project`), then
multiplied by a per-particle CTF (RELION convention, :mod:`engine.ctf`) and buried in white
Gaussian noise at the requested SNR (signal variance inside the particle's circle / noise
variance). Junk: pure noise, ice blobs/rings, carbon edges, aggregates (2-4 overlapping
particles) and off-centre particles (moved by about 40% of the box). Each image is then
normalised like RELION's (background mean 0, standard deviation 1); protein is bright.

Outputs of :func:`simulate` (folder ``out_dir``): ``particles.star`` (RELION 3.1, no pose
columns), ``particles.mrcs``, ``truth.star`` (same rows: poses in the README convention,
``_tdcViewId`` (-1 for junk), ``_tdcJunkKind`` (``""`` for good particles), CTF values).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from engine.ctf import CtfParams, electron_wavelength_A
from engine.errors import ParameterError
from engine.io.mrc import new_stack, read_volume
from engine.io.star import write_star
from engine.phantom import SHAPES, GaussianProjector, particle_radius_px
from engine.project import VolumeProjector, resample_volume
from engine.sim_junk import JUNK_KINDS, carbon_image, ice_image

try:  # float32 transforms, several times faster than numpy's (optional dependency)
    from scipy import fft as _fft
except ImportError:  # pragma: no cover
    _fft = np.fft  # type: ignore[assignment]

__all__ = ["simulate", "simulate_arrays", "SimResult", "SimData", "fibonacci_views",
           "ctf_half_plane", "apply_ctf", "JUNK_KINDS", "CHUNK", "SimSpec", "plan_simulation"]

CHUNK = 512            # particles per block (also the unit of the per-block random streams)
MapSource = str | os.PathLike | np.ndarray | None
N_REFERENCE_VIEWS = 20  # random views: _tdcViewId = nearest of this many Fibonacci views
PER_MICROGRAPH = 100


@dataclass
class SimData:
    """Simulated particles in memory (see :func:`simulate_arrays`).

    Attributes
    ----------
    images : (n, box, box) float32
        Normalised particle images.
    truth : DataFrame
        One row per particle (columns as in ``truth.star``, names without ``_``).
    ctf : CtfParams or None
        The CTF applied to each particle (None with ``ctf=False``).
    particles, optics : DataFrame
        The tables written to ``particles.star``.
    clean : (n, box, box) float32 or None
        Noise-free, CTF-free signal in the images' scale (``return_clean=True``).
    box : int
    apix_A : float
    view_dirs : (K, 2) float64
        ``(rot, tilt)`` in degrees of the views (the reference views when random).
    """

    images: np.ndarray
    truth: pd.DataFrame
    ctf: CtfParams | None
    particles: pd.DataFrame
    optics: pd.DataFrame
    clean: np.ndarray | None
    box: int
    apix_A: float
    view_dirs: np.ndarray


@dataclass
class SimResult:
    """Files written by :func:`simulate` and the ground truth table."""

    out_dir: Path
    particles_star: Path
    stack_path: Path
    truth_star: Path
    truth: pd.DataFrame
    n_particles: int
    box: int
    apix_A: float
    seconds: float


def fibonacci_views(k: int) -> np.ndarray:
    """``k`` well-separated viewing directions on the sphere, ``(k, 2)`` (rot, tilt) degrees."""
    i = np.arange(k, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / k
    tilt = np.rad2deg(np.arccos(z))
    rot = np.mod(i * 180.0 * (3.0 - np.sqrt(5.0)), 360.0)
    return np.stack([rot, tilt], axis=1)


def _dirs(rot_deg: np.ndarray, tilt_deg: np.ndarray) -> np.ndarray:
    r, t = np.deg2rad(rot_deg), np.deg2rad(tilt_deg)
    return np.stack([np.sin(t) * np.cos(r), np.sin(t) * np.sin(r), np.cos(t)], axis=-1)


def _angles(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    tilt = np.rad2deg(np.arccos(np.clip(d[:, 2], -1.0, 1.0)))
    rot = np.mod(np.rad2deg(np.arctan2(d[:, 1], d[:, 0])), 360.0)
    return rot, tilt


def ctf_half_plane(p: CtfParams, box: int, apix_A: float) -> np.ndarray:
    """:func:`engine.ctf.ctf_image` (same formula) by a numba kernel: ``(n, box, box//2+1)``
    float32 on the ``rfft2`` grid."""
    out = np.ones((len(p), box, box // 2 + 1), dtype=np.complex64)
    apply_ctf(out, p, apix_A)
    return out.real.copy()


def apply_ctf(f: np.ndarray, p: CtfParams, apix_A: float) -> None:
    """Multiply transforms ``f`` ``(n, box, box//2+1)`` complex64 in place by their CTFs."""
    m = p.as_matrix().copy()
    m[:, 3] = electron_wavelength_A(m[:, 3])  # voltage -> wavelength
    _ctf_kernel(f, np.ascontiguousarray(m), float(apix_A))


@njit(nogil=True, cache=True)
def _ctf_kernel(f: np.ndarray, m: np.ndarray, apix_A: float) -> None:
    n, box, half = f.shape
    k2 = np.empty((box, half))
    cos2t = np.empty((box, half))
    sin2t = np.empty((box, half))
    for iy in range(box):  # grid terms shared by all particles
        ky = (iy if iy < (box + 1) // 2 else iy - box) / (box * apix_A)
        for ix in range(half):
            kx = ix / (box * apix_A)
            r2 = kx * kx + ky * ky
            k2[iy, ix] = r2
            # cos / sin of 2 theta, theta = atan2(ky, kx)
            cos2t[iy, ix] = (kx * kx - ky * ky) / r2 if r2 > 0.0 else 1.0
            sin2t[iy, ix] = 2.0 * kx * ky / r2 if r2 > 0.0 else 0.0
    for i in range(n):
        du, dv, ang, lam, cs, q, ph, bf = m[i]
        a = np.deg2rad(ang)
        mean, diff = 0.5 * (du + dv), 0.5 * (du - dv)
        c2, s2 = diff * np.cos(2.0 * a), diff * np.sin(2.0 * a)
        w = np.arctan2(q, np.sqrt(max(1.0 - q * q, 0.0)))
        const = np.deg2rad(ph) + w
        cterm = 0.5 * np.pi * cs * 1e7 * lam ** 3
        plam = np.pi * lam
        for iy in range(box):
            for ix in range(half):
                r2 = k2[iy, ix]
                dz = mean + cos2t[iy, ix] * c2 + sin2t[iy, ix] * s2
                v = np.sin(plam * dz * r2 - cterm * r2 * r2 + const)
                if bf != 0.0:
                    v *= np.exp(-0.25 * bf * r2)
                f[i, iy, ix] *= v


@dataclass
class _Plan:
    rot: np.ndarray
    tilt: np.ndarray
    psi: np.ndarray
    ox_px: np.ndarray
    oy_px: np.ndarray
    view_id: np.ndarray
    kind: np.ndarray                       # (n,) object: "" or a junk kind
    extras: dict[int, np.ndarray]          # aggregate row -> (m, 5) rot, tilt, psi, ox, oy
    ctf: CtfParams
    view_dirs: np.ndarray


def _validate(n: int, box: int, apix_A: float, snr: float, junk_fraction: float,
              n_views: int | None, view_weights: object, junk_kinds: tuple[str, ...]) -> None:
    errs = []
    if n < 1:
        errs.append(f"n_particles must be >= 1 (got {n})")
    if box < 16 or box % 2:
        errs.append(f"box must be even and >= 16 px (got {box})")
    if apix_A <= 0:
        errs.append(f"apix must be > 0 Å (got {apix_A})")
    if snr <= 0:
        errs.append(f"snr must be > 0 (got {snr})")
    if not 0.0 <= junk_fraction <= 1.0:
        errs.append(f"junk fraction must be in [0, 1] (got {junk_fraction})")
    bad = [k for k in junk_kinds if k not in JUNK_KINDS]
    if bad or (junk_fraction > 0 and not junk_kinds):
        errs.append(f"junk kinds must be among {', '.join(JUNK_KINDS)} (got {bad or 'none'})")
    if n_views is not None and n_views < 1:
        errs.append(f"views must be >= 1 (got {n_views})")
    if view_weights is not None:
        w = np.asarray(view_weights, dtype=np.float64)
        if n_views is None or w.shape != (n_views,) or (w < 0).any() or w.sum() <= 0:
            errs.append("view_weights needs n_views non-negative numbers (not all 0)")
    if errs:
        raise ParameterError("; ".join(errs))


def _plan(n: int, box: int, n_views: int | None, view_weights: object, junk_fraction: float,
          junk_kinds: tuple[str, ...], defocus_range_um: tuple[float, float], astig_A: float,
          voltage_kV: float, cs_mm: float, amp_contrast: float, max_shift_px: float,
          rng: np.random.Generator) -> _Plan:
    k = n_views if n_views is not None else N_REFERENCE_VIEWS
    views = fibonacci_views(k)
    vdirs = _dirs(views[:, 0], views[:, 1])
    if n_views is not None:
        w = (np.full(k, 1.0 / k) if view_weights is None
             else np.asarray(view_weights, np.float64) / np.sum(view_weights))
        view_id = rng.choice(k, size=n, p=w)
        d = vdirs[view_id] + np.deg2rad(2.0) * rng.standard_normal((n, 3))  # ~2 deg jitter
        rot, tilt = _angles(d)
    else:
        d = rng.standard_normal((n, 3))
        rot, tilt = _angles(d)
        view_id = np.argmax(_dirs(rot, tilt) @ vdirs.T, axis=1)
    psi = rng.uniform(0.0, 360.0, n)
    r = max_shift_px * np.sqrt(rng.uniform(0.0, 1.0, n))
    a = rng.uniform(0.0, 2.0 * np.pi, n)
    ox, oy = r * np.cos(a), r * np.sin(a)

    kind = np.full(n, "", dtype=object)
    n_junk = int(round(junk_fraction * n))
    junk_rows = np.sort(rng.permutation(n)[:n_junk])
    if n_junk:
        kind[junk_rows] = rng.choice(np.array(junk_kinds, dtype=object), size=n_junk)
    view_id = np.where(kind == "", view_id, -1).astype(np.int64)
    extras: dict[int, np.ndarray] = {}
    for i in junk_rows:
        if kind[i] in ("noise", "ice", "carbon"):
            rot[i] = tilt[i] = psi[i] = ox[i] = oy[i] = 0.0
        elif kind[i] == "offcentre":
            b = rng.uniform(0.0, 2.0 * np.pi)
            ox[i], oy[i] = 0.4 * box * np.cos(b), 0.4 * box * np.sin(b)
        else:  # aggregate: 1-3 more copies around this one
            m = int(rng.integers(1, 4))
            e = np.empty((m, 5))
            e[:, 1] = np.rad2deg(np.arccos(rng.uniform(-1.0, 1.0, m)))
            e[:, 0] = rng.uniform(0.0, 360.0, m)
            e[:, 2] = rng.uniform(0.0, 360.0, m)
            dist = rng.uniform(0.2, 0.35, m) * box
            b = rng.uniform(0.0, 2.0 * np.pi, m)
            e[:, 3] = ox[i] + dist * np.cos(b)
            e[:, 4] = oy[i] + dist * np.sin(b)
            extras[int(i)] = e

    mic = np.arange(n) // PER_MICROGRAPH
    n_mic = int(mic[-1]) + 1
    lo, hi = sorted(defocus_range_um)
    df_mic = rng.uniform(lo * 1e4, hi * 1e4, n_mic)
    ast_mic = rng.uniform(0.0, astig_A, n_mic)
    ang_mic = rng.uniform(0.0, 180.0, n_mic)
    dfm = df_mic[mic] + rng.normal(0.0, 30.0, n)
    ctf = CtfParams(dfm + 0.5 * ast_mic[mic], dfm - 0.5 * ast_mic[mic], ang_mic[mic],
                    voltage_kV, cs_mm, amp_contrast, 0.0, 0.0)
    return _Plan(rot, tilt, psi, ox, oy, view_id, kind, extras, ctf, views)


def _projector(box: int, apix_A: float, map_path: MapSource,
               map_apix_A: float | None = None, phantom: str = "compact"
               ) -> tuple[GaussianProjector | VolumeProjector, float]:
    """The projector and the particle radius (px); ``map_path`` may be a volume array;
    without one, the built-in phantom of shape ``phantom``."""
    if map_path is None:
        p = GaussianProjector(box, phantom)
        return p, particle_radius_px(p.volume())
    if isinstance(map_path, np.ndarray):
        vol, apix_map = np.asarray(map_path, dtype=np.float32), 0.0
    else:
        vol, apix_map = read_volume(map_path)
    if map_apix_A:
        apix_map = float(map_apix_A)
    if vol.ndim != 3 or len(set(vol.shape)) != 1 or vol.shape[0] < 2:
        raise ParameterError(f"{map_path}: need a cubic 3D map, got shape {vol.shape}")
    vol = resample_volume(vol, apix_map, box, apix_A)
    return VolumeProjector(vol), min(particle_radius_px(vol), 0.45 * box)


class _Renderer:
    """Renders blocks of particles of one plan (shared scale and masks)."""

    def __init__(self, proj: GaussianProjector | VolumeProjector, plan: _Plan, box: int,
                 apix_A: float, snr: float, radius_px: float, use_ctf: bool) -> None:
        self.proj, self.plan, self.box, self.apix_A = proj, plan, box, apix_A
        self.use_ctf = use_ctf
        y, x = np.mgrid[0:box, 0:box] - box // 2
        r = np.hypot(x, y)
        self.inside = r <= radius_px
        self.background = r > float(np.clip(1.1 * radius_px, 0.3 * box, 0.42 * box))
        # pilot: signal level of typical good particles (deterministic)
        good = np.flatnonzero(plan.kind == "")[:64]
        if good.size == 0:
            good = np.arange(min(len(plan.kind), 64))
        pl = plan
        f = proj.slices(pl.rot[good], pl.tilt[good], pl.psi[good],
                        np.zeros(good.size), np.zeros(good.size))
        clean = _fft.irfft2(f, s=(box, box))
        self.peak = float(np.mean(clean.max(axis=(1, 2))))
        if use_ctf:
            f = f * ctf_half_plane(pl.ctf.subset(good), box, apix_A)
        sig = _fft.irfft2(f, s=(box, box))
        var = float(np.mean(sig[:, self.inside].var(axis=1)))
        self.scale = float(np.sqrt(snr / var)) if var > 0 else 1.0

    def _wide_junk(self, row: int, kind: str, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Ice or carbon drawn on a 2x canvas, CTF applied there, box cropped: (signal, clean)
        ``(box, box)`` each, already scaled (the CTF does not wrap around the box edges)."""
        box = self.box
        make = ice_image if kind == "ice" else carbon_image
        big = make(box, self.peak, rng, canvas=2 * box) * np.float32(self.scale)
        o = box - box // 2
        clean = big[o:o + box, o:o + box].copy()
        if not self.use_ctf:
            return clean, clean
        fb = _fft.rfft2(big)[None].astype(np.complex64)
        apply_ctf(fb, self.plan.ctf.subset(np.array([row])), self.apix_A)
        sig = _fft.irfft2(fb[0], s=(2 * box, 2 * box))[o:o + box, o:o + box]
        return sig.astype(np.float32), clean

    def render(self, start: int, stop: int, rng: np.random.Generator, want_clean: bool
               ) -> tuple[np.ndarray, np.ndarray | None]:
        pl, box = self.plan, self.box
        rows = np.arange(start, stop)
        kind = pl.kind[rows]
        f = np.zeros((rows.size, box, box // 2 + 1), dtype=np.complex64)
        posed = np.flatnonzero(np.isin(kind, ["", "offcentre", "aggregate"]))
        if posed.size:
            g = rows[posed]
            f[posed] = self.proj.slices(pl.rot[g], pl.tilt[g], pl.psi[g], pl.ox_px[g],
                                        pl.oy_px[g])
        for j in np.flatnonzero(kind == "aggregate"):
            e = pl.extras[int(rows[j])]
            f[j] += self.proj.slices(e[:, 0], e[:, 1], e[:, 2], e[:, 3], e[:, 4]).sum(axis=0)
        wide = {int(j): self._wide_junk(int(rows[j]), str(kind[j]), rng)
                for j in np.flatnonzero(np.isin(kind, ["ice", "carbon"]))}
        f *= self.scale
        clean = (_fft.irfft2(f, s=(box, box)).astype(np.float32, copy=False) if want_clean
                 else None)
        if self.use_ctf:
            apply_ctf(f, pl.ctf.subset(rows), self.apix_A)
        img = _fft.irfft2(f, s=(box, box)).astype(np.float32, copy=False)
        for j, (sig, cl) in wide.items():
            img[j] += sig
            if clean is not None:
                clean[j] += cl
        img += rng.standard_normal(img.shape, dtype=np.float32)
        bg = img.reshape(rows.size, -1)[:, self.background.ravel()]
        mean = bg.mean(axis=1, dtype=np.float64)
        std = np.sqrt(np.maximum(np.mean(np.square(bg), axis=1, dtype=np.float64) - mean ** 2,
                                 0.0))
        std[std <= 0] = 1.0
        img -= mean.astype(np.float32)[:, None, None]
        img *= (1.0 / std).astype(np.float32)[:, None, None]
        if clean is not None:
            clean *= (1.0 / std).astype(np.float32)[:, None, None]
        return img, clean


def _tables(plan: _Plan, n: int, box: int, apix_A: float, voltage_kV: float, cs_mm: float,
            amp_contrast: float, use_ctf: bool, stack_name: str, rng: np.random.Generator
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    optics = pd.DataFrame({
        "rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1],
        "rlnVoltage": [float(voltage_kV)], "rlnSphericalAberration": [float(cs_mm)],
        "rlnAmplitudeContrast": [float(amp_contrast)], "rlnImagePixelSize": [float(apix_A)],
        "rlnImageSize": [int(box)], "rlnImageDimensionality": [2],
        "rlnCtfDataAreCtfPremultiplied": [0],
    })
    names = [f"{i + 1:06d}@{stack_name}" for i in range(n)]
    mic = np.arange(n) // PER_MICROGRAPH
    parts = pd.DataFrame({
        "rlnImageName": names,
        "rlnMicrographName": [f"Micrographs/mic{m + 1:05d}.mrc" for m in mic],
        "rlnCoordinateX": np.round(rng.uniform(box, 4096 - box, n), 1),
        "rlnCoordinateY": np.round(rng.uniform(box, 4096 - box, n), 1),
    })
    truth = pd.DataFrame({
        "rlnImageName": names,
        "rlnAngleRot": plan.rot, "rlnAngleTilt": plan.tilt, "rlnAnglePsi": plan.psi,
        "rlnOriginXAngst": plan.ox_px * apix_A, "rlnOriginYAngst": plan.oy_px * apix_A,
        "tdcViewId": plan.view_id, "tdcJunkKind": plan.kind.astype(str),
    })
    if use_ctf:
        for df in (parts, truth):
            df["rlnDefocusU"] = plan.ctf.defocus_u_A
            df["rlnDefocusV"] = plan.ctf.defocus_v_A
            df["rlnDefocusAngle"] = plan.ctf.defocus_angle_deg
        parts["rlnPhaseShift"] = 0.0
        parts["rlnCtfBfactor"] = 0.0
    parts["rlnOpticsGroup"] = 1
    truth["rlnOpticsGroup"] = 1
    return parts, optics, truth


def _setup(n_particles: int, box: int, apix_A: float, map_path: MapSource,
           snr: float, junk_fraction: float, n_views: int | None, view_weights: object,
           junk_kinds: tuple[str, ...], defocus_range_um: tuple[float, float], astig_A: float,
           voltage_kV: float, cs_mm: float, amp_contrast: float, max_shift_A: float | None,
           ctf: bool, seed: int, stack_name: str, map_apix_A: float | None = None,
           phantom: str = "compact"
           ) -> tuple[_Plan, _Renderer, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    _validate(n_particles, box, apix_A, snr, junk_fraction, n_views, view_weights,
              tuple(junk_kinds))
    if phantom not in SHAPES:
        raise ParameterError(f"phantom must be one of {', '.join(SHAPES)} (got {phantom!r})")
    rng = np.random.default_rng(seed)
    shift_px = (0.03 * box) if max_shift_A is None else max_shift_A / apix_A
    plan = _plan(n_particles, box, n_views, view_weights, junk_fraction, tuple(junk_kinds),
                 defocus_range_um, astig_A, voltage_kV, cs_mm, amp_contrast, shift_px, rng)
    proj, radius = _projector(box, apix_A, map_path, map_apix_A, phantom)
    rend = _Renderer(proj, plan, box, apix_A, snr, radius, ctf)
    parts, optics, truth = _tables(plan, n_particles, box, apix_A, voltage_kV, cs_mm,
                                   amp_contrast, ctf, stack_name, rng)
    return plan, rend, parts, optics, truth


def _block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 1, block])


def simulate_arrays(n_particles: int = 1000, box: int = 128, apix_A: float = 1.5,
                    map_path: MapSource = None, snr: float = 0.05,
                    junk_fraction: float = 0.15, n_views: int | None = None,
                    view_weights: object = None, junk_kinds: tuple[str, ...] = JUNK_KINDS,
                    defocus_range_um: tuple[float, float] = (1.0, 2.5), astig_A: float = 300.0,
                    voltage_kV: float = 300.0, cs_mm: float = 2.7, amp_contrast: float = 0.1,
                    max_shift_A: float | None = None, ctf: bool = True, seed: int = 0,
                    return_clean: bool = False, map_apix_A: float | None = None,
                    phantom: str = "compact") -> SimData:
    """Simulate particles in memory (same images as :func:`simulate` with equal arguments).

    Returns
    -------
    SimData
        ``images`` ``(n, box, box)`` float32, ``truth`` table, ``ctf`` parameters, and
        with ``return_clean`` the noise-free CTF-free signal ``(n, box, box)``.
    """
    plan, rend, parts, optics, truth = _setup(
        n_particles, box, apix_A, map_path, snr, junk_fraction, n_views, view_weights,
        junk_kinds, defocus_range_um, astig_A, voltage_kV, cs_mm, amp_contrast, max_shift_A,
        ctf, seed, "particles.mrcs", map_apix_A, phantom)
    images = np.empty((n_particles, box, box), dtype=np.float32)
    clean = np.empty_like(images) if return_clean else None
    for b, start in enumerate(range(0, n_particles, CHUNK)):
        stop = min(start + CHUNK, n_particles)
        img, cl = rend.render(start, stop, _block_rng(seed, b), return_clean)
        images[start:stop] = img
        if clean is not None and cl is not None:
            clean[start:stop] = cl
    return SimData(images, truth, plan.ctf if ctf else None, parts, optics, clean, box,
                   float(apix_A), plan.view_dirs)


def simulate(out_dir: str | os.PathLike[str], n_particles: int = 1000, box: int = 128,
             apix_A: float = 1.5, map_path: MapSource = None,
             snr: float = 0.05, junk_fraction: float = 0.15, n_views: int | None = None,
             view_weights: object = None, junk_kinds: tuple[str, ...] = JUNK_KINDS,
             defocus_range_um: tuple[float, float] = (1.0, 2.5), astig_A: float = 300.0,
             voltage_kV: float = 300.0, cs_mm: float = 2.7, amp_contrast: float = 0.1,
             max_shift_A: float | None = None, ctf: bool = True, seed: int = 0,
             float16: bool = False, progress: object = None,
             map_apix_A: float | None = None, phantom: str = "compact") -> SimResult:
    """Simulate a particle set on disk: ``particles.star``, ``particles.mrcs``, ``truth.star``.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created if missing).
    n_particles, box, apix_A : int, int (px, even), float (Å/px)
    map_path : path-like, optional
        A 3D map (.mrc, or a cubic array) resampled to ``box`` at ``apix_A``; default: the
        built-in phantom. ``map_apix_A`` overrides its voxel size (header / unset = apix_A).
    phantom : str
        Shape of the built-in phantom (:data:`engine.phantom.SHAPES`: ``"compact"``,
        ``"elongated"``); ignored with ``map_path``.
    snr : float
        Signal variance inside the particle's circle / noise variance.
    junk_fraction : float
        Fraction of junk images, kinds drawn uniformly from ``junk_kinds``.
    n_views : int, optional
        Number of well-separated viewing directions (Fibonacci sphere, ~2° jitter),
        drawn with probabilities ``view_weights``; default: uniformly random views.
    defocus_range_um, astig_A, voltage_kV, cs_mm, amp_contrast : CTF (per micrograph of
        100 particles; ``ctf=False`` for none).
    max_shift_A : float, optional
        Largest origin offset (default 3% of the box).
    seed : int
    float16 : bool
        Write the stack as MRC mode 12.
    progress : callable, optional
        Called as ``progress(done, total)`` after each block.

    The stack is written in blocks of :data:`CHUNK` particles (bounded memory).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan, rend, parts, optics, truth = _setup(
        n_particles, box, apix_A, map_path, snr, junk_fraction, n_views, view_weights,
        junk_kinds, defocus_range_um, astig_A, voltage_kV, cs_mm, amp_contrast, max_shift_A,
        ctf, seed, "particles.mrcs", map_apix_A, phantom)
    stack = out / "particles.mrcs"
    with new_stack(stack, n_particles, box, apix_A, float16=float16) as w:
        for b, start in enumerate(range(0, n_particles, CHUNK)):
            stop = min(start + CHUNK, n_particles)
            img, _ = rend.render(start, stop, _block_rng(seed, b), False)
            w.write(start, img)
            if callable(progress):
                progress(stop, n_particles)
    pstar, tstar = out / "particles.star", out / "truth.star"
    write_star(pstar, {"optics": optics, "particles": parts})
    write_star(tstar, {"optics": optics, "particles": truth})
    return SimResult(out, pstar, stack, tstar, truth, n_particles, box, float(apix_A),
                     time.perf_counter() - t0)


# --- compatibility: the spec-object interface used by ``twodclass demo`` -------------------

@dataclass
class SimSpec:
    """Simulation settings as one object (see :func:`simulate` for their meaning)."""

    n_particles: int = 1000
    n_views: int | None = 10
    box_px: int = 128
    apix_A: float = 1.5
    snr: float = 0.05
    junk_fraction: float = 0.15
    ctf: bool = True
    defocus_min_A: float = 10000.0
    defocus_max_A: float = 25000.0
    voltage_kV: float = 300.0
    seed: int = 0

    def kwargs(self) -> dict[str, object]:
        return dict(n_particles=self.n_particles, box=self.box_px, apix_A=self.apix_A,
                    snr=self.snr, junk_fraction=self.junk_fraction, n_views=self.n_views,
                    defocus_range_um=(self.defocus_min_A / 1e4, self.defocus_max_A / 1e4),
                    voltage_kV=self.voltage_kV, ctf=self.ctf, seed=self.seed)


@dataclass
class PlannedSimulation:
    """A :class:`SimSpec` with an optional map, rendered by
    :func:`engine.io.simulated.write_simulation`."""

    spec: SimSpec
    volume: np.ndarray | None = None
    volume_apix_A: float | None = None

    def __len__(self) -> int:
        return int(self.spec.n_particles)


def plan_simulation(spec: SimSpec, volume: np.ndarray | None = None,
                    volume_apix_A: float | None = None) -> PlannedSimulation:
    """Bind a spec (and optionally a map array) for writing."""
    return PlannedSimulation(spec, volume, volume_apix_A)

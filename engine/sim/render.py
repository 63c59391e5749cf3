"""Rendering simulated particles: the projector of a map (or the phantom), the CTF applied
on a half-plane transform, and blocks of noisy, normalised particle images of one plan."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from engine.core.ctf import CtfParams, electron_wavelength_A
from engine.core.projection import VolumeProjector, resample_volume
from engine.errors import ParameterError
from engine.io.mrc import read_volume
from engine.sim.junk import carbon_image, ice_image
from engine.sim.phantom import GaussianProjector, particle_radius_px

if TYPE_CHECKING:
    from engine.sim.plan import Plan

try:  # float32 transforms, several times faster than numpy's (optional dependency)
    from scipy import fft as _fft
except ImportError:  # pragma: no cover
    _fft = np.fft

__all__ = ["ctf_half_plane", "apply_ctf", "make_projector", "Renderer", "MapSource"]

#: a map file, a volume array, or None for the built-in phantom
MapSource = str | os.PathLike | np.ndarray | None


def ctf_half_plane(p: CtfParams, box: int, apix_A: float) -> np.ndarray:
    """:func:`engine.core.ctf.ctf_image` (same formula) by a numba kernel: ``(n, box, box//2+1)``
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
        cterm = 0.5 * np.pi * cs * 1e7 * lam**3
        plam = np.pi * lam
        for iy in range(box):
            for ix in range(half):
                r2 = k2[iy, ix]
                dz = mean + cos2t[iy, ix] * c2 + sin2t[iy, ix] * s2
                v = np.sin(plam * dz * r2 - cterm * r2 * r2 + const)
                if bf != 0.0:
                    v *= np.exp(-0.25 * bf * r2)
                f[i, iy, ix] *= v


def make_projector(
    box: int,
    apix_A: float,
    map_path: MapSource,
    map_apix_A: float | None = None,
    phantom: str = "compact",
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


class Renderer:
    """Renders blocks of particles of one plan (shared scale and masks)."""

    def __init__(
        self,
        proj: GaussianProjector | VolumeProjector,
        plan: Plan,
        box: int,
        apix_A: float,
        snr: float,
        radius_px: float,
        use_ctf: bool,
    ) -> None:
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
        f = proj.slices(
            pl.rot[good], pl.tilt[good], pl.psi[good], np.zeros(good.size), np.zeros(good.size)
        )
        clean = _fft.irfft2(f, s=(box, box))
        self.peak = float(np.mean(clean.max(axis=(1, 2))))
        if use_ctf:
            f = f * ctf_half_plane(pl.ctf.subset(good), box, apix_A)
        sig = _fft.irfft2(f, s=(box, box))
        var = float(np.mean(sig[:, self.inside].var(axis=1)))
        self.scale = float(np.sqrt(snr / var)) if var > 0 else 1.0

    def _wide_junk(
        self, row: int, kind: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ice or carbon drawn on a 2x canvas, CTF applied there, box cropped: (signal, clean)
        ``(box, box)`` each, already scaled (the CTF does not wrap around the box edges)."""
        box = self.box
        make = ice_image if kind == "ice" else carbon_image
        big = make(box, self.peak, rng, canvas=2 * box) * np.float32(self.scale)
        o = box - box // 2
        clean = big[o : o + box, o : o + box].copy()
        if not self.use_ctf:
            return clean, clean
        fb = _fft.rfft2(big)[None].astype(np.complex64)
        apply_ctf(fb, self.plan.ctf.subset(np.array([row])), self.apix_A)
        sig = _fft.irfft2(fb[0], s=(2 * box, 2 * box))[o : o + box, o : o + box]
        return sig.astype(np.float32), clean

    def render(
        self, start: int, stop: int, rng: np.random.Generator, want_clean: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        pl, box = self.plan, self.box
        rows = np.arange(start, stop)
        kind = pl.kind[rows]
        f = np.zeros((rows.size, box, box // 2 + 1), dtype=np.complex64)
        posed = np.flatnonzero(np.isin(kind, ["", "offcentre", "aggregate"]))
        if posed.size:
            g = rows[posed]
            f[posed] = self.proj.slices(pl.rot[g], pl.tilt[g], pl.psi[g], pl.ox_px[g], pl.oy_px[g])
        for j in np.flatnonzero(kind == "aggregate"):
            e = pl.extras[int(rows[j])]
            f[j] += self.proj.slices(e[:, 0], e[:, 1], e[:, 2], e[:, 3], e[:, 4]).sum(axis=0)
        wide = {
            int(j): self._wide_junk(int(rows[j]), str(kind[j]), rng)
            for j in np.flatnonzero(np.isin(kind, ["ice", "carbon"]))
        }
        f *= self.scale
        clean = _fft.irfft2(f, s=(box, box)).astype(np.float32, copy=False) if want_clean else None
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
        std = np.sqrt(np.maximum(np.mean(np.square(bg), axis=1, dtype=np.float64) - mean**2, 0.0))
        std[std <= 0] = 1.0
        img -= mean.astype(np.float32)[:, None, None]
        img *= (1.0 / std).astype(np.float32)[:, None, None]
        if clean is not None:
            clean *= (1.0 / std).astype(np.float32)[:, None, None]
        return img, clean

"""Projections of a 3D map by the Fourier slice theorem (for the simulator).

Euler angles follow RELION's ZYZ matrix ``A(rot, tilt, psi)``; the projection of a
volume ``V`` (indexed ``[z, y, x]``, centre at ``box//2``) at ``(rot, tilt)`` is
``P0(x, y) = sum_z V(A(rot, tilt, 0)^T (x, y, z))``. The in-plane angle and the origin
follow the README's pose convention (:func:`engine.core.pose.class_to_particle`): the particle
is ``P0`` rotated by ``-psi`` and moved by ``-origin``, i.e. the slice is taken with
RELION's full matrix ``M = A(rot, tilt, psi)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["euler_matrix", "slice_matrices", "Projector", "VolumeProjector", "resample_volume"]


def euler_matrix(rot_deg: np.ndarray, tilt_deg: np.ndarray, psi_deg: np.ndarray) -> np.ndarray:
    """RELION's ``Euler_angles2matrix``: ``(n, 3, 3)`` float64 for angles ``(n,)`` in degrees."""
    a, b, g = (
        np.deg2rad(np.atleast_1d(np.asarray(v, dtype=np.float64)))
        for v in (rot_deg, tilt_deg, psi_deg)
    )
    a, b, g = np.broadcast_arrays(a, b, g)
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    m = np.empty(a.shape + (3, 3))
    m[..., 0, 0] = cg * cc - sg * sa
    m[..., 0, 1] = cg * cs + sg * ca
    m[..., 0, 2] = -cg * sb
    m[..., 1, 0] = -sg * cc - cg * sa
    m[..., 1, 1] = -sg * cs + cg * ca
    m[..., 1, 2] = sg * sb
    m[..., 2, 0] = sc
    m[..., 2, 1] = ss
    m[..., 2, 2] = cb
    return m


def slice_matrices(
    rot_deg: np.ndarray, tilt_deg: np.ndarray, psi_deg: np.ndarray | float
) -> np.ndarray:
    """``M = A(rot, tilt, psi)``, RELION's matrix (README pose convention), ``(n, 3, 3)``."""
    rot = np.atleast_1d(np.asarray(rot_deg, dtype=np.float64))
    psi = np.broadcast_to(np.asarray(psi_deg, dtype=np.float64), rot.shape)
    return euler_matrix(rot, tilt_deg, psi)


@njit(nogil=True, cache=True)
def _fetch(vft: np.ndarray, z: int, y: int, x: int) -> complex:
    p = vft.shape[0]
    if x < 0:
        return np.conj(vft[(-z) % p, (-y) % p, -x])
    return vft[z % p, y % p, x]


@njit(nogil=True, cache=True)
def _slice_kernel(
    vft: np.ndarray,
    mats: np.ndarray,
    pad: float,
    box: int,
    cx: np.ndarray,
    cy: np.ndarray,
    out: np.ndarray,
) -> None:
    """Central slices with trilinear interpolation, times the phase that centres at (cx, cy)."""
    half = box // 2 + 1
    rmax = box // 2 - 1
    rmax2 = rmax * rmax
    phx = np.empty(half, dtype=np.complex128)
    phy = np.empty(box, dtype=np.complex128)
    for i in range(mats.shape[0]):
        m = mats[i]
        for ix in range(half):
            a = -2.0 * np.pi * ix * cx[i] / box
            phx[ix] = complex(np.cos(a), np.sin(a))
        for iy in range(box):
            a = -2.0 * np.pi * (iy if iy < half else iy - box) * cy[i] / box
            phy[iy] = complex(np.cos(a), np.sin(a))
        for iy in range(box):
            ky = iy if iy < half else iy - box
            if ky * ky > rmax2:
                out[i, iy, :] = 0.0
                continue
            for ix in range(half):
                kx = ix
                if kx * kx + ky * ky > rmax2:
                    out[i, iy, ix] = 0.0
                    continue
                x = (m[0, 0] * kx + m[1, 0] * ky) * pad
                y = (m[0, 1] * kx + m[1, 1] * ky) * pad
                z = (m[0, 2] * kx + m[1, 2] * ky) * pad
                x0 = int(np.floor(x))
                y0 = int(np.floor(y))
                z0 = int(np.floor(z))
                fx = x - x0
                fy = y - y0
                fz = z - z0
                v = 0j
                for dz in range(2):
                    wz = fz if dz else 1.0 - fz
                    for dy in range(2):
                        wy = fy if dy else 1.0 - fy
                        for dx in range(2):
                            wx = fx if dx else 1.0 - fx
                            v += wz * wy * wx * _fetch(vft, z0 + dz, y0 + dy, x0 + dx)
                out[i, iy, ix] = v * phx[ix] * phy[iy]


class Projector:
    """Projections from :meth:`slices` (centred half-plane transforms, ``(n, box, box//2+1)``)."""

    box: int

    def slices(
        self,
        rot_deg: np.ndarray,
        tilt_deg: np.ndarray,
        psi_deg: np.ndarray | float,
        origin_x_px: np.ndarray | float,
        origin_y_px: np.ndarray | float,
    ) -> np.ndarray:
        raise NotImplementedError

    def project(
        self,
        rot_deg: np.ndarray,
        tilt_deg: np.ndarray,
        psi_deg: np.ndarray | float = 0.0,
        origin_x_px: np.ndarray | float = 0.0,
        origin_y_px: np.ndarray | float = 0.0,
    ) -> np.ndarray:
        """Real-space projections ``(n, box, box)`` float32 (see :meth:`slices`)."""
        f = self.slices(rot_deg, tilt_deg, psi_deg, origin_x_px, origin_y_px)
        return np.fft.irfft2(f, s=(self.box, self.box)).astype(np.float32)


class VolumeProjector(Projector):
    """Fourier-slice projector of one volume.

    Parameters
    ----------
    volume : (box, box, box) array
        Density indexed ``[z, y, x]``, centre at ``box//2``.
    pad : int
        Real-space zero padding factor (2: accurate trilinear interpolation).
    """

    def __init__(self, volume: np.ndarray, pad: int = 2) -> None:
        v = np.asarray(volume, dtype=np.float32)
        if v.ndim != 3 or len(set(v.shape)) != 1:
            raise ValueError(f"need a cubic volume, got shape {v.shape}")
        self.box = int(v.shape[0])
        self.pad = int(pad)
        size = self.box * self.pad
        big = np.zeros((size, size, size), dtype=np.float32)
        o = size // 2 - self.box // 2
        big[o : o + self.box, o : o + self.box, o : o + self.box] = v
        self.vft = np.fft.rfftn(np.fft.ifftshift(big)).astype(np.complex64)

    def slices(
        self,
        rot_deg: np.ndarray,
        tilt_deg: np.ndarray,
        psi_deg: np.ndarray | float,
        origin_x_px: np.ndarray | float,
        origin_y_px: np.ndarray | float,
    ) -> np.ndarray:
        """Fourier transforms (``np.fft.rfft2`` layout) of posed projections.

        Returns
        -------
        (n, box, box//2 + 1) complex64
            ``irfft2`` gives ``class_to_particle(P0, psi, origin)`` (centre at
            ``box//2 - origin``), up to interpolation error.
        """
        mats = slice_matrices(rot_deg, tilt_deg, psi_deg)
        n = mats.shape[0]
        c = float(self.box // 2)
        cx = c - np.broadcast_to(np.asarray(origin_x_px, dtype=np.float64), (n,))
        cy = c - np.broadcast_to(np.asarray(origin_y_px, dtype=np.float64), (n,))
        out = np.empty((n, self.box, self.box // 2 + 1), dtype=np.complex64)
        _slice_kernel(
            self.vft,
            np.ascontiguousarray(mats),
            float(self.pad),
            self.box,
            np.ascontiguousarray(cx),
            np.ascontiguousarray(cy),
            out,
        )
        return out


def resample_volume(
    volume: np.ndarray, apix_in_A: float, box: int, apix_out_A: float
) -> np.ndarray:
    """Resample a cubic map to ``box^3`` voxels of ``apix_out_A`` (Fourier crop/pad, then
    centre crop/pad in real space). ``(box, box, box)`` float32."""
    v = np.asarray(volume, dtype=np.float32)
    n = v.shape[0]
    if apix_in_A <= 0:
        apix_in_A = apix_out_A
    m = max(2, int(round(n * apix_in_A / apix_out_A)))
    if m != n:
        f = np.fft.fftshift(np.fft.fftn(v))
        g = np.zeros((m, m, m), dtype=np.complex64)
        k = min(m, n)
        a, b = n // 2 - k // 2, m // 2 - k // 2
        g[b : b + k, b : b + k, b : b + k] = f[a : a + k, a : a + k, a : a + k]
        v = (np.fft.ifftn(np.fft.ifftshift(g)).real * (m / n) ** 3).astype(np.float32)
    out = np.zeros((box, box, box), dtype=np.float32)
    k = min(box, m)
    a, b = m // 2 - k // 2, box // 2 - k // 2
    out[b : b + k, b : b + k, b : b + k] = v[a : a + k, a : a + k, a : a + k]
    return out

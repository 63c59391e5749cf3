"""A built-in asymmetric 3D phantom: six well-separated Gaussian blobs of different sizes, a
weak core and an elongated arm.

No two viewing directions give the same projection and no projection has an in-plane
symmetry, so 2D classes of simulated particles are distinct and orientable.

Two shapes (:data:`SHAPES`): ``"compact"`` (globular, about 0.6 box across) and
``"elongated"`` (the same blobs with their centres stretched along x and squeezed along y and
z: about 2.7 : 1, so side views are rods and end views small discs).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.core.projection import Projector

__all__ = [
    "phantom_volume",
    "phantom_radius_px",
    "particle_radius_px",
    "GaussianProjector",
    "SHAPES",
]

# (x, y, z, sigma, amplitude) in units of the particle radius
_BLOBS = np.array(
    [
        (0.70, 0.15, -0.10, 0.18, 1.0),
        (-0.40, 0.65, 0.10, 0.13, 1.2),
        (-0.30, -0.60, 0.45, 0.16, 0.9),
        (0.10, -0.10, -0.75, 0.11, 1.4),
        (0.30, 0.55, 0.65, 0.09, 1.8),
        (0.15, -0.60, -0.30, 0.10, 1.0),
        (0.00, 0.00, 0.00, 0.25, 0.12),  # weak connecting core
    ]
)
_ARM_START = np.array([0.0, 0.0, 0.0])
_ARM_END = np.array([-0.90, -0.30, -0.45])
_ARM_SIGMA, _ARM_AMP = 0.08, 1.1
# per-shape scale of the blob centres along (x, y, z)
_STRETCH = {"compact": (1.0, 1.0, 1.0), "elongated": (1.05, 0.45, 0.45)}
SHAPES = tuple(_STRETCH)


def phantom_radius_px(box: int) -> float:
    """Radius (px) of the phantom particle in a ``box`` (its extent is about 0.6 box)."""
    return 0.3 * box


def _gaussians(box: int, shape: str = "compact") -> np.ndarray:
    if shape not in _STRETCH:
        raise ValueError(f"phantom shape must be one of {', '.join(SHAPES)} (got {shape!r})")
    r = phantom_radius_px(box)
    arm = [
        (*(_ARM_START + t * (_ARM_END - _ARM_START)), _ARM_SIGMA, _ARM_AMP)
        for t in np.linspace(0.0, 1.0, 7)
    ]
    g = np.concatenate([_BLOBS, np.array(arm)])
    g[:, :3] *= np.array(_STRETCH[shape])
    g[:, :4] *= r
    return g


def phantom_volume(box: int, shape: str = "compact") -> np.ndarray:
    """The phantom density (``shape`` in :data:`SHAPES`), ``(box, box, box)`` float32 indexed
    ``[z, y, x]``, centre at ``box//2``, peak about 1."""
    c = box // 2
    ax = np.arange(box, dtype=np.float64) - c
    vol = np.zeros((box, box, box), dtype=np.float64)
    for x, y, z, s, a in _gaussians(box, shape):
        gx = np.exp(-0.5 * ((ax - x) / s) ** 2)
        gy = np.exp(-0.5 * ((ax - y) / s) ** 2)
        gz = np.exp(-0.5 * ((ax - z) / s) ** 2)
        vol += a * gz[:, None, None] * gy[None, :, None] * gx[None, None, :]
    return vol.astype(np.float32)


def particle_radius_px(volume: np.ndarray, fraction: float = 0.97) -> float:
    """Radius (px) of the sphere about the box centre holding ``fraction`` of the positive
    density of ``volume`` (``(box, box, box)``), to 1 px."""
    v = np.clip(np.asarray(volume, dtype=np.float64), 0.0, None)
    box = v.shape[0]
    ax = (np.arange(box) - box // 2) ** 2
    r = np.sqrt(ax[:, None, None] + ax[None, :, None] + ax[None, None, :])
    shells = np.bincount(np.ceil(r).astype(np.int64).ravel(), weights=v.ravel())
    cum = np.cumsum(shells)
    if cum[-1] <= 0:
        return 0.4 * box
    return float(np.searchsorted(cum, fraction * cum[-1]))


class GaussianProjector(Projector):
    """Exact (analytic) projections of the phantom, same interface as
    :class:`engine.core.projection.VolumeProjector`.

    Each 3D Gaussian ``a exp(-|p - p_j|^2 / 2 s^2)`` projects to a 2D Gaussian of peak
    ``a sqrt(2 pi) s`` at ``(M p_j)_xy``; its discrete Fourier transform is computed in
    closed form (separable in kx, ky), so a projection costs a small complex matrix product.
    """

    def __init__(self, box: int, shape: str = "compact") -> None:
        self.box = int(box)
        self.shape = shape
        self.gaussians = _gaussians(self.box, shape)

    def volume(self) -> np.ndarray:
        return phantom_volume(self.box, self.shape)

    def slices(
        self,
        rot_deg: np.ndarray,
        tilt_deg: np.ndarray,
        psi_deg: np.ndarray | float,
        origin_x_px: np.ndarray | float,
        origin_y_px: np.ndarray | float,
    ) -> np.ndarray:
        """``(n, box, box//2 + 1)`` complex64 transforms (``np.fft.rfft2`` layout)."""
        from engine.core.projection import slice_matrices

        box = self.box
        mats = slice_matrices(rot_deg, tilt_deg, psi_deg)  # (n, 3, 3)
        n = mats.shape[0]
        g = self.gaussians
        pos = np.einsum("nij,gj->ngi", mats, g[:, :3])  # (n, G, 3) rotated centres
        c = float(box // 2)
        ox = np.broadcast_to(np.asarray(origin_x_px, dtype=np.float64), (n,))
        oy = np.broadcast_to(np.asarray(origin_y_px, dtype=np.float64), (n,))
        cx = pos[:, :, 0] + (c - ox)[:, None]
        cy = pos[:, :, 1] + (c - oy)[:, None]
        out = np.empty((n, box, box // 2 + 1), dtype=np.complex64)
        _gauss_kernel(
            np.ascontiguousarray(cx),
            np.ascontiguousarray(cy),
            np.ascontiguousarray(g[:, 3]),
            np.ascontiguousarray(g[:, 4]),
            out,
        )
        return out


@njit(nogil=True, cache=True)
def _gauss_kernel(
    cx: np.ndarray, cy: np.ndarray, sigma: np.ndarray, amp: np.ndarray, out: np.ndarray
) -> None:
    """DFTs of sums of 2D Gaussians (projected 3D Gaussians) centred at ``(cx, cy)`` px.

    ``out[i, ky, kx] = sum_g a_g 2 pi s_g^2 sqrt(2 pi) s_g exp(-2 pi^2 s_g^2 |k|^2)
    exp(-2 pi i (kx cx + ky cy) / box)`` on the ``rfft2`` grid (k in cycles per box).
    """
    n, box, half = out.shape
    ng = sigma.shape[0]
    ex = np.empty(half, dtype=np.complex64)
    ey = np.empty(box, dtype=np.complex64)
    for i in range(n):
        out[i] = 0.0
        for g in range(ng):
            s = sigma[g]
            a = amp[g] * np.sqrt(2.0 * np.pi) * s * 2.0 * np.pi * s * s
            for ix in range(half):
                k = ix / box
                ph = -2.0 * np.pi * k * cx[i, g]
                e = np.exp(-2.0 * np.pi * np.pi * s * s * k * k)
                ex[ix] = complex(e * np.cos(ph), e * np.sin(ph))
            for iy in range(box):
                k = (iy if iy < (box + 1) // 2 else iy - box) / box
                ph = -2.0 * np.pi * k * cy[i, g]
                e = a * np.exp(-2.0 * np.pi * np.pi * s * s * k * k)
                ey[iy] = complex(e * np.cos(ph), e * np.sin(ph))
            for iy in range(box):
                w = ey[iy]
                if abs(w.real) + abs(w.imag) < 1e-12 * a:
                    continue
                for ix in range(half):
                    out[i, iy, ix] += w * ex[ix]

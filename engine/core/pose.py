"""The in-plane pose convention (RELION's), and images moved by it.

Array coordinates: ``x`` = column index, ``y`` = row index, centre at ``(box//2, box//2)``.
``R(a) = [[cos a, -sin a], [sin a, cos a]]`` acting on ``(x, y)``.

The model of a particle ``P`` in class ``V`` with pose ``(psi, origin)``::

    P(x) = V(R(psi) (x - c + origin) + c)        (V rotated by -psi, then moved by -origin)

as RELION's ``Euler_angles2matrix(0, 0, psi)`` and ``Projector::rotate2D`` define it (checked
on RELION's own Class2D result of real particles), so a particle's centre sits at
``box centre - origin`` (RELION: re-extraction at ``rlnCoordinateX - rlnOriginX`` re-centres
it). The reverse, which maps a particle onto its class average, is::

    V(y) ~= P(R(-psi) (y - c) + c - origin)

``rlnAnglePsi = psi`` (degrees) and ``rlnOriginXAngst, rlnOriginYAngst = origin * pixel size``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["align_to_class", "class_to_particle", "rotate_vectors", "sample_bilinear"]


def rotate_vectors(angle_rad: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``R(a) v`` for vectors ``v`` (``(..., 2)``, x then y) and angles broadcasting against
    ``v[..., 0]``: how the engine turns a class-frame shift into the particle frame (the
    internal angle, ``a = -rlnAnglePsi``)."""
    a = np.asarray(angle_rad, dtype=np.float64)
    ca, sa = np.cos(a), np.sin(a)
    vx, vy = v[..., 0], v[..., 1]
    return np.stack([ca * vx - sa * vy, sa * vx + ca * vy], axis=-1)


def sample_bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``img`` (``(h, w)``) at float coordinates; 0 outside."""
    h, w = img.shape
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = x - x0
    fy = y - y0
    out = np.zeros(np.shape(x), dtype=np.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi = x0 + dx
            yi = y0 + dy
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = np.where(ok, img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)], 0.0)
            out += wx * wy * vals
    return out


def _grid(box: int) -> tuple[np.ndarray, np.ndarray, float]:
    c = float(box // 2)
    y, x = np.mgrid[0:box, 0:box].astype(np.float64)
    return x - c, y - c, c


def align_to_class(
    image: np.ndarray, psi_deg: float, origin_x_px: float, origin_y_px: float
) -> np.ndarray:
    """Move a particle onto its class average: ``V(y) = P(R(-psi) y + c - origin)``."""
    x, y, c = _grid(image.shape[0])
    a = -np.deg2rad(psi_deg)
    ca, sa = np.cos(a), np.sin(a)
    xs = ca * x - sa * y + c - origin_x_px
    ys = sa * x + ca * y + c - origin_y_px
    return sample_bilinear(np.asarray(image, dtype=np.float64), xs, ys).astype(np.float32)


def class_to_particle(
    ref: np.ndarray, psi_deg: float, origin_x_px: float, origin_y_px: float
) -> np.ndarray:
    """The reverse: rotate a class by ``-psi`` and move it by ``-origin`` (how a particle looks)."""
    x, y, c = _grid(ref.shape[0])
    a = -np.deg2rad(psi_deg)
    ca, sa = np.cos(a), np.sin(a)
    u = x + origin_x_px
    v = y + origin_y_px
    xs = ca * u + sa * v + c
    ys = -sa * u + ca * v + c
    return sample_bilinear(np.asarray(ref, dtype=np.float64), xs, ys).astype(np.float32)

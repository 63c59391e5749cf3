"""Real-space junk images for the simulator: ice blobs/rings and carbon edges.

Both are large features with sharp-ish edges (so the CTF gives them visible fringes); the
simulator applies the CTF and noise afterwards.
"""

from __future__ import annotations

import numpy as np

JUNK_KINDS = ("noise", "ice", "carbon", "aggregate", "offcentre")

__all__ = ["JUNK_KINDS", "ice_image", "carbon_image"]


def _grid(canvas: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:canvas, 0:canvas].astype(np.float64) - canvas // 2
    return x, y


def ice_image(
    box: int, peak: float, rng: np.random.Generator, canvas: int | None = None
) -> np.ndarray:
    """A bright or dark ice blob (disk with a soft edge) or ring, ``(canvas, canvas)`` float32.

    Parameters
    ----------
    box : int
        Particle box (sets the feature sizes); the feature is centred near ``canvas//2``.
    peak : float
        Amplitude scale (the simulator passes the clean particle's peak value).
    canvas : int, optional
        Image size (default ``box``); the simulator draws on a larger canvas, applies the
        CTF there and crops the box, so that nothing wraps around the box edges.
    """
    x, y = _grid(canvas or box)
    cx, cy = rng.uniform(-0.3, 0.3, size=2) * box
    r = np.hypot(x - cx, y - cy)
    radius = rng.uniform(0.15, 0.45) * box
    amp = rng.uniform(1.0, 2.5) * peak * rng.choice([-1.0, 1.0])
    if rng.random() < 0.5:  # a blob (ice crystal) with a sharp but smooth edge
        soft = rng.uniform(1.0, 3.0)
        img = amp * 0.5 * (1.0 - np.tanh((r - radius) / soft))
    else:  # a ring
        width = rng.uniform(1.5, 4.0)
        img = amp * np.exp(-0.5 * ((r - radius) / width) ** 2)
    return img.astype(np.float32)


def carbon_image(
    box: int, peak: float, rng: np.random.Generator, canvas: int | None = None
) -> np.ndarray:
    """A straight carbon edge across the box (a smoothed step with a gradient on the carbon
    side), ``(canvas, canvas)`` float32 (see :func:`ice_image`)."""
    x, y = _grid(canvas or box)
    a = rng.uniform(0.0, 2.0 * np.pi)
    d = x * np.cos(a) + y * np.sin(a) - rng.uniform(-0.3, 0.3) * box
    soft = rng.uniform(0.5, 2.0)
    step = 0.5 * (1.0 + np.tanh(d / soft))
    amp = rng.uniform(0.8, 1.6) * peak
    grad = 1.0 + rng.uniform(-0.4, 0.4) * (x * -np.sin(a) + y * np.cos(a)) / box
    return (amp * step * grad).astype(np.float32)

"""Real-space junk images for the simulator: ice blobs/rings and carbon edges.

Both are smooth, large features; the simulator applies the CTF and noise afterwards.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ice_image", "carbon_image"]


def _grid(box: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:box, 0:box].astype(np.float64) - box // 2
    return x, y


def ice_image(box: int, peak: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth bright or dark ice blob or ring, ``(box, box)`` float32.

    Parameters
    ----------
    peak : float
        Amplitude scale (the simulator passes the clean particle's peak value).
    """
    x, y = _grid(box)
    cx, cy = rng.uniform(-0.3, 0.3, size=2) * box
    r = np.hypot(x - cx, y - cy)
    radius = rng.uniform(0.2, 0.5) * box
    amp = rng.uniform(0.5, 1.2) * peak * rng.choice([-1.0, 1.0])
    if rng.random() < 0.5:
        img = amp * np.exp(-0.5 * (r / radius) ** 2)
    else:
        width = rng.uniform(0.03, 0.08) * box
        img = amp * np.exp(-0.5 * ((r - radius) / width) ** 2)
    return img.astype(np.float32)


def carbon_image(box: int, peak: float, rng: np.random.Generator) -> np.ndarray:
    """A straight carbon edge across the box (a smoothed step with a gradient on the carbon
    side), ``(box, box)`` float32."""
    x, y = _grid(box)
    a = rng.uniform(0.0, 2.0 * np.pi)
    d = x * np.cos(a) + y * np.sin(a) - rng.uniform(-0.3, 0.3) * box
    soft = rng.uniform(0.5, 2.0)
    step = 0.5 * (1.0 + np.tanh(d / soft))
    amp = rng.uniform(0.5, 1.0) * peak
    grad = 1.0 + rng.uniform(-0.4, 0.4) * (x * -np.sin(a) + y * np.cos(a)) / box
    return (amp * step * grad).astype(np.float32)

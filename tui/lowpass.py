"""Low-pass filtering of particle images to a resolution, for looking at them."""

from __future__ import annotations

import numpy as np

__all__ = ["lowpass", "particle_apix"]


def lowpass(img: np.ndarray, apix_A: float, res_A: float, edge_px: float = 2.0) -> np.ndarray:
    """``img`` (``(h, w)``) with spatial frequencies beyond ``1/res_A`` removed.

    A raised-cosine edge ``edge_px`` Fourier pixels wide ends at ``1/res_A``; the mean is
    kept. Returns the image unchanged when the cut-off is at or beyond Nyquist.
    """
    a = np.asarray(img, dtype=np.float64)
    if not (np.isfinite(res_A) and res_A > 0 and apix_A > 0) or res_A <= 2 * apix_A:
        return a.astype(np.float32)
    h, w = a.shape
    fy = np.fft.fftfreq(h)[:, None] / apix_A
    fx = np.fft.rfftfreq(w)[None, :] / apix_A
    f = np.sqrt(fy * fy + fx * fx)  # 1/Å
    fc = 1.0 / res_A
    width = edge_px / (max(h, w) * apix_A)
    t = np.clip((f - (fc - width)) / width, 0.0, 1.0)
    filt = 0.5 * (1.0 + np.cos(np.pi * t))
    return np.fft.irfft2(np.fft.rfft2(a) * filt, s=(h, w)).astype(np.float32)


def particle_apix(class_apix_A: float, class_box: int, particle_box: int) -> float:
    """Pixel size of the input particles: the classes are Fourier-cropped particles, so the
    field of view is the same (``class_apix * class_box / particle_box``)."""
    if particle_box <= 0:
        return class_apix_A
    return class_apix_A * class_box / particle_box

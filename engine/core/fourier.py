"""Fourier cropping, masks, normalisation and centred transforms on small boxes.

Conventions: images are ``(ny, nx)`` float32 arrays with x = column; the centre is pixel
``(box//2, box//2)``. Centred half-plane transforms (:func:`centred_rfft2`) put that centre at the
phase origin, are normalised like an orthonormal DFT of the *unpadded* image (so white noise of
variance v has E|X|^2 = v at every frequency) and may be zero-padded by an integer factor for
accurate interpolation.
"""

from __future__ import annotations

import numpy as np

from engine.core import fft as _fft

__all__ = [
    "small_box_size",
    "fourier_crop",
    "soft_circular_mask",
    "normalise_background",
    "move_images",
    "centred_rfft2",
    "centred_irfft2",
    "shell_index",
    "radial_average",
    "gridding_correction",
]


def small_box_size(box: int, apix_A: float, max_res_A: float) -> int:
    """Smallest even box whose Nyquist reaches ``max_res_A`` (never larger than ``box``)."""
    b = int(np.ceil(2.0 * box * apix_A / max_res_A))
    b += b % 2
    return int(min(max(b, 16), box)) if box >= 16 else box


def fourier_crop(images: np.ndarray, b: int) -> np.ndarray:
    """Fourier-crop ``(n, B, B)`` images to ``(n, b, b)`` float32, keeping pixel-value scale."""
    n, B, _ = images.shape
    if b == B:
        return np.ascontiguousarray(images, dtype=np.float32)
    F = _fft.rfft2(images.astype(np.float32, copy=False))
    h = b // 2
    Fc = np.zeros((n, b, h + 1), dtype=F.dtype)
    Fc[:, :h, :h] = F[:, :h, :h]
    Fc[:, b - h + 1 :, :h] = F[:, B - h + 1 :, :h]  # drop the Nyquist row/column: keeps Hermitian
    out = _fft.irfft2(Fc, s=(b, b)) * (float(b * b) / float(B * B))
    return out.astype(np.float32)


def soft_circular_mask(box: int, radius_px: float, outer_px: float | None = None) -> np.ndarray:
    """``(box, box)`` float32: 1 inside ``radius_px``, cosine edge to ``outer_px``, then 0."""
    y, x = np.mgrid[0:box, 0:box].astype(np.float64) - box // 2
    r = np.hypot(x, y)
    outer = radius_px if outer_px is None else max(outer_px, radius_px)
    m = np.zeros((box, box))
    m[r <= radius_px] = 1.0
    edge = (r > radius_px) & (r < outer)
    if outer > radius_px:
        m[edge] = 0.5 * (1.0 + np.cos(np.pi * (r[edge] - radius_px) / (outer - radius_px)))
    return m.astype(np.float32)


def normalise_background(images: np.ndarray, radius_px: float) -> np.ndarray:
    """Subtract the mean and divide by the std. dev. of the pixels outside ``radius_px``.

    ``(n, B, B)`` -> float32 copy. Falls back to the whole image when the background is empty
    or flat (a constant image stays zero instead of dividing by zero).
    """
    n, B, _ = images.shape
    y, x = np.mgrid[0:B, 0:B] - B // 2
    bg = np.hypot(x, y) > radius_px
    if bg.sum() < 16:
        bg = np.ones((B, B), dtype=bool)
    imgs = images.astype(np.float32, copy=True)
    vals = imgs[:, bg]
    mean = vals.mean(axis=1)
    std = vals.std(axis=1)
    std[std < 1e-12] = 1.0
    imgs -= mean[:, None, None]
    imgs /= std[:, None, None]
    return imgs


def move_images(images: np.ndarray, d_px: np.ndarray) -> np.ndarray:
    """Move the content of ``(n, b, b)`` images by ``d_px`` ``(n, 2)`` (x, y) pixels (a
    Fourier phase ramp: sub-pixel, periodic, so what leaves one edge enters the opposite
    one). Returns float32."""
    n, b, _ = images.shape
    d = np.asarray(d_px, dtype=np.float64).reshape(n, 2)
    # the ramp is separable: one exp per row and per column frequency, not per pixel
    ey = np.exp(-2j * np.pi * np.fft.fftfreq(b)[None, :] * d[:, 1, None]).astype(np.complex64)
    ex = np.exp(-2j * np.pi * np.fft.rfftfreq(b)[None, :] * d[:, 0, None]).astype(np.complex64)
    F = _fft.rfft2(images.astype(np.float32, copy=False))
    F *= ey[:, :, None]
    F *= ex[:, None, :]
    return np.asarray(_fft.irfft2(F, s=(b, b)), dtype=np.float32)


def centred_rfft2(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """Half-plane DFT of ``(n, b, b)`` images with the centre pixel as phase origin.

    Zero-pads to ``pad * b``; frequency index ``(j, i)`` of the result is ``(ky, kx) * pad``
    in units of the unpadded box. Scaled by ``1/b`` (orthonormal for the unpadded image).
    Returns ``(n, pad*b, pad*b//2 + 1)`` complex64.
    """
    n, b, _ = images.shape
    P = pad * b
    h = b // 2
    r = b - h
    buf = np.zeros((n, P, P), dtype=np.float32)
    # the centre pixel goes to index 0, the rest wraps around (ifftshift of a centred pad)
    buf[:, :r, :r] = images[:, h:, h:]
    buf[:, :r, P - h :] = images[:, h:, :h]
    buf[:, P - h :, :r] = images[:, :h, h:]
    buf[:, P - h :, P - h :] = images[:, :h, :h]
    F = _fft.rfft2(buf)
    F *= 1.0 / b
    return F.astype(np.complex64, copy=False)


def gridding_correction(b: int, pad: int) -> np.ndarray:
    """``(b, b)`` float32 factor that undoes the attenuation of bilinear interpolation in a
    ``pad``-times zero-padded transform: sampling between grid points multiplies the image by
    ``sinc^2(x / (pad b)) sinc^2(y / (pad b))`` (x, y from the centre pixel); multiplying the
    image by this factor before :func:`centred_rfft2` makes the samples unbiased."""
    x = np.arange(b, dtype=np.float64) - b // 2
    s = np.sinc(x / (pad * b)) ** 2
    return (1.0 / np.outer(s, s)).astype(np.float32)


def centred_irfft2(F: np.ndarray, b: int) -> np.ndarray:
    """Inverse of :func:`centred_rfft2` with ``pad=1``: ``(n, b, b//2+1)`` -> ``(n, b, b)``."""
    img = np.fft.irfft2(np.asarray(F, dtype=np.complex128) * b, s=(b, b))
    return np.fft.fftshift(img, axes=(-2, -1)).astype(np.float32)


def shell_index(b: int) -> np.ndarray:
    """Integer radius (Fourier px) of each half-plane frequency of a ``b`` box: ``(b, b//2+1)``."""
    ky = np.fft.fftfreq(b) * b
    kx = np.arange(b // 2 + 1, dtype=np.float64)
    return np.rint(np.hypot(ky[:, None], kx[None, :])).astype(np.int64)


def radial_average(values: np.ndarray, shells: np.ndarray, n_shells: int) -> np.ndarray:
    """Mean of ``values`` (``(..., b, b//2+1)``) per integer shell: ``(..., n_shells)``."""
    flat = shells.ravel()
    ok = flat < n_shells
    cnt = np.bincount(flat[ok], minlength=n_shells).astype(np.float64)
    cnt[cnt == 0] = 1.0
    v = values.reshape(values.shape[:-2] + (-1,))[..., ok]
    out = np.zeros(values.shape[:-2] + (n_shells,))
    it = np.ndindex(values.shape[:-2]) if values.ndim > 2 else [()]
    for idx in it:
        out[idx] = np.bincount(flat[ok], weights=v[idx], minlength=n_shells) / cnt
    return out

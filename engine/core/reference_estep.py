"""The plain E-step: every pose of every (particle, class) pair scored directly in Cartesian
Fourier space, one rotated reference at a time. Slow and obvious; the fast polar E-step
(:mod:`engine.core.estep`) is tested against it and ``benchmarks/speed.py`` times both.

For rotation ``psi`` (class turned by +psi, as :class:`engine.core.estep.Scores` indexes it) and
particle shift ``t``::

    L = -1/2 sum_k w(|k|) |X(k) - C(k) V(R(-psi) k) e^{-2 pi i k.t / b}|^2

over the half plane's frequencies with ``1 <= |k| <= r_max`` (counted twice, as the full plane
is), ``w = 1/sigma2`` of the rounded radius. ``V(R(-psi) k)`` is interpolated bilinearly from the
reference's 2x padded transform, X is the particle's plain transform.
"""

from __future__ import annotations

import numpy as np

from engine.core.ctf import CtfParams, evaluate_ctf
from engine.core.estep import PAD, PolarGrid
from engine.core.fourier import centred_rfft2

__all__ = ["plain_scores"]


def _interp(F: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """Bilinear sample of a padded half-plane DFT ``(P, P//2+1)`` at padded coordinates."""
    P = F.shape[0]
    neg = kx < 0
    kx = np.where(neg, -kx, kx)
    ky = np.where(neg, -ky, ky)
    x0 = np.floor(kx).astype(int)
    y0 = np.floor(ky).astype(int)
    fx, fy = kx - x0, ky - y0
    x1 = np.minimum(x0 + 1, F.shape[1] - 1)
    v = (
        (1 - fx) * (1 - fy) * F[y0 % P, x0]
        + fx * (1 - fy) * F[y0 % P, x1]
        + (1 - fx) * fy * F[(y0 + 1) % P, x0]
        + fx * fy * F[(y0 + 1) % P, x1]
    )
    return np.where(neg, np.conj(v), v)


def plain_scores(
    images: np.ndarray,
    refs: np.ndarray,
    ctf: CtfParams | None,
    grid: PolarGrid,
    inv_sigma2_shell: np.ndarray,
) -> np.ndarray:
    """``(n, K, T, n_psi)`` float64 log-likelihoods of masked small-box particles and references.

    ``inv_sigma2_shell``: 1/sigma2 per integer shell (index = radius in Fourier px).
    """
    n, b, _ = images.shape
    K = refs.shape[0]
    H = b // 2 + 1
    qy = np.fft.fftfreq(b) * b
    qy, qx = np.meshgrid(qy, np.arange(H), indexing="ij")
    sh = np.rint(np.hypot(qx, qy)).astype(int)
    sel = (sh >= 1) & (sh <= grid.r_max)
    kx, ky, w = qx[sel], qy[sel], inv_sigma2_shell[sh[sel]]
    X = centred_rfft2(images, 1)[:, sel]  # (n, P)
    C = (
        evaluate_ctf(ctf, kx / (b * grid.apix_A), ky / (b * grid.apix_A))
        if ctf is not None
        else np.ones((n, kx.size))
    )
    Fr = centred_rfft2(refs, PAD)
    out = np.empty((n, K, len(grid.shifts), grid.n_psi))
    for j in range(grid.n_psi):
        a = 2 * np.pi * j / grid.n_psi
        c, s = np.cos(-a), np.sin(-a)
        ux, uy = c * kx - s * ky, s * kx + c * ky  # R(-psi) k
        V = np.stack([_interp(Fr[k], ux * PAD, uy * PAD) for k in range(K)])  # (K, P)
        ca, sa = np.cos(a), np.sin(a)
        for t, tp in enumerate(grid.shifts):
            tx, ty = ca * tp[0] - sa * tp[1], sa * tp[0] + ca * tp[1]  # particle shift
            ph = np.exp(-2j * np.pi * (kx * tx + ky * ty) / b)
            model = C[:, None, :] * (V * ph)[None]  # (n, K, P)
            d = X[:, None, :] - model
            out[:, :, t, j] = -np.sum(w * (d.real**2 + d.imag**2), axis=2)  # x2 half plane
    return out

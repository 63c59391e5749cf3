"""Slow, obvious numpy twins of the engine's fast kernels (see STYLE: every kernel has one)."""

from __future__ import annotations

import numpy as np

from engine.core.ctf import CtfParams, evaluate_ctf


def nudft(img: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """Exact DFT of ``img`` (centre pixel = phase origin, scaled 1/b) at any frequencies
    ``(kx, ky)`` in Fourier pixels of its box."""
    b = img.shape[0]
    y, x = np.mgrid[0:b, 0:b].astype(np.float64) - b // 2
    ph = np.exp(-2j * np.pi * (np.multiply.outer(kx, x) + np.multiply.outer(ky, y)) / b)
    return (ph * img).sum(axis=(-1, -2)) / b


def polar_points(radii: np.ndarray, n_psi: int) -> tuple[np.ndarray, np.ndarray]:
    a = 2 * np.pi * np.arange(n_psi) / n_psi
    return radii[:, None] * np.cos(a)[None], radii[:, None] * np.sin(a)[None]


def loglik_brute(
    particle: np.ndarray,
    ref: np.ndarray,
    ctf: CtfParams | None,
    apix_A: float,
    psi_int_rad: float,
    t: np.ndarray,
    inv_sigma2_r: np.ndarray,
    radii: np.ndarray,
) -> float:
    """-1/2 sum_k |X - C V(R(-psi) k) e^{-2 pi i k.t/b}|^2 / sigma2 over the Cartesian pixels
    whose rounded radius lies in ``radii`` (full plane), by exact DFTs."""
    b = particle.shape[0]
    ky, kx = np.mgrid[0:b, 0:b].astype(np.float64) - b // 2
    r = np.rint(np.hypot(kx, ky)).astype(int)
    sel = (r >= radii.min()) & (r <= radii.max())
    kx, ky, r = kx[sel], ky[sel], r[sel]
    X = nudft(particle, kx, ky)
    c, s = np.cos(-psi_int_rad), np.sin(-psi_int_rad)
    V = nudft(ref, c * kx - s * ky, s * kx + c * ky)
    C = evaluate_ctf(ctf, kx / (b * apix_A), ky / (b * apix_A))[0] if ctf is not None else 1.0
    model = C * V * np.exp(-2j * np.pi * (kx * t[0] + ky * t[1]) / b)
    w = inv_sigma2_r[np.searchsorted(radii, r)]
    return float(-0.5 * np.sum(w * np.abs(X - model) ** 2))


def mstep_brute(
    particle: np.ndarray,
    ctf: CtfParams | None,
    apix_A: float,
    w: float,
    psi_int_rad: float,
    t: np.ndarray,
    inv_sigma2: np.ndarray,
    r_max: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One pair's contribution to (num, den) on the half plane, by exact DFTs."""
    b = particle.shape[0]
    H = b // 2 + 1
    qy = np.fft.fftfreq(b) * b
    qy, qx = np.meshgrid(qy, np.arange(H), indexing="ij")
    sh = np.rint(np.hypot(qx, qy)).astype(int)
    c, s = np.cos(psi_int_rad), np.sin(psi_int_rad)
    px, py = c * qx - s * qy, s * qx + c * qy
    X = nudft(particle, px, py) * np.exp(2j * np.pi * (px * t[0] + py * t[1]) / b)
    C = evaluate_ctf(ctf, px / (b * apix_A), py / (b * apix_A))[0] if ctf is not None else 1.0
    s2 = inv_sigma2[np.minimum(sh, len(inv_sigma2) - 1)]
    num = np.where(sh <= r_max, w * C * s2 * X, 0)
    den = np.where(sh <= r_max, w * C * C * s2, 0)
    return num, den


def residual_sums_brute(
    particle: np.ndarray,
    ref_half: np.ndarray,
    ctf: CtfParams | None,
    apix_A: float,
    psi_int_rad: float,
    t: np.ndarray,
    sigma2: np.ndarray,
    r_lo: float,
    r_hi: float,
) -> np.ndarray:
    """Twin of engine.core.kernels.residual_band_sums for one particle, by exact DFTs: the sums
    ``|x|^2, Re(x m*), |m|^2, |m|^2 sigma2`` over the half-plane band, with ``x`` the particle
    in its class frame and ``m = CTF x ref_half`` (``(b, b//2+1)`` centred transform)."""
    b = particle.shape[0]
    H = b // 2 + 1
    qy = np.fft.fftfreq(b) * b
    qy, qx = np.meshgrid(qy, np.arange(H), indexing="ij")
    rad = np.hypot(qx, qy)
    band = (rad >= r_lo) & (rad <= r_hi)
    c, s = np.cos(psi_int_rad), np.sin(psi_int_rad)
    px, py = c * qx - s * qy, s * qx + c * qy
    X = nudft(particle, px, py) * np.exp(2j * np.pi * (px * t[0] + py * t[1]) / b)
    C = evaluate_ctf(ctf, px / (b * apix_A), py / (b * apix_A))[0] if ctf is not None else 1.0
    m = C * ref_half
    s2 = sigma2[np.minimum(np.rint(rad).astype(int), len(sigma2) - 1)]
    mm = np.abs(m) ** 2
    return np.array(
        [
            np.sum(np.abs(X[band]) ** 2),
            np.sum((X * np.conj(m)).real[band]),
            np.sum(mm[band]),
            np.sum((mm * s2)[band]),
        ]
    )


def best_poses_naive(
    cross: np.ndarray, ctf2: np.ndarray, xpow: np.ndarray, prior: np.ndarray, inv_A: float
) -> tuple[np.ndarray, ...]:
    """Twin of engine.core.kernels.fused_best_poses from the full score array (n, K, T, P)."""
    n, K, T, P = cross.shape
    prior = np.broadcast_to(prior, (n, prior.shape[-1]))  # (T,) or per particle (n, T)
    S = ((cross - 0.5 * ctf2[:, :, None]) - 0.5 * xpow[:, None, None, None]) * inv_A + prior[
        :, None, :, None
    ]
    flat = S.reshape(n, K, T * P)
    best = flat.argmax(axis=2)
    t, j = np.divmod(best, P)
    s = flat.max(axis=2)
    sel = np.take_along_axis(S, t[..., None, None], axis=2)[:, :, 0, :]
    sm = np.take_along_axis(sel, ((j - 1) % P)[..., None], axis=2)[..., 0]
    sp = np.take_along_axis(sel, ((j + 1) % P)[..., None], axis=2)[..., 0]
    lb = (s - np.take_along_axis(prior, t, axis=1)) / inv_A
    return s, t, j, sm, sp, lb

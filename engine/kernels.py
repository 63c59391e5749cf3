"""numba kernels: plain arrays and scalars in, arrays out. No I/O, no Python objects.

Each kernel has one ``@njit`` wrapper (see STYLE: two wrappers of one function share a cache
entry). Every kernel has a slow numpy twin in ``tests/naive.py`` that the tests compare against.

CTF parameter rows are ``(defocus_u_A, defocus_v_A, angle_deg, voltage_kV, cs_mm, Q,
phase_shift_deg, bfactor_A2)`` as :meth:`engine.ctf.CtfParams.as_matrix` gives them.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["polar_sample", "ctf_polar", "mstep_accumulate", "ctf_at"]

_NJ = dict(nogil=True, cache=True, fastmath=False)


@numba.njit(**_NJ)
def ctf_at(m: np.ndarray, kx: float, ky: float, intact_first_peak: bool) -> float:
    """CTF of parameter row ``m`` at spatial frequency ``(kx, ky)`` in 1/Angstrom."""
    v = m[3] * 1e3
    lam = 12.2642598 / math.sqrt(v * (1.0 + 0.978466e-6 * v))
    k2 = kx * kx + ky * ky
    th = math.atan2(ky, kx)
    dz = 0.5 * (m[0] + m[1]) + 0.5 * (m[0] - m[1]) * math.cos(2.0 * (th - m[2] * math.pi / 180.0))
    q = m[5]
    w = math.atan2(q, math.sqrt(max(1.0 - q * q, 0.0)))
    chi = (math.pi * lam * dz * k2 - 0.5 * math.pi * m[4] * 1e7 * lam * lam * lam * k2 * k2
           + m[6] * math.pi / 180.0 + w)
    if intact_first_peak and chi < 0.5 * math.pi:
        val = 1.0
    else:
        val = math.sin(chi)
    if m[7] != 0.0:
        val *= math.exp(-0.25 * m[7] * k2)
    return val


@numba.njit(**_NJ)
def _interp_half(F: np.ndarray, i: int, kx: float, ky: float) -> complex:
    """Bilinear sample of half-plane DFT ``F[i]`` (``(P, P//2+1)``) at padded index (kx, ky)."""
    P = F.shape[1]
    H = F.shape[2]
    conj = False
    if kx < 0.0:
        kx = -kx
        ky = -ky
        conj = True
    x0 = int(math.floor(kx))
    y0 = int(math.floor(ky))
    fx = kx - x0
    fy = ky - y0
    x1 = x0 + 1
    if x1 >= H:
        x1 = H - 1
    ya = y0 % P
    yb = (y0 + 1) % P
    v = ((1.0 - fx) * (1.0 - fy) * F[i, ya, x0] + fx * (1.0 - fy) * F[i, ya, x1]
         + (1.0 - fx) * fy * F[i, yb, x0] + fx * fy * F[i, yb, x1])
    if conj:
        return v.conjugate()
    return v


@numba.njit(parallel=True, **_NJ)
def polar_sample(F: np.ndarray, pad: int, radii: np.ndarray, n_psi: int) -> np.ndarray:
    """Sample padded centred half-plane DFTs on polar rings.

    F: ``(n, P, P//2+1)`` complex64 from ``centred_rfft2(.., pad)``; radii ``(R,)`` in Fourier
    pixels of the unpadded box. Returns ``(n, R, n_psi)`` complex64, angle ``2*pi*j/n_psi``
    measured from +x towards +y.
    """
    n = F.shape[0]
    R = radii.shape[0]
    out = np.empty((n, R, n_psi), dtype=np.complex64)
    cs = np.empty(n_psi)
    sn = np.empty(n_psi)
    for j in range(n_psi):
        a = 2.0 * math.pi * j / n_psi
        cs[j] = math.cos(a)
        sn[j] = math.sin(a)
    for i in numba.prange(n):
        for r in range(R):
            rr = radii[r] * pad
            for j in range(n_psi):
                out[i, r, j] = _interp_half(F, i, rr * cs[j], rr * sn[j])
    return out


@numba.njit(parallel=True, **_NJ)
def ctf_polar(ctfm: np.ndarray, radii_invA: np.ndarray, n_psi: int,
              intact_first_peak: bool) -> np.ndarray:
    """CTF of each particle on the polar grid: ``(n, R, n_psi)`` float32."""
    n = ctfm.shape[0]
    R = radii_invA.shape[0]
    out = np.empty((n, R, n_psi), dtype=np.float32)
    for i in numba.prange(n):
        for r in range(R):
            for j in range(n_psi):
                a = 2.0 * math.pi * j / n_psi
                out[i, r, j] = ctf_at(ctfm[i], radii_invA[r] * math.cos(a),
                                      radii_invA[r] * math.sin(a), intact_first_peak)
    return out


@numba.njit(parallel=True, **_NJ)
def mstep_accumulate(F: np.ndarray, pad: int, b: int, ctfm: np.ndarray, use_ctf: bool,
                     intact_first_peak: bool, apix_A: float,
                     p_idx: np.ndarray, p_cls: np.ndarray, p_w: np.ndarray,
                     p_psi: np.ndarray, p_tx: np.ndarray, p_ty: np.ndarray,
                     cls_start: np.ndarray, inv_sigma2: np.ndarray, refs: np.ndarray,
                     r_max: int, num: np.ndarray, den: np.ndarray,
                     noise: np.ndarray, noise_w: np.ndarray) -> None:
    """Add particle-class pairs to the class sums (in place), Cartesian half plane of box ``b``.

    Pairs are sorted by class; ``cls_start`` (K+1) delimits each class's pairs, and classes run
    in parallel, so the sums are deterministic. For pair p (particle ``p_idx``, class
    ``p_cls``, weight ``p_w``, pose ``psi`` rad and particle shift ``(tx, ty)`` small px) and
    class frequency q: ``X(R q) e^{+2 pi i (Rq).t / b}`` is the particle's value mapped onto the
    class frame. Accumulates ``num += w CTF X' / sigma2``, ``den += w CTF^2 / sigma2`` and the
    residual power against ``refs`` (the references used in the E-step) per shell:
    ``noise[c, shell] += w |X' - CTF V|^2``, ``noise_w[c, shell] += w``.
    """
    K = num.shape[0]
    H = b // 2 + 1
    for c in numba.prange(K):
        for p in range(cls_start[c], cls_start[c + 1]):
            i = p_idx[p]
            w = p_w[p]
            ca = math.cos(p_psi[p])
            sa = math.sin(p_psi[p])
            tx = p_tx[p]
            ty = p_ty[p]
            for yy in range(b):
                qy = yy if yy < b // 2 else yy - b
                for qx in range(H):
                    rad = math.sqrt(qx * qx + qy * qy)
                    sh = int(rad + 0.5)
                    if sh > r_max:
                        continue
                    px = ca * qx - sa * qy
                    py = sa * qx + ca * qy
                    x = _interp_half(F, i, px * pad, py * pad)
                    ph = 2.0 * math.pi * (px * tx + py * ty) / b
                    x = x * complex(math.cos(ph), math.sin(ph))
                    if use_ctf:
                        ctf = ctf_at(ctfm[i], px / (b * apix_A), py / (b * apix_A),
                                     intact_first_peak)
                    else:
                        ctf = 1.0
                    s = inv_sigma2[sh]
                    num[c, yy, qx] += w * ctf * s * x
                    den[c, yy, qx] += w * ctf * ctf * s
                    d = x - ctf * refs[c, yy, qx]
                    noise[c, sh] += w * (d.real * d.real + d.imag * d.imag)
                    noise_w[c, sh] += w

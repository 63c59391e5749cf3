"""numba kernels: plain arrays and scalars in, arrays out. No I/O, no Python objects.

Each kernel has one ``@njit`` wrapper (see STYLE: two wrappers of one function share a cache
entry). Every kernel has a slow numpy twin in ``tests/naive.py`` that the tests compare against.

CTF parameter rows are ``(defocus_u_A, defocus_v_A, angle_deg, voltage_kV, cs_mm, Q,
phase_shift_deg, bfactor_A2)`` as :meth:`engine.core.ctf.CtfParams.as_matrix` gives them.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "polar_sample",
    "ctf_polar",
    "mstep_accumulate",
    "fused_best_poses",
    "residual_band_sums",
    "ctf_coefficients",
]

_NJ = dict(nogil=True, cache=True, fastmath=False)


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
    v = (
        (1.0 - fx) * (1.0 - fy) * F[i, ya, x0]
        + fx * (1.0 - fy) * F[i, ya, x1]
        + (1.0 - fx) * fy * F[i, yb, x0]
        + fx * fy * F[i, yb, x1]
    )
    if conj:
        return v.conjugate()
    return v


@numba.njit(**_NJ)
def _angle_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the angles ``2 pi j / n``."""
    cs = np.empty(n)
    sn = np.empty(n)
    for j in range(n):
        a = 2.0 * math.pi * j / n
        cs[j] = math.cos(a)
        sn[j] = math.sin(a)
    return cs, sn


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
    cs, sn = _angle_table(n_psi)
    for i in numba.prange(n):
        for r in range(R):
            rr = radii[r] * pad
            for j in range(n_psi):
                out[i, r, j] = _interp_half(F, i, rr * cs[j], rr * sn[j])
    return out


@numba.njit(parallel=True, **_NJ)
def ctf_polar(
    ctfm: np.ndarray, radii_invA: np.ndarray, n_psi: int, intact_first_peak: bool
) -> np.ndarray:
    """CTF of each particle on the polar grid: ``(n, R, n_psi)`` float32."""
    n = ctfm.shape[0]
    R = radii_invA.shape[0]
    out = np.empty((n, R, n_psi), dtype=np.float32)
    cs, sn = _angle_table(n_psi)
    for i in numba.prange(n):
        co = ctf_coefficients(ctfm[i], 1.0, 0.0)
        for r in range(R):
            for j in range(n_psi):
                out[i, r, j] = _ctf_fast(
                    co, radii_invA[r] * cs[j], radii_invA[r] * sn[j], intact_first_peak
                )
    return out


@numba.njit(**_NJ)
def ctf_coefficients(
    m: np.ndarray, scale: float, rot: float
) -> tuple[float, float, float, float, float, float]:
    """Polynomial form of the CTF phase for fast evaluation at many frequencies.

    For frequency ``(u, v) * scale`` (1/Angstrom) of a frame rotated by ``rot`` radians from
    the particle's: ``chi = a (u^2 + v^2) + c2 (u^2 - v^2) + s2 (2 u v) - d (u^2 + v^2)^2 + e``
    and ``CTF = sin(chi) * exp(-bf (u^2 + v^2))``. Returns ``(a, c2, s2, d, e, bf)``.
    """
    v = m[3] * 1e3
    lam = 12.2642598 / math.sqrt(v * (1.0 + 0.978466e-6 * v))
    q = m[5]
    w = math.atan2(q, math.sqrt(max(1.0 - q * q, 0.0)))
    s2 = scale * scale
    mean = 0.5 * (m[0] + m[1])
    dev = 0.5 * (m[0] - m[1])
    phi = m[2] * math.pi / 180.0 - rot
    a = math.pi * lam * mean * s2
    c2 = math.pi * lam * dev * math.cos(2.0 * phi) * s2
    sn2 = math.pi * lam * dev * math.sin(2.0 * phi) * s2
    d = 0.5 * math.pi * m[4] * 1e7 * lam * lam * lam * s2 * s2
    e = m[6] * math.pi / 180.0 + w
    bf = 0.25 * m[7] * s2
    return a, c2, sn2, d, e, bf


@numba.njit(**_NJ)
def _ctf_fast(
    co: tuple[float, float, float, float, float, float], u: float, v: float, intact_first_peak: bool
) -> float:
    a, c2, s2, d, e, bf = co
    k2 = u * u + v * v
    chi = a * k2 + c2 * (u * u - v * v) + s2 * 2.0 * u * v - d * k2 * k2 + e
    if intact_first_peak and chi < 0.5 * math.pi:
        val = 1.0
    else:
        val = math.sin(chi)
    if bf != 0.0:
        val *= math.exp(-bf * k2)
    return val


@numba.njit(parallel=True, **_NJ)
def mstep_accumulate(
    F: np.ndarray,
    pad: int,
    b: int,
    ctfm: np.ndarray,
    use_ctf: bool,
    intact_first_peak: bool,
    apix_A: float,
    p_idx: np.ndarray,
    p_cls: np.ndarray,
    p_w: np.ndarray,
    p_psi: np.ndarray,
    p_tx: np.ndarray,
    p_ty: np.ndarray,
    cls_start: np.ndarray,
    inv_sigma2: np.ndarray,
    refs: np.ndarray,
    r_max: int,
    num: np.ndarray,
    den: np.ndarray,
    noise: np.ndarray,
    noise_w: np.ndarray,
) -> None:
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
    P = F.shape[1]
    HP = F.shape[2]
    scale = 1.0 / (b * apix_A)
    # shell of each half-plane frequency, and the last qx inside r_max on each row
    shell = np.empty((b, H), dtype=np.int64)
    row_end = np.zeros(b, dtype=np.int64)
    for yy in range(b):
        qy = yy if yy < b // 2 else yy - b
        for qx in range(H):
            shell[yy, qx] = int(math.sqrt(qx * qx + qy * qy) + 0.5)
            if shell[yy, qx] <= r_max:
                row_end[yy] = qx + 1
    for c in numba.prange(K):
        for p in range(cls_start[c], cls_start[c + 1]):
            i = p_idx[p]
            w = p_w[p]
            ca = math.cos(p_psi[p])
            sa = math.sin(p_psi[p])
            tx = p_tx[p]
            ty = p_ty[p]
            # CTF of the particle, written in the class frame (astigmatism angle turned)
            if use_ctf:
                co = ctf_coefficients(ctfm[i], scale, p_psi[p])
            else:
                co = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            dph = 2.0 * math.pi * (ca * tx + sa * ty) / b
            step = complex(math.cos(dph), math.sin(dph))
            for yy in range(b):
                qy = yy if yy < b // 2 else yy - b
                # q = (0, qy) -> p = R q = (-sa qy, ca qy)
                ph0 = 2.0 * math.pi * ((-sa * qy) * tx + (ca * qy) * ty) / b
                phasor = complex(math.cos(ph0), math.sin(ph0))
                for qx in range(row_end[yy]):
                    sh = shell[yy, qx]
                    kx = (ca * qx - sa * qy) * pad
                    ky = (sa * qx + ca * qy) * pad
                    neg = kx < 0.0
                    if neg:
                        kx = -kx
                        ky = -ky
                    x0 = int(kx)
                    fy0 = math.floor(ky)
                    y0 = int(fy0)
                    fx = kx - x0
                    fy = ky - fy0
                    x1 = x0 + 1 if x0 + 1 < HP else HP - 1
                    ya = y0 if y0 >= 0 else y0 + P
                    yb = ya + 1 if ya + 1 < P else 0
                    v = (
                        (1.0 - fx) * (1.0 - fy) * F[i, ya, x0]
                        + fx * (1.0 - fy) * F[i, ya, x1]
                        + (1.0 - fx) * fy * F[i, yb, x0]
                        + fx * fy * F[i, yb, x1]
                    )
                    if neg:
                        v = v.conjugate()
                    x = v * phasor
                    phasor *= step
                    if use_ctf:
                        ctf = _ctf_fast(co, qx, qy, intact_first_peak)
                    else:
                        ctf = 1.0
                    s = inv_sigma2[sh]
                    num[c, yy, qx] += w * ctf * s * x
                    den[c, yy, qx] += w * ctf * ctf * s
                    d = x - ctf * refs[c, yy, qx]
                    noise[c, sh] += w * (d.real * d.real + d.imag * d.imag)
                    noise_w[c, sh] += w


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True)
def fused_best_poses(
    S: np.ndarray,
    G: np.ndarray,
    ctf2: np.ndarray,
    xpow: np.ndarray,
    prior: np.ndarray,
    inv_A: float,
    T: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best pose of every (particle, class) pair ("force max over poses/shifts"), straight
    from the angular spectra, without the score array.

    Score ``S = L / A + prior[i, t]`` with ``L = cross - ctf2/2 - xpow/2`` (see
    :class:`engine.core.estep.Scores`). Returns per ``(n, K)``: best S, its shift index t and
    rotation index j, S at rotations j-1 and j+1 (same t, for sub-step refinement), and L at
    the best pose.

    ``S``: ``(M, n, K*T)`` complex64 sums over rings per angular frequency (class-major
    columns); ``G``: ``(2M, n_psi)`` float32 inverse real DFT (rows Re m, Im m) so that the
    cross term of rotation j is ``sum_m Re S_m G[2m, j] + Im S_m G[2m+1, j]``; ``ctf2``:
    ``(n, K, n_psi)``; ``prior``: ``(n, T)`` log prior of each particle's shifts.
    """
    M, n, KT = S.shape
    K = KT // T
    P = G.shape[1]
    sbest = np.empty((n, K))
    tbest = np.empty((n, K), dtype=np.int64)
    jbest = np.empty((n, K), dtype=np.int64)
    sminus = np.empty((n, K))
    splus = np.empty((n, K))
    lbest = np.empty((n, K))
    for i in numba.prange(n):
        vals = np.empty((4, P), dtype=np.float32)
        off = -0.5 * xpow[i]
        for c in range(K):
            bv = -np.inf
            bt = 0
            bj = 0
            bm = 0.0
            bp = 0.0
            bl = 0.0
            for t0 in range(0, T, 4):
                nt = min(4, T - t0)
                ct0 = c * T + t0
                vals[:, :] = 0.0
                for m in range(M):
                    g0 = G[2 * m]
                    g1 = G[2 * m + 1]
                    # four shifts at once: each row of G is loaded once for all of them
                    z0 = S[m, i, ct0]
                    z1 = S[m, i, ct0 + 1] if nt > 1 else z0
                    z2 = S[m, i, ct0 + 2] if nt > 2 else z0
                    z3 = S[m, i, ct0 + 3] if nt > 3 else z0
                    r0, i0 = z0.real, z0.imag
                    r1, i1 = z1.real, z1.imag
                    r2, i2 = z2.real, z2.imag
                    r3, i3 = z3.real, z3.imag
                    for j in range(P):
                        a0 = g0[j]
                        a1 = g1[j]
                        vals[0, j] += r0 * a0 + i0 * a1
                        vals[1, j] += r1 * a0 + i1 * a1
                        vals[2, j] += r2 * a0 + i2 * a1
                        vals[3, j] += r3 * a0 + i3 * a1
                for q in range(nt):
                    t = t0 + q
                    pt = prior[i, t]
                    upd = False
                    for j in range(P):
                        v = (vals[q, j] - 0.5 * ctf2[i, c, j] + off) * inv_A + pt
                        if v > bv:
                            bv = v
                            bt = t
                            bj = j
                            upd = True
                    if upd:
                        jm = (bj - 1) % P
                        jp = (bj + 1) % P
                        bm = (vals[q, jm] - 0.5 * ctf2[i, c, jm] + off) * inv_A + pt
                        bp = (vals[q, jp] - 0.5 * ctf2[i, c, jp] + off) * inv_A + pt
                        bl = vals[q, bj] - 0.5 * ctf2[i, c, bj] + off
            sbest[i, c] = bv
            tbest[i, c] = bt
            jbest[i, c] = bj
            sminus[i, c] = bm
            splus[i, c] = bp
            lbest[i, c] = bl
    return sbest, tbest, jbest, sminus, splus, lbest


@numba.njit(parallel=True, **_NJ)
def residual_band_sums(
    F: np.ndarray,
    pad: int,
    b: int,
    ctfm: np.ndarray,
    use_ctf: bool,
    apix_A: float,
    cls: np.ndarray,
    psi: np.ndarray,
    tx: np.ndarray,
    ty: np.ndarray,
    refs: np.ndarray,
    sigma2: np.ndarray,
    r_lo: float,
    r_hi: float,
) -> np.ndarray:
    """Per particle, sums over the band ``r_lo <= |q| <= r_hi`` (Fourier px, half plane) of
    the particle ``x`` mapped onto its class frame (pose ``psi`` rad, shift ``(tx, ty)``
    small px, as in :func:`mstep_accumulate`) and ``m = CTF x class``: ``(n, 4)`` float64
    columns ``sum |x|^2``, ``sum Re(x m*)``, ``sum |m|^2``, ``sum |m|^2 sigma2(|q|)``
    (``sigma2`` per integer shell). From them: the power the scaled class does not explain,
    ``sum|x|^2 - (sum Re(x m*))^2 / sum|m|^2``, and the matched-filter signal-to-noise ratio
    ``sum Re(x m*) / sqrt(sum |m|^2 sigma2)``.
    """
    n = cls.shape[0]
    H = b // 2 + 1
    scale = 1.0 / (b * apix_A)
    n_sh = sigma2.shape[0]
    out = np.zeros((n, 4))
    for i in numba.prange(n):
        c = cls[i]
        ca = math.cos(psi[i])
        sa = math.sin(psi[i])
        if use_ctf:
            co = ctf_coefficients(ctfm[i], scale, psi[i])
        else:
            co = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        sxx = 0.0
        sxm = 0.0
        smm = 0.0
        sms = 0.0
        for yy in range(b):
            qy = yy if yy < b // 2 else yy - b
            for qx in range(H):
                rad = math.sqrt(qx * qx + qy * qy)
                if rad < r_lo or rad > r_hi:
                    continue
                px = ca * qx - sa * qy
                py = sa * qx + ca * qy
                ph = 2.0 * math.pi * (px * tx[i] + py * ty[i]) / b
                x = _interp_half(F, i, px * pad, py * pad) * complex(math.cos(ph), math.sin(ph))
                ctf = _ctf_fast(co, qx, qy, False) if use_ctf else 1.0
                m = ctf * refs[c, yy, qx]
                mm = m.real * m.real + m.imag * m.imag
                sh = int(rad + 0.5)
                sxx += x.real * x.real + x.imag * x.imag
                sxm += x.real * m.real + x.imag * m.imag
                smm += mm
                sms += mm * sigma2[min(sh, n_sh - 1)]
        out[i, 0] = sxx
        out[i, 1] = sxm
        out[i, 2] = smm
        out[i, 3] = sms
    return out

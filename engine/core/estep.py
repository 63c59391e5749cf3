"""The fast E-step: every rotation and shift of every (particle, class) pair at once.

Polar Fourier rings turn an in-plane rotation into a cyclic shift along the angle, so all
rotations of one pair come from one inverse FFT over the angular frequencies ``m`` of
``sum_r A_i(r, m) conj(W_c(r, m))``. Shifts are phase ramps put on the *references* in the
class frame: for a class-frame shift ``t'`` and rotation ``psi`` the particle's shift is
``R(psi) t'`` (the offset grid is a disc, so every rotation searches the same range). The sum
over radii for all (particle) x (class, shift) pairs at one ``m`` is one complex matrix
product (BLAS), batched over ``m``.

Log-likelihood of pose (c, psi, t) for particle X with CTF C and noise sigma2(|k|)::

    L = -1/2 sum_k |X - C R_psi V_c e^{-2 pi i k.t}|^2 / sigma2
      = Re sum_k (X C / sigma2) conj(R_psi W_c,t') - 1/2 sum_k C^2 |R_psi V_c|^2 / sigma2
        - 1/2 sum |X|^2/sigma2

with polar quadrature weights ``r * dtheta`` standing in for the Cartesian sum over k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core import fft as _fft
from engine.core.fourier import centred_rfft2
from engine.core.kernels import ctf_polar, polar_sample

__all__ = [
    "PolarGrid",
    "make_grid",
    "ReferenceSpectra",
    "reference_spectra",
    "ParticleSpectra",
    "particle_spectra",
    "moved_spectra",
    "Scores",
    "score_block",
]

PAD = 2  # zero-padding factor of the DFTs that polar rings are interpolated from
OVERSAMPLE = 2  # ring samples per searched rotation


@dataclass
class PolarGrid:
    """Sampling of the search: rings, angles and the offset grid (all on the small box)."""

    b: int  # small box (px)
    apix_A: float  # small-box pixel size
    radii: np.ndarray  # (R,) ring radii, Fourier px of the small box
    n_psi: int  # in-plane rotations searched (power of two)
    weights: np.ndarray  # (R,) quadrature weight r * dtheta of the ring samples
    shifts: np.ndarray  # (T, 2) class-frame offsets (x, y), small px
    r_max: int  # highest shell used (Fourier px)

    @property
    def n_m(self) -> int:
        return self.n_psi // 2 + 1

    @property
    def n_ang(self) -> int:
        """Samples per ring: twice the rotations, so angular frequencies up to n_psi/2 are
        computed without aliasing (higher ones are dropped, not folded back)."""
        return OVERSAMPLE * self.n_psi

    @property
    def psi_step_deg(self) -> float:
        return 360.0 / self.n_psi


def _fast_len(n: float) -> int:
    """The power of two nearest to ``n`` (in ratio), at least 16: the number of rotations."""
    return int(max(16, 2 ** round(np.log2(max(n, 1.0)))))


def make_grid(
    b: int,
    apix_A: float,
    psi_step_deg: float,
    offset_range_px: float,
    offset_step_px: float,
    min_res_align_A: float | None = None,
) -> PolarGrid:
    r_max = b // 2 - 1
    r_min = 1
    if min_res_align_A:
        r_min = max(1, int(np.ceil(b * apix_A / min_res_align_A)))
    radii = np.arange(r_min, r_max + 1, dtype=np.float64)
    n_psi = _fast_len(360.0 / psi_step_deg)
    weights = radii * (2.0 * np.pi / (OVERSAMPLE * n_psi))
    k = int(np.floor(offset_range_px / offset_step_px + 1e-9)) if offset_range_px > 0 else 0
    g = np.arange(-k, k + 1) * offset_step_px
    sx, sy = np.meshgrid(g, g)
    keep = np.hypot(sx, sy) <= offset_range_px + 1e-9
    shifts = np.stack([sx[keep], sy[keep]], axis=1)
    order = np.lexsort((shifts[:, 0], shifts[:, 1], np.hypot(shifts[:, 0], shifts[:, 1])))
    return PolarGrid(
        b=b,
        apix_A=apix_A,
        radii=radii,
        n_psi=n_psi,
        weights=weights,
        shifts=shifts[order].astype(np.float64),
        r_max=r_max,
    )


def _phase_ramps(grid: PolarGrid, sign: float) -> np.ndarray:
    """``exp(sign * 2 pi i k.t / b)`` on the polar grid for every shift: ``(T, R, n)``."""
    a = 2.0 * np.pi * np.arange(grid.n_ang) / grid.n_ang
    kx = grid.radii[:, None] * np.cos(a)[None, :]
    ky = grid.radii[:, None] * np.sin(a)[None, :]
    t = grid.shifts
    arg = (kx[None] * t[:, 0, None, None] + ky[None] * t[:, 1, None, None]) / grid.b
    return np.exp(1j * sign * 2.0 * np.pi * arg).astype(np.complex64)


@dataclass
class ReferenceSpectra:
    """Angular spectra of the references for one iteration."""

    W: np.ndarray  # (M, R, K*T) complex64: conj(FFT_theta(V_c e^{-2 pi i q.t'}))  [c-major]
    U: np.ndarray  # (M, R, K) complex64: conj(FFT_theta |V_c|^2)
    half: np.ndarray  # (K, b, b//2+1) complex64: centred half-plane DFT (for the M-step)


def reference_spectra(refs: np.ndarray, grid: PolarGrid) -> ReferenceSpectra:
    """Prepare references ``(K, b, b)`` float32 (already masked) for :func:`score_block`."""
    K = refs.shape[0]
    Fp = centred_rfft2(refs, PAD)
    pol = polar_sample(Fp, PAD, grid.radii, grid.n_ang)  # (K, R, n_ang)
    ramps = _phase_ramps(grid, -1.0)  # (T, R, n)
    Wt = pol[:, None] * ramps[None]  # (K, T, R, n)
    What = np.fft.fft(Wt, axis=-1)[..., : grid.n_m]  # (K, T, R, M)
    T = grid.shifts.shape[0]
    W = np.conj(What).reshape(K * T, len(grid.radii), grid.n_m).transpose(2, 1, 0)
    Uhat = np.fft.rfft(np.abs(pol) ** 2, axis=-1)[..., : grid.n_m]  # (K, R, M)
    U = np.conj(Uhat).transpose(2, 1, 0)
    half = centred_rfft2(refs, 1)
    return ReferenceSpectra(
        W=np.ascontiguousarray(W, dtype=np.complex64),
        U=np.ascontiguousarray(U, dtype=np.complex64),
        half=half,
    )


@dataclass
class ParticleSpectra:
    """One block of particles on the polar grid, with what the M-step needs."""

    Fpad: np.ndarray  # (n, P, P//2+1) complex64 padded centred DFT (M-step interpolation)
    A: np.ndarray  # (M, n, R) complex64 angular spectrum of X C w / sigma2
    B: np.ndarray  # (M, n, R) complex64 angular spectrum of C^2 w / sigma2
    xpow: np.ndarray  # (n,) sum_k |X|^2 / sigma2
    # (n, R, n_ang) complex64 X C w / sigma2 on the rings, before the angular DFT (kept
    # with ``keep_rings``, for :func:`moved_spectra`)
    rings: np.ndarray | None = None


def particle_spectra(
    images: np.ndarray,
    ctfm: np.ndarray | None,
    grid: PolarGrid,
    inv_sigma2_r: np.ndarray,
    intact_first_peak: bool = False,
    keep_rings: bool = False,
) -> ParticleSpectra:
    """Polar spectra of masked small-box particles ``(n, b, b)`` float32.

    ``ctfm``: ``(n, 8)`` CTF rows or None (no CTF); ``inv_sigma2_r``: ``(R,)`` 1/sigma2 per ring.
    """
    n = images.shape[0]
    Fpad = centred_rfft2(images, PAD)
    P = polar_sample(Fpad, PAD, grid.radii, grid.n_ang)  # (n, R, n_ang)
    wr = (grid.weights * inv_sigma2_r).astype(np.float32)[None, :, None]
    if ctfm is not None:
        C = ctf_polar(ctfm, grid.radii / (grid.b * grid.apix_A), grid.n_ang, intact_first_peak)
    else:
        C = np.ones((n, len(grid.radii), grid.n_ang), dtype=np.float32)
    # the inverse transform runs over n_psi rotations: scale by n_psi / n_ang
    f = grid.n_psi / grid.n_ang
    rings = P * (C * (wr * f))
    A = _fft.fft(rings, axis=-1)[..., : grid.n_m]
    B = _fft.rfft(C * C * (wr * f), axis=-1)[..., : grid.n_m]
    xpow = np.sum(np.abs(P) ** 2 * wr, axis=(1, 2))
    return ParticleSpectra(
        Fpad=Fpad,
        A=np.ascontiguousarray(A.transpose(2, 0, 1), dtype=np.complex64),
        B=np.ascontiguousarray(B.transpose(2, 0, 1), dtype=np.complex64),
        xpow=xpow.astype(np.float64),
        rings=rings.astype(np.complex64, copy=False) if keep_rings else None,
    )


def moved_spectra(
    ps: ParticleSpectra, rows: np.ndarray, d_px: np.ndarray, grid: PolarGrid
) -> ParticleSpectra:
    """The spectra of particles ``rows`` of ``ps`` (made with ``keep_rings``) with the image
    content moved by ``d_px`` ``(len(rows), 2)`` small px: a phase ramp on the rings, so
    the same masked pixels, without a second image transform. CTF, noise weights and
    power do not change; ``Fpad`` is left empty (the M-step is given the block's own)."""
    if ps.rings is None:
        raise ValueError("moved_spectra needs spectra made with keep_rings=True")
    # ramp exp(-2 pi i r (cos a, sin a).d / b), ring by ring: the rings are evenly spaced,
    # so each ring's ramp is the previous one's times one step (no exp per sample)
    a = 2.0 * np.pi * np.arange(grid.n_ang) / grid.n_ang
    d = np.asarray(d_px, dtype=np.float64)
    u = (np.cos(a)[None, :] * d[:, 0, None] + np.sin(a)[None, :] * d[:, 1, None]) * (
        -2.0 * np.pi / grid.b
    )
    r = grid.radii
    dr = float(r[1] - r[0]) if len(r) > 1 else 1.0
    if len(r) > 1 and not np.allclose(np.diff(r), dr):
        raise ValueError("moved_spectra needs evenly spaced rings")
    step = np.exp(1j * dr * u).astype(np.complex64)
    cur = np.exp(1j * r[0] * u).astype(np.complex64)
    moved = ps.rings[rows]
    for k in range(len(r)):
        moved[:, k] *= cur
        cur *= step
    A = _fft.fft(moved, axis=-1)[..., : grid.n_m]
    return ParticleSpectra(
        Fpad=np.empty((0,) + ps.Fpad.shape[1:], dtype=ps.Fpad.dtype),
        A=np.ascontiguousarray(A.transpose(2, 0, 1), dtype=np.complex64),
        B=np.ascontiguousarray(ps.B[:, rows]),
        xpow=ps.xpow[rows],
    )


def _inverse_dft_matrix(n_psi: int) -> np.ndarray:
    """``(2M, n_psi)`` float32 G with ``[Re S_0, Im S_0, Re S_1, ...] @ G = irfft(S, n_psi)``."""
    M = n_psi // 2 + 1
    m = np.arange(M)[:, None]
    s = np.arange(n_psi)[None, :]
    c = np.full((M, 1), 2.0)
    c[0] = 1.0
    if n_psi % 2 == 0:
        c[-1] = 1.0
    ang = 2.0 * np.pi * m * s / n_psi
    G = np.empty((2 * M, n_psi))
    G[0::2] = c * np.cos(ang) / n_psi
    G[1::2] = -c * np.sin(ang) / n_psi
    return G.astype(np.float32)


_G_CACHE: dict[int, np.ndarray] = {}


def _irfft_rows(S: np.ndarray, n_psi: int) -> np.ndarray:
    """Inverse real DFT over the leading axis of ``S`` (M, ...) complex64, as one real matrix
    product (BLAS, threaded): returns ``(..., n_psi)`` float32 with the angle axis last."""
    G = inverse_dft_matrix(n_psi)
    M = S.shape[0]
    rest = S.shape[1:]
    St = np.ascontiguousarray(np.moveaxis(S, 0, -1)).reshape(-1, M)  # (..., M) complex64
    out = St.view(np.float32) @ G  # (..., n_psi)
    return out.reshape(rest + (n_psi,))


def inverse_dft_matrix(n_psi: int) -> np.ndarray:
    """Cached :func:`_inverse_dft_matrix`."""
    G = _G_CACHE.get(n_psi)
    if G is None:
        G = _G_CACHE[n_psi] = _inverse_dft_matrix(n_psi)
    return G


@dataclass
class Scores:
    """Log-likelihood of every pose, in parts: ``L = cross - ctf2/2 - xpow/2``.

    ``cross`` is kept as its angular spectrum ``S`` (the inverse DFT over rotations is done
    where it is needed: fused with the best-pose search, or in full by :attr:`cross`).
    """

    S: np.ndarray  # (M, n, K*T) complex64 sum over rings per angular frequency
    ctf2: np.ndarray  # (n, K, n_psi) float32     sum C^2 |R V|^2 / sigma2
    xpow: np.ndarray  # (n,) float64              sum |X|^2 / sigma2
    n_shifts: int
    n_psi: int

    @property
    def cross(self) -> np.ndarray:
        """``(n, K, T, n_psi)`` float32: Re sum X C conj(R W) / sigma2."""
        n, K = self.ctf2.shape[:2]
        return _irfft_rows(self.S, self.n_psi).reshape(n, K, self.n_shifts, self.n_psi)

    def full(self) -> np.ndarray:
        """``(n, K, T, n_psi)`` float32 log-likelihoods."""
        L = self.cross - 0.5 * self.ctf2[:, :, None, :]
        L -= (0.5 * self.xpow).astype(np.float32)[:, None, None, None]
        return L


def score_block(
    ps: ParticleSpectra,
    refs: ReferenceSpectra,
    grid: PolarGrid,
    ctf2: np.ndarray | None = None,
) -> Scores:
    """Scores of every pose of every (particle, class) pair.

    Rotation index j means the class turned by +360 j / n_psi degrees (RELION's psi is the
    negative); shift index t means the particle shift ``R(psi) shifts[t]`` (small px).
    ``ctf2``: the CTF term when it is already known (it does not depend on the shift).
    """
    S = np.matmul(ps.A, refs.W)  # (M, n, K*T)
    if ctf2 is None:
        Q = np.matmul(ps.B, refs.U)  # (M, n, K)
        ctf2 = _irfft_rows(Q, grid.n_psi)  # (n, K, psi)
    return Scores(S=S, ctf2=ctf2, xpow=ps.xpow, n_shifts=grid.shifts.shape[0], n_psi=grid.n_psi)

"""Ring-normalised correlation of class averages with projections, every in-plane rotation at
once (the numerics of :mod:`engine.select.reference`).

Images are masked, transformed (centred DFT, 2x padded) and sampled on polar rings of
radius ``r`` (Fourier px) in the band; an FFT along each ring gives its angular spectrum
``X_r(m)``. An in-plane rotation by ``psi`` multiplies ``X_r(m)`` by ``exp(-i m psi)``, so
the correlation of a class ``C`` with a projection ``P`` turned by ``psi`` is, ring by ring,

    rho_r(psi) = sum_m C_r(m) conj(P_r(m)) exp(i m psi) / (|C_r| |P_r|)

(one inverse FFT over ``m`` gives every ``psi``). The score averages the rings with weights
``r |C_r|^2`` (the class's power, area-weighted; :data:`WEIGHTING`)::

    score(psi) = sum_r r |C_r|^2 rho_r(psi) / sum_r r |C_r|^2

so it lies in [-1, 1], is blind to the scale of either image and to the projection's radial
amplitude fall-off (map sharpening or filtering), and rings where the class has no power
(past the resolution the engine low-passes it to) do not count. With ``structure`` the
rotational average of each image about its density centre (the mean of each ring, ``m = 0``)
is removed first: a round blob then has nothing left to correlate, and a mixture of two
views keeps only about ``1/sqrt(2)`` of a single view's score. The weights factor into a
class part ``r |C_r| C_r(m) / Z`` and a projection part ``P_r(m) / |P_r|``, so the sum over
rings for all (projection) x (class, shift) pairs is one complex matrix product per ``m``.

Shifts are phase ramps on the class rings (``C`` moved by ``+t`` px), searched on a small
grid. A class matches ``P`` at ``(psi, t)`` when ``C`` ~ ``P`` turned by ``+psi`` (from +x
towards +y) and then moved by ``-t``.
"""

from __future__ import annotations

import numpy as np

from engine.core import fft as _fft
from engine.core.fourier import centred_rfft2
from engine.core.kernels import polar_sample

__all__ = [
    "PolarBand",
    "make_band",
    "angular_spectra",
    "projection_factors",
    "class_factors",
    "shift_grid",
    "best_rotations",
    "score_at",
]

#: whose power weights the rings: "class" (the default: the class's own spectrum sets the
#: band), "projection" (rings where the class lacks the projection's structure count against
#: it; noise scores 0.4-0.5 there) or "ncc" (plain normalised cross-correlation)
WEIGHTING = "class"
PAD = 2  # zero padding of the transforms the rings are interpolated from


class PolarBand:
    """Rings and angular sampling of one comparison.

    Attributes
    ----------
    b : box (px); radii : ``(R,)`` ring radii (Fourier px); n_psi : rotations searched
    (even); n_ang : samples per ring (``2 n_psi``); n_m : angular frequencies kept
    (``0 .. n_psi/2 - 1``).
    """

    def __init__(self, b: int, radii: np.ndarray, n_psi: int) -> None:
        self.b = int(b)
        self.radii = np.asarray(radii, dtype=np.float64)
        self.n_psi = int(n_psi)
        self.n_ang = 2 * self.n_psi
        self.n_m = self.n_psi // 2


def make_band(b: int, apix_A: float, low_A: float, high_A: float, n_psi: int) -> PolarBand:
    """Rings from ``1/low_A`` to ``1/high_A`` (at least 3 rings, below Nyquist)."""
    box_A = b * float(apix_A)
    r_hi = int(min(np.floor(box_A / high_A), b // 2 - 1))
    r_lo = int(max(1, np.ceil(box_A / low_A)))
    r_lo = min(r_lo, max(1, r_hi - 2))
    r_hi = max(r_hi, r_lo + 2)
    return PolarBand(b, np.arange(r_lo, r_hi + 1, dtype=np.float64), n_psi)


def _polar(images: np.ndarray, mask: np.ndarray, band: PolarBand) -> np.ndarray:
    """Masked images ``(n, b, b)`` on the polar grid: ``(n, R, n_ang)`` complex64."""
    imgs = np.asarray(images, dtype=np.float32) * mask[None]
    return polar_sample(centred_rfft2(imgs, PAD), PAD, band.radii, band.n_ang)


def _ramps(band: PolarBand, t: np.ndarray) -> np.ndarray:
    """``exp(-2 pi i k.t / b)`` on the polar grid for shifts ``t`` ``(T, 2)``: ``(T, R, n_ang)``
    (an image moved by ``+t``)."""
    a = 2.0 * np.pi * np.arange(band.n_ang) / band.n_ang
    kx = band.radii[:, None] * np.cos(a)[None, :]
    ky = band.radii[:, None] * np.sin(a)[None, :]
    t = np.asarray(t, dtype=np.float64).reshape(-1, 2)
    arg = (kx[None] * t[:, 0, None, None] + ky[None] * t[:, 1, None, None]) / band.b
    return np.exp(-2j * np.pi * arg).astype(np.complex64)


def angular_spectra(
    images: np.ndarray,
    mask: np.ndarray,
    band: PolarBand,
    shifts_px: np.ndarray | None = None,
    structure: bool = True,
    centres_px: np.ndarray | None = None,
) -> np.ndarray:
    """Angular spectra ``(n, R, n_m)`` complex64 of masked images, or ``(n, T, R, n_m)``
    with ``shifts_px`` ``(T, 2)`` (``x, y``): each image moved by ``+t`` last.

    ``centres_px`` ``(n, 2)``: each image is first moved so that this point (relative to the
    box centre) comes to the box centre. With ``structure`` each image's rotational average
    about that point (the mean of each ring) is then removed."""
    pol = _polar(images, mask, band)
    if centres_px is not None:
        pol = pol * _ramps(band, -np.asarray(centres_px, dtype=np.float64))
    if structure:
        pol = pol - pol.mean(axis=-1, keepdims=True)
    if shifts_px is None:
        return _fft.fft(pol, axis=-1)[..., : band.n_m].astype(np.complex64)
    ramps = _ramps(band, shifts_px)
    out = np.empty((pol.shape[0], ramps.shape[0], band.radii.size, band.n_m), dtype=np.complex64)
    for i in range(pol.shape[0]):
        out[i] = _fft.fft(pol[i][None] * ramps, axis=-1)[..., : band.n_m]
    return out


def _ring_power(spec: np.ndarray) -> np.ndarray:
    """``|X_r|^2`` summed over both signs of ``m``: ``(..., R)``."""
    p = np.abs(spec.astype(np.complex128)) ** 2
    return p[..., 0] + 2.0 * p[..., 1:].sum(axis=-1)


def _factors(spec: np.ndarray, radii: np.ndarray, mode: str, conj: bool) -> np.ndarray:
    """One side of the product (rings on axis -2), conjugated with ``conj``. ``mode``:
    ``"weighted"`` ``r |X_r| X_r(m) / sum_r r |X_r|^2``, ``"ring"`` ``X_r(m) / |X_r|``,
    ``"ncc"`` ``sqrt(r) X_r(m) / sqrt(sum_r r |X_r|^2)``."""
    pw = _ring_power(spec)  # (..., R)
    z = (radii * pw).sum(axis=-1, keepdims=True)
    if mode == "weighted":
        f = radii * np.sqrt(pw) / np.where(z > 0, z, 1.0)
    elif mode == "ncc":
        f = np.broadcast_to(np.sqrt(radii) / np.sqrt(np.where(z > 0, z, 1.0)), pw.shape)
    else:
        nrm = np.sqrt(pw)
        f = np.where(nrm > 0, 1.0 / np.where(nrm > 0, nrm, 1.0), 0.0)
    out = (np.conj(spec) if conj else spec) * f[..., None].astype(np.float32)
    return out.astype(np.complex64)


def _mode(weighting: str, side: str) -> str:
    if weighting == "ncc":
        return "ncc"
    return "weighted" if weighting == side else "ring"


def projection_factors(
    spec: np.ndarray, radii: np.ndarray, weighting: str = WEIGHTING
) -> np.ndarray:
    """Projection side of the product, same shape as ``spec`` (see :data:`WEIGHTING`)."""
    return _factors(spec, radii, _mode(weighting, "projection"), conj=True)


def class_factors(spec: np.ndarray, radii: np.ndarray, weighting: str = WEIGHTING) -> np.ndarray:
    """Class side of the product, same shape as ``spec`` (see :data:`WEIGHTING`)."""
    return _factors(spec, radii, _mode(weighting, "class"), conj=False)


def shift_grid(
    radius_px: float, step_px: float, centre: tuple[float, float] = (0, 0)
) -> np.ndarray:
    """Shifts ``(T, 2)`` (x, y) px on a square grid of ``step_px`` inside a disc about
    ``centre``; always holds the centre."""
    k = int(np.floor(radius_px / step_px + 1e-9)) if radius_px > 0 and step_px > 0 else 0
    g = np.arange(-k, k + 1) * step_px
    sx, sy = np.meshgrid(g, g)
    keep = np.hypot(sx, sy) <= radius_px + 1e-9
    return np.stack([sx[keep] + centre[0], sy[keep] + centre[1]], axis=1)


def _inverse_dft(n_m: int, n_psi: int) -> np.ndarray:
    """``(2 n_m, n_psi)`` float32 G: ``[Re X_0, Im X_0, Re X_1, ...] @ G`` =
    ``Re sum_m c_m X_m exp(2 pi i m j / n_psi)`` with ``c_0 = 1``, ``c_m = 2`` (both signs
    of ``m``)."""
    m = np.arange(n_m)[:, None]
    j = np.arange(n_psi)[None, :]
    c = np.full((n_m, 1), 2.0)
    c[0] = 1.0
    ang = 2.0 * np.pi * m * j / n_psi
    g = np.empty((2 * n_m, n_psi))
    g[0::2] = c * np.cos(ang)
    g[1::2] = -c * np.sin(ang)
    return g.astype(np.float32)


def best_rotations(
    proj: np.ndarray, cls: np.ndarray, n_psi: int, block: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Best rotation of every (projection, class column) pair.

    Parameters
    ----------
    proj : ``(N, R, n_m)`` complex64 from :func:`projection_factors`.
    cls : ``(Q, R, n_m)`` complex64 from :func:`class_factors` (Q = classes x shifts).
    n_psi : rotations (``n_psi >= 2 n_m``).

    Returns
    -------
    score : ``(N, Q)`` float32, the maximum over the rotations.
    index : ``(N, Q)`` int64, the rotation ``j`` (``psi = 360 j / n_psi`` degrees) that gives it.
    """
    n, _, n_m = proj.shape
    q = cls.shape[0]
    g = _inverse_dft(n_m, n_psi)
    a = np.ascontiguousarray(proj.transpose(2, 0, 1))  # (M, N, R)
    w = np.ascontiguousarray(cls.transpose(2, 1, 0))  # (M, R, Q)
    score = np.empty((n, q), dtype=np.float32)
    index = np.empty((n, q), dtype=np.int64)
    for s in range(0, n, block):
        e = min(s + block, n)
        x = np.matmul(a[:, s:e], w)  # (M, nb, Q)
        xt = np.ascontiguousarray(x.transpose(1, 2, 0)).reshape(-1, n_m)  # (nb*Q, M)
        c = (xt.view(np.float32) @ g).reshape(e - s, q, n_psi)
        j = np.argmax(c, axis=2)
        index[s:e] = j
        score[s:e] = np.take_along_axis(c, j[..., None], axis=2)[..., 0]
    return score, index


def score_at(proj: np.ndarray, cls: np.ndarray, psi_deg: np.ndarray | float) -> np.ndarray | float:
    """The score of factor pairs (:func:`projection_factors`, :func:`class_factors`, each
    ``(..., R, n_m)``, broadcast) at rotations ``psi_deg`` (any angle, not only the grid)."""
    n_m = proj.shape[-1]
    m = np.arange(n_m)
    c = np.where(m == 0, 1.0, 2.0)
    x = (proj.astype(np.complex128) * cls.astype(np.complex128)).sum(axis=-2)  # (..., n_m)
    psi = np.deg2rad(np.asarray(psi_deg, dtype=np.float64))[..., None]
    return (c * (x * np.exp(1j * m * psi)).real).sum(axis=-1)

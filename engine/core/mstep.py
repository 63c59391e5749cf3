"""M-step: per-class sufficient statistics, Wiener (MAP) class averages, resolution, upkeep.

Sufficient statistics of a class (Cartesian half plane of the small box, centred DFT):
``num = sum w C X' / sigma2`` and ``den = sum w C^2 / sigma2`` (X' = particle mapped onto the
class frame), plus residual power per shell for the noise model and the soft weight.
The class average is the Wiener ratio ``num / (den + 1 / (T tau2))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.fourier import centred_irfft2, centred_rfft2, radial_average, shell_index
from engine.core.kernels import mstep_accumulate

__all__ = ["Stats", "accumulate", "wiener_averages", "resolution_A", "recentre", "reseed_dead"]


@dataclass
class Stats:
    """Sufficient statistics of all classes; online EM mixes them with a step ``eta``."""

    num: np.ndarray  # (K, b, b//2+1) complex128
    den: np.ndarray  # (K, b, b//2+1) float64
    noise: np.ndarray  # (K, n_shells) float64 residual power
    noise_w: np.ndarray  # (K, n_shells) float64 weights of the residuals
    weight: np.ndarray  # (K,) float64 soft class weights (sum of posteriors)

    @classmethod
    def zeros(cls, K: int, b: int) -> Stats:
        H = b // 2 + 1
        n_sh = b // 2 + 1
        return cls(
            np.zeros((K, b, H), np.complex128),
            np.zeros((K, b, H)),
            np.zeros((K, n_sh)),
            np.zeros((K, n_sh)),
            np.zeros(K),
        )

    def fields(self) -> tuple[np.ndarray, ...]:
        return (self.num, self.den, self.noise, self.noise_w, self.weight)

    def mix(self, other: Stats, eta: float) -> Stats:
        pairs = zip(self.fields(), other.fields(), strict=True)
        return Stats(*[(1.0 - eta) * a + eta * b for a, b in pairs])

    def add(self, other: Stats) -> None:
        for a, b in zip(self.fields(), other.fields(), strict=True):
            a += b


def accumulate(
    stats: Stats,
    Fpad: np.ndarray,
    pad: int,
    b: int,
    ctfm: np.ndarray | None,
    apix_A: float,
    idx: np.ndarray,
    cls: np.ndarray,
    w: np.ndarray,
    psi_rad: np.ndarray,
    tx: np.ndarray,
    ty: np.ndarray,
    sigma2: np.ndarray,
    refs_half: np.ndarray,
    r_max: int,
    intact_first_peak: bool = False,
) -> None:
    """Add weighted particle-class pairs (block-local particle ``idx``) to ``stats`` in place."""
    K = stats.num.shape[0]
    order = np.argsort(cls, kind="stable")
    starts = np.searchsorted(cls[order], np.arange(K + 1)).astype(np.int64)
    use_ctf = ctfm is not None
    cm = ctfm if use_ctf else np.zeros((Fpad.shape[0], 8))
    inv_s2 = np.where(sigma2 > 0, 1.0 / np.maximum(sigma2, 1e-30), 0.0)
    mstep_accumulate(
        Fpad,
        pad,
        b,
        np.ascontiguousarray(cm, dtype=np.float64),
        use_ctf,
        intact_first_peak,
        float(apix_A),
        idx[order].astype(np.int64),
        cls[order].astype(np.int64),
        w[order].astype(np.float64),
        psi_rad[order].astype(np.float64),
        tx[order].astype(np.float64),
        ty[order].astype(np.float64),
        starts,
        inv_s2,
        refs_half.astype(np.complex64),
        r_max,
        stats.num,
        stats.den,
        stats.noise,
        stats.noise_w,
    )
    stats.weight += np.bincount(cls, weights=w, minlength=K)


def _tau2(stats: Stats, shells: np.ndarray, n_sh: int) -> tuple[np.ndarray, np.ndarray]:
    """Signal power per class and shell, and mean ``den`` per shell.

    ``num = den V + noise`` with ``E|noise|^2 = den``, so per shell
    ``tau2 = sum(|num|^2 - den) / sum(den^2)``: frequencies with little data (CTF zeros, few
    particles) weigh little, unlike an average of ``|num / den|^2``.
    """
    den = stats.den
    excess = radial_average(np.abs(stats.num) ** 2 - den, shells, n_sh)
    d2 = radial_average(den * den, shells, n_sh)
    tau2 = np.where(d2 > 0, excess / np.maximum(d2, 1e-300), 0.0)
    dmean = radial_average(den, shells, n_sh)
    return np.maximum(tau2, 0.0), dmean


def wiener_averages(
    stats: Stats, tau2_fudge: float, mask: np.ndarray, r_max: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class averages ``(K, b, b)`` float32 (masked), tau2 ``(K, n_sh)``, SSNR ``(K, n_sh)``."""
    K, b, _ = stats.num.shape
    shells = shell_index(b)
    n_sh = b // 2 + 1
    tau2, dmean = _tau2(stats, shells, n_sh)
    floor = 1e-6 * np.maximum(tau2[:, 1 : r_max + 1].max(axis=1, initial=0.0), 1e-12)
    tau2 = np.maximum(tau2, floor[:, None])
    reg = 1.0 / (tau2_fudge * tau2)  # (K, n_sh)
    sh = np.minimum(shells, n_sh - 1)
    V = stats.num / (stats.den + reg[:, sh])
    ssnr = tau2 * dmean
    # low-pass each class at its own resolution (first shell with SSNR < 1, soft edge of
    # CUTOFF_EDGE shells): keeps noise at higher frequencies, where an SSNR > 1 can only come
    # from noise aligned onto itself, out of the references
    V *= resolution_taper(ssnr, r_max)[:, sh]
    V[:, shells > r_max] = 0.0
    V[:, 0, 0] = 0.0
    refs = centred_irfft2(V, b) * mask[None]
    return refs.astype(np.float32), tau2, ssnr


CUTOFF_EDGE = 3


def first_shell_below_one(ssnr: np.ndarray, r_max: int) -> np.ndarray:
    """Per class: the first shell >= 1 whose SSNR is below 1 (``r_max + 1`` if none)."""
    below = ssnr[:, 1 : r_max + 1] < 1.0
    first = np.where(below.any(axis=1), below.argmax(axis=1) + 1, r_max + 1)
    return first


def resolution_taper(ssnr: np.ndarray, r_max: int) -> np.ndarray:
    """``(K, n_sh)`` weights: 1 up to each class's resolution shell, cosine to 0 over
    :data:`CUTOFF_EDGE` shells."""
    K, n_sh = ssnr.shape
    r = np.arange(n_sh)[None, :]
    r0 = first_shell_below_one(ssnr, r_max)[:, None].astype(float)
    x = np.clip((r - r0) / CUTOFF_EDGE, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def resolution_A(ssnr: np.ndarray, b: int, apix_A: float, r_max: int) -> np.ndarray:
    """Per class: the resolution (Angstrom) where the SSNR first drops below 1."""
    K = ssnr.shape[0]
    res = np.empty(K)
    for c in range(K):
        r = 1
        while r <= r_max and ssnr[c, r] >= 1.0:
            r += 1
        res[c] = b * apix_A / max(r - 1, 0.5) if r > 1 else 999.0
    return np.minimum(res, 999.0)


def centre_of_mass(img: np.ndarray) -> np.ndarray | None:
    """Centre of mass ``(x, y)`` in px from the box centre of the pixels of ``img`` (a masked
    class average) above 0.2 of its maximum; ``None`` when there are none."""
    b = img.shape[-1]
    y, x = np.mgrid[0:b, 0:b].astype(np.float64) - b // 2
    thr = 0.2 * img.max()
    wgt = np.where(img > thr, img, 0.0)
    s = wgt.sum()
    if s <= 0:
        return None
    return np.array([(wgt * x).sum() / s, (wgt * y).sum() / s])


def recentre(stats: Stats, refs: np.ndarray, mask: np.ndarray, max_px: float) -> np.ndarray:
    """Move each class's :func:`centre_of_mass` to the box centre.

    Shifts the class sums in place (a phase ramp on ``num``; ``den`` is unchanged) and returns
    the applied shifts ``(K, 2)`` (x, y) in small px.
    """
    K, b, H = stats.num.shape
    ky = np.fft.fftfreq(b)[:, None]
    kx = np.arange(H)[None, :] / b
    out = np.zeros((K, 2))
    for c in range(K):
        com = centre_of_mass(refs[c] * mask)
        if com is None or stats.weight[c] <= 0:
            continue
        nrm = np.hypot(*com)
        if nrm < 0.5:
            continue
        if nrm > max_px:
            com *= max_px / nrm
        # content moved by -com: multiply by exp(+2 pi i k.com)
        stats.num[c] *= np.exp(2j * np.pi * (kx * com[0] + ky * com[1]))
        out[c] = -com
    return out


def reseed_dead(stats: Stats, rng: np.random.Generator, min_fraction: float) -> list[int]:
    """Re-seed classes whose weight fell below ``min_fraction`` of the total.

    Each dead class takes half of the currently largest class's sums plus a perturbation of
    the size of that class's noise-in-average, so the two copies can separate.
    """
    total = stats.weight.sum()
    if total <= 0:
        return []
    dead = [c for c in np.argsort(stats.weight) if stats.weight[c] < min_fraction * total]
    reseeded = []
    for c in dead:
        big = int(np.argmax(stats.weight))
        if big == c or stats.weight[big] <= 2 * min_fraction * total:
            break
        for arr in stats.fields():
            arr[big] *= 0.5
            arr[c] = arr[big]
        sd = np.sqrt(np.maximum(stats.den[big], 0.0))
        noise = (rng.standard_normal(sd.shape) + 1j * rng.standard_normal(sd.shape)) * sd
        stats.num[c] = stats.num[big] + 0.5 * noise
        stats.num[big] = stats.num[big] - 0.5 * noise
        reseeded.append(int(c))
    return reseeded


def initial_stats_from_images(
    images: np.ndarray,
    ctfm: np.ndarray | None,
    cls: np.ndarray,
    K: int,
    b: int,
    apix_A: float,
    sigma2: np.ndarray,
    r_max: int,
    pad: int,
) -> Stats:
    """Sums of random subsets without alignment (RELION's initial references)."""
    st = Stats.zeros(K, b)
    Fpad = centred_rfft2(images, pad)
    n = images.shape[0]
    zeros = np.zeros(n)
    accumulate(
        st,
        Fpad,
        pad,
        b,
        ctfm,
        apix_A,
        np.arange(n),
        cls,
        np.ones(n),
        zeros,
        zeros,
        zeros,
        sigma2,
        np.zeros((K, b, b // 2 + 1), np.complex64),
        r_max,
    )
    return st

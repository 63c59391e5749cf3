"""Per-particle statistics of a finished classification (written to run_data.star).

Both compare a particle with its class average, turned and shifted by the particle's pose
and multiplied by its CTF, over the low-resolution band 200-25 Å (where a neighbouring
particle, an ice blob or a carbon edge puts most of its power):

``tdcResidualLowRes``
    The power the (least-squares scaled) class average leaves unexplained, in units of the
    noise power of that band (the noise model of the run). Particles of a good class sit
    together near one value; an aggregate (the class's particle plus overlapping
    neighbours), a piece of ice or carbon that landed in a good class sits well above.
``tdcSignalLowRes``
    The matched-filter signal-to-noise ratio of the class average in the particle
    (``sum Re(x m*) / sqrt(sum |m|^2 sigma2)``): an empty pick or an off-centre particle
    that landed in a good class sits well below its class-mates.

:func:`engine.select.particle_outliers` turns them into robust z-scores among the
particles of the selected classes.
"""

from __future__ import annotations

import numpy as np

from engine.core.estep import PAD
from engine.core.fourier import centred_rfft2, gridding_correction, shell_index
from engine.core.kernels import residual_band_sums
from engine.core.model import Dataset, Geometry, State
from engine.core.parallel import map_ordered

__all__ = ["residual_statistics", "LOW_RES_BAND_A", "PARTICLE_COLUMNS"]

LOW_RES_BAND_A = (200.0, 25.0)
PARTICLE_COLUMNS = ("tdcResidualLowRes", "tdcSignalLowRes")
BLOCK = 128  # particles per task


def residual_statistics(
    data: Dataset, geo: Geometry, state: State, use_ctf: bool, threads: int = 1
) -> dict[str, np.ndarray]:
    """``{column: (N,) float32}`` (:data:`PARTICLE_COLUMNS`) for the particles this process
    owns (others: 0); blocks of particles run on ``threads`` threads."""
    b, a = data.b, data.apix_small_A
    r_lo = b * a / LOW_RES_BAND_A[0]
    r_hi = min(b * a / LOW_RES_BAND_A[1], geo.grid.r_max)
    refs = centred_rfft2(state.refs, 1)
    sigma2 = np.ascontiguousarray(state.sigma2, dtype=np.float64)
    rad = np.hypot(np.fft.fftfreq(b)[:, None] * b, np.arange(b // 2 + 1)[None, :])
    band = (rad >= r_lo) & (rad <= r_hi)
    noise = float(sigma2[np.minimum(shell_index(b), len(sigma2) - 1)][band].sum())
    resid = np.zeros(data.n, np.float32)
    signal = np.zeros(data.n, np.float32)
    mine = data.owned(np.arange(data.n))
    mine = mine[state.cls[mine] >= 0]
    ctf_table = data.ctfm if use_ctf else None
    window = geo.mask * gridding_correction(b, PAD)  # unbiased bilinear samples

    def sums_of(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        F = centred_rfft2(data.images_of(idx) * window[None], PAD)
        ctfm = ctf_table[idx] if ctf_table is not None else np.zeros((len(idx), 8))
        psi = -np.deg2rad(state.psi_deg[idx].astype(np.float64))  # RELION psi -> internal
        sums = residual_band_sums(
            F,
            PAD,
            b,
            np.ascontiguousarray(ctfm),
            ctf_table is not None,
            a,
            state.cls[idx].astype(np.int64),
            psi,
            state.shift_px[idx, 0].astype(np.float64),
            state.shift_px[idx, 1].astype(np.float64),
            refs,
            sigma2,
            float(r_lo),
            float(r_hi),
        )
        sxx, sxm, smm, sms = sums.T
        with np.errstate(divide="ignore", invalid="ignore"):
            res = np.where(smm > 0, sxx - sxm * sxm / smm, sxx)
            sig = np.where(sms > 0, sxm / np.sqrt(sms), 0.0)
        return idx, res, sig

    def store(_: int, out: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        idx, res, sig = out
        resid[idx] = res / max(noise, 1e-30)
        signal[idx] = sig

    blocks = [mine[s : s + BLOCK] for s in range(0, len(mine), BLOCK)]
    map_ordered(sums_of, blocks, threads, store)
    return {"tdcResidualLowRes": resid, "tdcSignalLowRes": signal}

"""Per-particle statistics of a finished classification (written to run_data.star).

``tdcUnexplainedLowRes``: the fraction of a particle's low-resolution power (200-25 Å) that
its class average, turned and shifted by the particle's pose and multiplied by its CTF, does
not explain (``1 - rho^2``). Single particles of a good class sit low; aggregates, pieces of
carbon or ice and empty picks that ended up in a good class sit high.
"""

from __future__ import annotations

import numpy as np

from engine.estep import PAD
from engine.fourier import centred_rfft2
from engine.kernels import unexplained_power
from engine.model import Dataset, Geometry, State

__all__ = ["unexplained_low_res", "LOW_RES_BAND_A"]

LOW_RES_BAND_A = (200.0, 25.0)
BLOCK = 512


def unexplained_low_res(data: Dataset, geo: Geometry, state: State, use_ctf: bool
                        ) -> np.ndarray:
    """``(N,)`` float32 for the particles this process owns (others: 0)."""
    b, a = data.b, data.apix_small_A
    r_lo = b * a / LOW_RES_BAND_A[0]
    r_hi = min(b * a / LOW_RES_BAND_A[1], geo.grid.r_max)
    refs = centred_rfft2(state.refs, 1)
    out = np.zeros(data.n, np.float32)
    mine = data.owned(np.arange(data.n))
    mine = mine[state.cls[mine] >= 0]
    for s in range(0, len(mine), BLOCK):
        idx = mine[s:s + BLOCK]
        F = centred_rfft2(data.images_of(idx) * geo.mask[None], PAD)
        ctfm = data.ctfm[idx] if (use_ctf and data.ctfm is not None) else np.zeros((len(idx), 8))
        psi = -np.deg2rad(state.psi_deg[idx].astype(np.float64))   # RELION psi -> internal
        out[idx] = unexplained_power(F, PAD, b, np.ascontiguousarray(ctfm), bool(
            use_ctf and data.ctfm is not None), a, state.cls[idx].astype(np.int64), psi,
            state.shift_px[idx, 0].astype(np.float64), state.shift_px[idx, 1].astype(np.float64),
            refs, float(r_lo), float(r_hi))
    return out

"""Contrast transfer function, RELION's convention.

``CTF(k) = -sin(chi(k))`` with
``chi = -pi*lambda*dz(theta)*|k|^2 + pi/2*Cs*lambda^3*|k|^4 - phase_shift - atan(Q/sqrt(1-Q^2))``,
``dz(theta) = (dU + dV)/2 + (dU - dV)/2 * cos(2*(theta - angle))`` (defocus positive = underfocus),
so that the CTF starts at +Q at |k| = 0 and its first lobe is positive.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["CtfParams", "electron_wavelength_A", "evaluate_ctf", "ctf_image"]


def electron_wavelength_A(voltage_kV: np.ndarray | float) -> np.ndarray:
    """Relativistic electron wavelength in Angstrom."""
    v = np.asarray(voltage_kV, dtype=np.float64) * 1e3
    return 12.2642598 / np.sqrt(v * (1.0 + 0.978466e-6 * v))


@dataclass
class CtfParams:
    """Per-particle CTF parameters; every field is a float64 array of shape ``(n,)``."""

    defocus_u_A: np.ndarray
    defocus_v_A: np.ndarray
    defocus_angle_deg: np.ndarray
    voltage_kV: np.ndarray
    cs_mm: np.ndarray
    amp_contrast: np.ndarray
    phase_shift_deg: np.ndarray
    bfactor_A2: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for f in fields(self):
            a = np.atleast_1d(np.asarray(getattr(self, f.name), dtype=np.float64))
            n = a.size if n is None or n == 1 else n
            setattr(self, f.name, a)
        for f in fields(self):  # broadcast scalars (one optics value for all)
            a = getattr(self, f.name)
            if a.size == 1 and n and n > 1:
                setattr(self, f.name, np.full(n, a[0]))

    def __len__(self) -> int:
        return int(self.defocus_u_A.size)

    def subset(self, idx: np.ndarray | slice) -> CtfParams:
        return CtfParams(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def as_matrix(self) -> np.ndarray:
        """``(n, 8)`` float64 in field order, for numba kernels (see engine.core.kernels)."""
        return np.stack([getattr(self, f.name) for f in fields(self)], axis=1)


def ctf_matrix_values(m: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """CTF from one row of :meth:`CtfParams.as_matrix` at frequencies ``kx, ky`` (1/Angstrom)."""
    du, dv, ang, kv, cs, q, ph, bf = m
    lam = float(electron_wavelength_A(kv))
    k2 = kx * kx + ky * ky
    theta = np.arctan2(ky, kx)
    dz = 0.5 * (du + dv) + 0.5 * (du - dv) * np.cos(2.0 * (theta - np.deg2rad(ang)))
    w = np.arctan2(q, np.sqrt(max(1.0 - q * q, 0.0)))
    chi = np.pi * lam * dz * k2 - 0.5 * np.pi * cs * 1e7 * lam**3 * k2 * k2 + np.deg2rad(ph) + w
    out = np.sin(chi)
    if bf:
        out = out * np.exp(-0.25 * bf * k2)
    return out


def evaluate_ctf(p: CtfParams, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """CTF of every particle at frequencies ``kx, ky`` (1/Angstrom, any shape S).

    Returns ``(n, *S)`` float32.
    """
    mats = p.as_matrix()
    out = np.empty((len(p),) + np.shape(kx), dtype=np.float32)
    for i, m in enumerate(mats):
        out[i] = ctf_matrix_values(m, kx, ky)
    return out


def ctf_image(p: CtfParams, box: int, apix_A: float, rfft: bool = True) -> np.ndarray:
    """CTF on the DFT grid of a ``box x box`` image (numpy FFT order, no fftshift).

    ``rfft=True`` gives the half plane ``(n, box, box//2 + 1)`` matching ``np.fft.rfft2``;
    otherwise the full plane ``(n, box, box)``. float32.
    """
    ky = np.fft.fftfreq(box, d=apix_A)[:, None]
    kx = (np.fft.rfftfreq(box, d=apix_A) if rfft else np.fft.fftfreq(box, d=apix_A))[None, :]
    kx, ky = np.broadcast_arrays(kx, ky)
    return evaluate_ctf(p, kx, ky)

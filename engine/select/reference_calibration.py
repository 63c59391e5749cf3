"""Simulated class averages of known kind, to calibrate the reference score
(:mod:`engine.select.reference`): single views, two-view mixtures, blobs and noise.

Particles come from the simulator (:func:`engine.sim.simulate.simulate_arrays`: projections
of a map or the built-in phantom, CTF, white noise at ``snr``); a class average is made the
way a perfect 2D classification would make it: the particles mapped onto the class frame
with their true poses and averaged with CTF correction (``sum CTF X / (sum CTF^2 + eps)``).

Kinds (``CalibrationSet.kind``):

``single``   ``n`` particles of one view (directions jittered by ~2 degrees);
``blurred``  the same, each turned by a random in-plane error (``blur_psi_deg`` s.d.);
``mixture``  ``n/2`` particles of each of two views at least ``min_separation_deg`` apart
             (symmetry-aware), 50/50;
``blob``     a round Gaussian of the particle's size and power, plus the noise of an average
             of ``n`` pure-noise particles;
``noise``    an average of ``n`` pure-noise particles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.pose import align_to_class
from engine.select import reference_grid as grid
from engine.sim.render import ctf_half_plane
from engine.sim.simulate import simulate_arrays

__all__ = ["CalibrationSet", "calibration_classes", "KINDS"]

KINDS = ("single", "blurred", "mixture", "blob", "noise")


@dataclass
class CalibrationSet:
    """Simulated class averages (``images`` ``(n, b, b)`` float32) with their kind, the
    particles per average, and for single views the true direction (``rot``, ``tilt``;
    NaN otherwise)."""

    images: np.ndarray
    kind: np.ndarray  # (n,) object
    n_particles: np.ndarray  # (n,) int
    rot_deg: np.ndarray
    tilt_deg: np.ndarray
    apix_A: float


def _average(
    images: np.ndarray, ctf: np.ndarray | None, psi: np.ndarray, ox: np.ndarray, oy: np.ndarray
) -> np.ndarray:
    """CTF-corrected average of particles on the class frame (isotropic CTFs)."""
    n, b, _ = images.shape
    num = np.zeros((b, b), dtype=np.float64)
    den = np.zeros((b, b // 2 + 1), dtype=np.float64)
    for i in range(n):
        x = images[i]
        if ctf is not None:
            x = np.fft.irfft2(np.fft.rfft2(x) * ctf[i], s=(b, b))
            den += ctf[i].astype(np.float64) ** 2
        num += align_to_class(x, psi[i], ox[i], oy[i])
    if ctf is None:
        return (num / max(n, 1)).astype(np.float32)
    eps = 0.05 * n
    return np.fft.irfft2(np.fft.rfft2(num) / (den + eps), s=(b, b)).astype(np.float32)


def _posed_average(
    images: np.ndarray,
    ctf: np.ndarray | None,
    pose: tuple[np.ndarray, np.ndarray, np.ndarray],
    idx: np.ndarray,
    rng: np.random.Generator,
    psi_error_deg: float,
) -> np.ndarray:
    """:func:`_average` of particles ``idx`` with their poses (psi, origin x, y in px), each
    psi off by a random error of ``psi_error_deg`` s.d."""
    psi, ox, oy = (p[idx] for p in pose)
    if psi_error_deg:
        psi = psi + rng.normal(0.0, psi_error_deg, idx.size)
    return _average(images[idx], None if ctf is None else ctf[idx], psi, ox, oy)


def calibration_classes(
    volume: np.ndarray | None = None,
    map_apix_A: float | None = None,
    box: int = 64,
    apix_A: float = 3.0,
    n_per_class: tuple[int, ...] = (50, 200),
    n_views: int = 8,
    snr: float = 0.05,
    blur_psi_deg: float = 10.0,
    symmetry: str = "C1",
    min_separation_deg: float = 40.0,
    seed: int = 0,
) -> CalibrationSet:
    """Class averages of every kind in :data:`KINDS` for each ``n`` in ``n_per_class``.

    Parameters
    ----------
    volume : ``(m, m, m)`` array, optional
        The map (default: the simulator's asymmetric phantom), voxel size ``map_apix_A``.
    box, apix_A : the class images' box (px) and pixel size (Å).
    n_per_class : particles per class average.
    n_views : views simulated (well separated); one single/blurred average per view, one
        mixture per pair of consecutive views, ``max(2, n_views // 3)`` blobs and noises.
    snr : particle signal-to-noise ratio (the simulator's definition).
    blur_psi_deg : in-plane error (s.d.) of the blurred averages.
    symmetry, min_separation_deg : a mixture pairs each view with the next one that is at
        least this far from it under the map's symmetry.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in ("img", "kind", "n", "rot", "tilt")}

    def add(img: np.ndarray, kind: str, n: int, rot: float = np.nan, tilt: float = np.nan) -> None:
        out["img"].append(img)
        out["kind"].append(kind)
        out["n"].append(n)
        out["rot"].append(rot)
        out["tilt"].append(tilt)

    n_aux = max(2, n_views // 3)
    c = box // 2
    yy, xx = np.mgrid[0:box, 0:box] - c
    r_part = 0.3 * box if volume is None else 0.25 * box
    blob = np.exp(-0.5 * (xx**2 + yy**2) / (0.6 * r_part) ** 2)
    inside = np.hypot(xx, yy) < r_part
    for n in n_per_class:
        sim = simulate_arrays(
            n_particles=n * n_views * 2,
            box=box,
            apix_A=apix_A,
            map_path=volume,
            map_apix_A=map_apix_A,
            snr=snr,
            junk_fraction=0.0,
            n_views=n_views,
            astig_A=0.0,
            seed=seed + n,
        )
        t = sim.truth
        ctf = ctf_half_plane(sim.ctf, box, apix_A) if sim.ctf is not None else None
        pose = (
            t["rlnAnglePsi"].to_numpy(),
            t["rlnOriginXAngst"].to_numpy() / apix_A,
            t["rlnOriginYAngst"].to_numpy() / apix_A,
        )
        view = t["tdcViewId"].to_numpy()
        members = [np.flatnonzero(view == v) for v in range(n_views)]
        dirs = grid.angles_to_directions(sim.view_dirs[:, 0], sim.view_dirs[:, 1])
        sep = grid.angular_distance_deg(dirs, dirs, grid.symmetry_operators(symmetry))
        singles = []
        for v in range(n_views):
            rot, tilt = sim.view_dirs[v]
            idx = members[v][:n]
            img = _posed_average(sim.images, ctf, pose, idx, rng, 0.0)
            singles.append(img)
            add(img, "single", idx.size, rot, tilt)
            idx = members[v][n : 2 * n]
            add(_posed_average(sim.images, ctf, pose, idx, rng, blur_psi_deg), "blurred", idx.size)
            far = [(v + d) % n_views for d in range(1, n_views)]
            far = [u for u in far if sep[v, u] >= min_separation_deg]
            if not far:
                continue
            w = far[0]
            pair = np.concatenate([members[v][: n // 2], members[w][n - n // 2 : n]])
            add(_posed_average(sim.images, ctf, pose, pair, rng, 0.0), "mixture", pair.size)

        noise = simulate_arrays(
            n_particles=n * n_aux * 2,
            box=box,
            apix_A=apix_A,
            map_path=volume,
            map_apix_A=map_apix_A,
            snr=snr,
            junk_fraction=1.0,
            junk_kinds=("noise",),
            astig_A=0.0,
            seed=seed + n + 1,
        )
        nctf = ctf_half_plane(noise.ctf, box, apix_A) if noise.ctf is not None else None
        zero = (np.zeros(noise.images.shape[0]),) * 3
        for a in range(n_aux):
            idx = np.arange(a * n, (a + 1) * n)
            add(_posed_average(noise.images, nctf, zero, idx, rng, 0.0), "noise", n)
            nb = _posed_average(noise.images, nctf, zero, idx + n_aux * n, rng, 0.0)
            ref = singles[a % len(singles)]
            scale = ref[inside].std() / max(float(blob[inside].std()), 1e-9)
            add((nb + scale * blob).astype(np.float32), "blob", n)
    return CalibrationSet(
        images=np.stack(out["img"]).astype(np.float32),
        kind=np.array(out["kind"], dtype=object),
        n_particles=np.array(out["n"], dtype=np.int64),
        rot_deg=np.array(out["rot"], dtype=np.float64),
        tilt_deg=np.array(out["tilt"], dtype=np.float64),
        apix_A=float(apix_A),
    )

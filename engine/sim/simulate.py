"""Realistic synthetic particle sets with a known ground truth.

Good particles are projections of a 3D map (or the built-in asymmetric phantom, see
:mod:`engine.sim.phantom`) at chosen viewing directions, rotated in-plane by ``psi`` and moved
by ``-origin`` exactly as the README's pose convention says
(``particle = engine.core.pose.class_to_particle(P0, psi, origin_x_px, origin_y_px)`` with
``P0`` the projection at ``(rot, tilt, psi=0)``; equivalently RELION's projection with
``A(rot, tilt, psi)``, see :mod:`engine.core.projection`), then
multiplied by a per-particle CTF (RELION convention, :mod:`engine.core.ctf`) and buried in white
Gaussian noise at the requested SNR (signal variance inside the particle's circle / noise
variance). Junk: pure noise, ice blobs/rings, carbon edges, aggregates (2-4 overlapping
particles) and off-centre particles (moved by about 40% of the box). Each image is then
normalised like RELION's (background mean 0, standard deviation 1); protein is bright.

Outputs of :func:`simulate` (folder ``out_dir``): ``particles.star`` (RELION 3.1, no pose
columns), ``particles.mrcs``, ``truth.star`` (same rows: poses in the README convention,
``_tdcViewId`` (-1 for junk), ``_tdcJunkKind`` (``""`` for good particles), CTF values).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.core.ctf import CtfParams
from engine.errors import ParameterError
from engine.io.mrc import new_stack
from engine.io.star import write_star
from engine.sim.junk import JUNK_KINDS
from engine.sim.phantom import SHAPES
from engine.sim.plan import PER_MICROGRAPH, Plan, ViewWeights, make_plan, validate_settings
from engine.sim.render import MapSource, Renderer, make_projector

__all__ = [
    "simulate",
    "simulate_arrays",
    "SimResult",
    "SimData",
    "CHUNK",
]

CHUNK = 512  # particles per block (also the unit of the per-block random streams)


@dataclass
class SimData:
    """Simulated particles in memory (see :func:`simulate_arrays`).

    Attributes
    ----------
    images : (n, box, box) float32
        Normalised particle images.
    truth : DataFrame
        One row per particle (columns as in ``truth.star``, names without ``_``).
    ctf : CtfParams or None
        The CTF applied to each particle (None with ``ctf=False``).
    particles, optics : DataFrame
        The tables written to ``particles.star``.
    clean : (n, box, box) float32 or None
        Noise-free, CTF-free signal in the images' scale (``return_clean=True``).
    box : int
    apix_A : float
    view_dirs : (K, 2) float64
        ``(rot, tilt)`` in degrees of the views (the reference views when random).
    """

    images: np.ndarray
    truth: pd.DataFrame
    ctf: CtfParams | None
    particles: pd.DataFrame
    optics: pd.DataFrame
    clean: np.ndarray | None
    box: int
    apix_A: float
    view_dirs: np.ndarray


@dataclass
class SimResult:
    """Files written by :func:`simulate` and the ground truth table."""

    out_dir: Path
    particles_star: Path
    stack_path: Path
    truth_star: Path
    truth: pd.DataFrame
    n_particles: int
    box: int
    apix_A: float
    seconds: float


def _tables(
    plan: Plan,
    n: int,
    box: int,
    apix_A: float,
    voltage_kV: float,
    cs_mm: float,
    amp_contrast: float,
    use_ctf: bool,
    stack_name: str,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnVoltage": [float(voltage_kV)],
            "rlnSphericalAberration": [float(cs_mm)],
            "rlnAmplitudeContrast": [float(amp_contrast)],
            "rlnImagePixelSize": [float(apix_A)],
            "rlnImageSize": [int(box)],
            "rlnImageDimensionality": [2],
            "rlnCtfDataAreCtfPremultiplied": [0],
        }
    )
    names = [f"{i + 1:06d}@{stack_name}" for i in range(n)]
    mic = np.arange(n) // PER_MICROGRAPH
    parts = pd.DataFrame(
        {
            "rlnImageName": names,
            "rlnMicrographName": [f"Micrographs/mic{m + 1:05d}.mrc" for m in mic],
            "rlnCoordinateX": np.round(rng.uniform(box, 4096 - box, n), 1),
            "rlnCoordinateY": np.round(rng.uniform(box, 4096 - box, n), 1),
        }
    )
    truth = pd.DataFrame(
        {
            "rlnImageName": names,
            "rlnAngleRot": plan.rot,
            "rlnAngleTilt": plan.tilt,
            "rlnAnglePsi": plan.psi,
            "rlnOriginXAngst": plan.ox_px * apix_A,
            "rlnOriginYAngst": plan.oy_px * apix_A,
            "tdcViewId": plan.view_id,
            "tdcJunkKind": plan.kind.astype(str),
        }
    )
    if use_ctf:
        for df in (parts, truth):
            df["rlnDefocusU"] = plan.ctf.defocus_u_A
            df["rlnDefocusV"] = plan.ctf.defocus_v_A
            df["rlnDefocusAngle"] = plan.ctf.defocus_angle_deg
        parts["rlnPhaseShift"] = 0.0
        parts["rlnCtfBfactor"] = 0.0
    parts["rlnOpticsGroup"] = 1
    truth["rlnOpticsGroup"] = 1
    return parts, optics, truth


def _setup(
    n_particles: int,
    box: int,
    apix_A: float,
    map_path: MapSource,
    snr: float,
    junk_fraction: float,
    n_views: int | None,
    view_weights: ViewWeights,
    junk_kinds: tuple[str, ...],
    defocus_range_um: tuple[float, float],
    astig_A: float,
    voltage_kV: float,
    cs_mm: float,
    amp_contrast: float,
    max_shift_A: float | None,
    ctf: bool,
    seed: int,
    stack_name: str,
    map_apix_A: float | None = None,
    phantom: str = "compact",
) -> tuple[Plan, Renderer, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    validate_settings(
        n_particles, box, apix_A, snr, junk_fraction, n_views, view_weights, tuple(junk_kinds)
    )
    if phantom not in SHAPES:
        raise ParameterError(f"phantom must be one of {', '.join(SHAPES)} (got {phantom!r})")
    rng = np.random.default_rng(seed)
    shift_px = (0.03 * box) if max_shift_A is None else max_shift_A / apix_A
    plan = make_plan(
        n_particles,
        box,
        n_views,
        view_weights,
        junk_fraction,
        tuple(junk_kinds),
        defocus_range_um,
        astig_A,
        voltage_kV,
        cs_mm,
        amp_contrast,
        shift_px,
        rng,
    )
    proj, radius = make_projector(box, apix_A, map_path, map_apix_A, phantom)
    rend = Renderer(proj, plan, box, apix_A, snr, radius, ctf)
    parts, optics, truth = _tables(
        plan, n_particles, box, apix_A, voltage_kV, cs_mm, amp_contrast, ctf, stack_name, rng
    )
    return plan, rend, parts, optics, truth


def _block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 1, block])


def simulate_arrays(
    n_particles: int = 1000,
    box: int = 128,
    apix_A: float = 1.5,
    map_path: MapSource = None,
    snr: float = 0.05,
    junk_fraction: float = 0.15,
    n_views: int | None = None,
    view_weights: ViewWeights = None,
    junk_kinds: tuple[str, ...] = JUNK_KINDS,
    defocus_range_um: tuple[float, float] = (1.0, 2.5),
    astig_A: float = 300.0,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amp_contrast: float = 0.1,
    max_shift_A: float | None = None,
    ctf: bool = True,
    seed: int = 0,
    return_clean: bool = False,
    map_apix_A: float | None = None,
    phantom: str = "compact",
) -> SimData:
    """Simulate particles in memory (same images as :func:`simulate` with equal arguments).

    Returns
    -------
    SimData
        ``images`` ``(n, box, box)`` float32, ``truth`` table, ``ctf`` parameters, and
        with ``return_clean`` the noise-free CTF-free signal ``(n, box, box)``.
    """
    plan, rend, parts, optics, truth = _setup(
        n_particles,
        box,
        apix_A,
        map_path,
        snr,
        junk_fraction,
        n_views,
        view_weights,
        junk_kinds,
        defocus_range_um,
        astig_A,
        voltage_kV,
        cs_mm,
        amp_contrast,
        max_shift_A,
        ctf,
        seed,
        "particles.mrcs",
        map_apix_A,
        phantom,
    )
    images = np.empty((n_particles, box, box), dtype=np.float32)
    clean = np.empty_like(images) if return_clean else None
    for b, start in enumerate(range(0, n_particles, CHUNK)):
        stop = min(start + CHUNK, n_particles)
        img, cl = rend.render(start, stop, _block_rng(seed, b), return_clean)
        images[start:stop] = img
        if clean is not None and cl is not None:
            clean[start:stop] = cl
    return SimData(
        images,
        truth,
        plan.ctf if ctf else None,
        parts,
        optics,
        clean,
        box,
        float(apix_A),
        plan.view_dirs,
    )


def simulate(
    out_dir: str | os.PathLike[str],
    n_particles: int = 1000,
    box: int = 128,
    apix_A: float = 1.5,
    map_path: MapSource = None,
    snr: float = 0.05,
    junk_fraction: float = 0.15,
    n_views: int | None = None,
    view_weights: ViewWeights = None,
    junk_kinds: tuple[str, ...] = JUNK_KINDS,
    defocus_range_um: tuple[float, float] = (1.0, 2.5),
    astig_A: float = 300.0,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amp_contrast: float = 0.1,
    max_shift_A: float | None = None,
    ctf: bool = True,
    seed: int = 0,
    float16: bool = False,
    progress: object = None,
    map_apix_A: float | None = None,
    phantom: str = "compact",
) -> SimResult:
    """Simulate a particle set on disk: ``particles.star``, ``particles.mrcs``, ``truth.star``.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created if missing).
    n_particles, box, apix_A : int, int (px, even), float (Å/px)
    map_path : path-like, optional
        A 3D map (.mrc, or a cubic array) resampled to ``box`` at ``apix_A``; default: the
        built-in phantom. ``map_apix_A`` overrides its voxel size (header / unset = apix_A).
    phantom : str
        Shape of the built-in phantom (:data:`engine.sim.phantom.SHAPES`: ``"compact"``,
        ``"elongated"``); ignored with ``map_path``.
    snr : float
        Signal variance inside the particle's circle / noise variance.
    junk_fraction : float
        Fraction of junk images, kinds drawn uniformly from ``junk_kinds``.
    n_views : int, optional
        Number of well-separated viewing directions (Fibonacci sphere, ~2° jitter),
        drawn with probabilities ``view_weights``; default: uniformly random views.
    defocus_range_um, astig_A, voltage_kV, cs_mm, amp_contrast : CTF (per micrograph of
        100 particles; ``ctf=False`` for none).
    max_shift_A : float, optional
        Largest origin offset (default 3% of the box).
    seed : int
    float16 : bool
        Write the stack as MRC mode 12.
    progress : callable, optional
        Called as ``progress(done, total)`` after each block.

    The stack is written in blocks of :data:`CHUNK` particles (bounded memory).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan, rend, parts, optics, truth = _setup(
        n_particles,
        box,
        apix_A,
        map_path,
        snr,
        junk_fraction,
        n_views,
        view_weights,
        junk_kinds,
        defocus_range_um,
        astig_A,
        voltage_kV,
        cs_mm,
        amp_contrast,
        max_shift_A,
        ctf,
        seed,
        "particles.mrcs",
        map_apix_A,
        phantom,
    )
    stack = out / "particles.mrcs"
    with new_stack(stack, n_particles, box, apix_A, float16=float16) as w:
        for b, start in enumerate(range(0, n_particles, CHUNK)):
            stop = min(start + CHUNK, n_particles)
            img, _ = rend.render(start, stop, _block_rng(seed, b), False)
            w.write(start, img)
            if callable(progress):
                progress(stop, n_particles)
    pstar, tstar = out / "particles.star", out / "truth.star"
    write_star(pstar, {"optics": optics, "particles": parts})
    write_star(tstar, {"optics": optics, "particles": truth})
    return SimResult(
        out, pstar, stack, tstar, truth, n_particles, box, float(apix_A), time.perf_counter() - t0
    )

"""Planning a simulation: viewing directions, poses, junk kinds, micrographs and CTFs of every
particle, drawn from one seed before any image is rendered (:mod:`engine.sim.render`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.ctf import CtfParams
from engine.errors import ParameterError
from engine.sim.junk import JUNK_KINDS

__all__ = [
    "Plan",
    "make_plan",
    "validate_settings",
    "fibonacci_views",
    "PER_MICROGRAPH",
    "N_REFERENCE_VIEWS",
    "ViewWeights",
    "viewing_directions",
    "direction_angles",
]

#: relative frequency of each of the ``n_views`` views (None: all equal)
ViewWeights = np.ndarray | list[float] | None

N_REFERENCE_VIEWS = 20  # random views: _tdcViewId = nearest of this many Fibonacci views
PER_MICROGRAPH = 100


def fibonacci_views(k: int) -> np.ndarray:
    """``k`` well-separated viewing directions on the sphere, ``(k, 2)`` (rot, tilt) degrees."""
    i = np.arange(k, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / k
    tilt = np.rad2deg(np.arccos(z))
    rot = np.mod(i * 180.0 * (3.0 - np.sqrt(5.0)), 360.0)
    return np.stack([rot, tilt], axis=1)


def viewing_directions(rot_deg: np.ndarray, tilt_deg: np.ndarray) -> np.ndarray:
    """Unit viewing directions ``(..., 3)`` of RELION angles ``rot, tilt`` (degrees)."""
    r, t = np.deg2rad(rot_deg), np.deg2rad(tilt_deg)
    return np.stack([np.sin(t) * np.cos(r), np.sin(t) * np.sin(r), np.cos(t)], axis=-1)


def direction_angles(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rot, tilt)`` degrees of directions ``d`` ``(n, 3)`` (any length)."""
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    tilt = np.rad2deg(np.arccos(np.clip(d[:, 2], -1.0, 1.0)))
    rot = np.mod(np.rad2deg(np.arctan2(d[:, 1], d[:, 0])), 360.0)
    return rot, tilt


@dataclass
class Plan:
    rot: np.ndarray
    tilt: np.ndarray
    psi: np.ndarray
    ox_px: np.ndarray
    oy_px: np.ndarray
    view_id: np.ndarray
    kind: np.ndarray  # (n,) object: "" or a junk kind
    extras: dict[int, np.ndarray]  # aggregate row -> (m, 5) rot, tilt, psi, ox, oy
    ctf: CtfParams
    view_dirs: np.ndarray


def validate_settings(
    n: int,
    box: int,
    apix_A: float,
    snr: float,
    junk_fraction: float,
    n_views: int | None,
    view_weights: ViewWeights,
    junk_kinds: tuple[str, ...],
) -> None:
    errs = []
    if n < 1:
        errs.append(f"n_particles must be >= 1 (got {n})")
    if box < 16 or box % 2:
        errs.append(f"box must be even and >= 16 px (got {box})")
    if apix_A <= 0:
        errs.append(f"apix must be > 0 Å (got {apix_A})")
    if snr <= 0:
        errs.append(f"snr must be > 0 (got {snr})")
    if not 0.0 <= junk_fraction <= 1.0:
        errs.append(f"junk fraction must be in [0, 1] (got {junk_fraction})")
    bad = [k for k in junk_kinds if k not in JUNK_KINDS]
    if bad or (junk_fraction > 0 and not junk_kinds):
        errs.append(f"junk kinds must be among {', '.join(JUNK_KINDS)} (got {bad or 'none'})")
    if n_views is not None and n_views < 1:
        errs.append(f"views must be >= 1 (got {n_views})")
    if view_weights is not None:
        w = np.asarray(view_weights, dtype=np.float64)
        if n_views is None or w.shape != (n_views,) or (w < 0).any() or w.sum() <= 0:
            errs.append("view_weights needs n_views non-negative numbers (not all 0)")
    if errs:
        raise ParameterError("; ".join(errs))


def make_plan(
    n: int,
    box: int,
    n_views: int | None,
    view_weights: ViewWeights,
    junk_fraction: float,
    junk_kinds: tuple[str, ...],
    defocus_range_um: tuple[float, float],
    astig_A: float,
    voltage_kV: float,
    cs_mm: float,
    amp_contrast: float,
    max_shift_px: float,
    rng: np.random.Generator,
) -> Plan:
    k = n_views if n_views is not None else N_REFERENCE_VIEWS
    views = fibonacci_views(k)
    vdirs = viewing_directions(views[:, 0], views[:, 1])
    if n_views is not None:
        w = (
            np.full(k, 1.0 / k)
            if view_weights is None
            else np.asarray(view_weights, np.float64) / np.sum(np.asarray(view_weights, np.float64))
        )
        view_id = rng.choice(k, size=n, p=w)
        d = vdirs[view_id] + np.deg2rad(2.0) * rng.standard_normal((n, 3))  # ~2 deg jitter
        rot, tilt = direction_angles(d)
    else:
        d = rng.standard_normal((n, 3))
        rot, tilt = direction_angles(d)
        view_id = np.argmax(viewing_directions(rot, tilt) @ vdirs.T, axis=1)
    psi = rng.uniform(0.0, 360.0, n)
    r = max_shift_px * np.sqrt(rng.uniform(0.0, 1.0, n))
    a = rng.uniform(0.0, 2.0 * np.pi, n)
    ox, oy = r * np.cos(a), r * np.sin(a)

    kind = np.full(n, "", dtype=object)
    n_junk = int(round(junk_fraction * n))
    junk_rows = np.sort(rng.permutation(n)[:n_junk])
    if n_junk:
        kind[junk_rows] = rng.choice(np.array(junk_kinds, dtype=object), size=n_junk)
    view_id = np.where(kind == "", view_id, -1).astype(np.int64)
    extras: dict[int, np.ndarray] = {}
    for i in junk_rows:
        if kind[i] in ("noise", "ice", "carbon"):
            rot[i] = tilt[i] = psi[i] = ox[i] = oy[i] = 0.0
        elif kind[i] == "offcentre":
            b = rng.uniform(0.0, 2.0 * np.pi)
            ox[i], oy[i] = 0.4 * box * np.cos(b), 0.4 * box * np.sin(b)
        else:  # aggregate: 1-3 more copies around this one
            m = int(rng.integers(1, 4))
            e = np.empty((m, 5))
            e[:, 1] = np.rad2deg(np.arccos(rng.uniform(-1.0, 1.0, m)))
            e[:, 0] = rng.uniform(0.0, 360.0, m)
            e[:, 2] = rng.uniform(0.0, 360.0, m)
            dists = rng.uniform(0.2, 0.35, m) * box
            bearings = rng.uniform(0.0, 2.0 * np.pi, m)
            e[:, 3] = ox[i] + dists * np.cos(bearings)
            e[:, 4] = oy[i] + dists * np.sin(bearings)
            extras[int(i)] = e

    mic = np.arange(n) // PER_MICROGRAPH
    n_mic = int(mic[-1]) + 1
    lo, hi = sorted(defocus_range_um)
    df_mic = rng.uniform(lo * 1e4, hi * 1e4, n_mic)
    ast_mic = rng.uniform(0.0, astig_A, n_mic)
    ang_mic = rng.uniform(0.0, 180.0, n_mic)
    dfm = df_mic[mic] + rng.normal(0.0, 30.0, n)
    ctf = CtfParams(
        dfm + 0.5 * ast_mic[mic],
        dfm - 0.5 * ast_mic[mic],
        ang_mic[mic],
        np.full(n, voltage_kV),
        np.full(n, cs_mm),
        np.full(n, amp_contrast),
        np.zeros(n),
        np.zeros(n),
    )
    return Plan(rot, tilt, psi, ox, oy, view_id, kind, extras, ctf, views)

"""Reference-based class scoring: how well each 2D class average matches one view of a 3D map.

:func:`score_classes` projects the map (resampled to the classes' pixel size; box and pixel
size may differ) along a dense set of directions in the symmetry's asymmetric unit and
matches every class average against every projection over in-plane rotations and shifts
(never mirrored: handedness matters), CTF-free, inside the run's circular mask and in the
band ``1/band_low_A .. 1/band_high_A`` (ring-normalised correlation,
:mod:`engine.select.reference_polar`). Coarse to fine: every direction of a
``coarse_step_deg`` grid at ``coarse_high_A`` first; then, around each class's best
``n_candidates`` coarse directions, every direction of a ``fine_step_deg`` grid in the full
band with finer shifts and rotations.

Per class it reports

``structure``
    the best ring-normalised correlation with each image's rotational average removed
    (``m = 0`` left out): a single view of the map scores high, a mixture of views, a round
    blob and noise do not (calibration in :data:`CALIBRATION`);
``correlation``
    the same correlation at that pose with the rotational average kept;
``rot_deg, tilt_deg, psi_deg``, ``shift_x_px, shift_y_px``
    the matching projection in RELION's convention (the direction in the asymmetric unit);
``verdict``
    ``single`` (``structure >= SINGLE_VIEW_MIN``), ``blurred`` (a mixture of views or a
    blurred average) or ``none`` (``structure < NO_STRUCTURE_MAX``: noise, a blob, junk);
``view``
    single-view classes whose directions lie within ``view_radius_deg`` of each other
    (symmetry-aware) share a view number (1 = most particles); 0 for the others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.core.fourier import soft_circular_mask
from engine.core.projection import VolumeProjector, euler_matrix, resample_volume
from engine.errors import ParameterError
from engine.select import reference_grid as grid
from engine.select import reference_polar as pol

__all__ = [
    "ReferenceSettings",
    "ReferenceScores",
    "score_classes",
    "prepare_projector",
    "density_centres",
    "REFERENCE_COLUMNS",
    "SINGLE_VIEW_MIN",
    "NO_STRUCTURE_MAX",
    "CALIBRATION",
]

#: structure score at and above which a class shows a single view (calibration below)
SINGLE_VIEW_MIN = 0.89
#: structure score below which a class has no structure of the map (noise, blob, junk)
NO_STRUCTURE_MAX = 0.43
#: the calibration (``benchmarks/reference_score.py calibrate``, phantom C1 and beta-gal D2,
#: box 64 at 3-3.54 Å, 50/100/200 particles per average at SNR 0.05, two seeds each)
CALIBRATION = (
    "single views 0.86-0.99 (beta-gal 0.91-0.99), 50/50 mixtures of two views 0.57-0.89, "
    "Gaussian blobs and noise 0.18-0.28; at 0.89 one of 96 single views and one of 96 "
    "mixtures fall on the wrong side"
)

#: columns of :meth:`ReferenceScores.table` (``_tdcRef*`` in run_model.star)
REFERENCE_COLUMNS = (
    "tdcRefStructure",
    "tdcRefCorrelation",
    "tdcRefVerdict",
    "tdcRefView",
    "tdcRefRot",
    "tdcRefTilt",
    "tdcRefPsi",
    "tdcRefShiftAngst",
)


@dataclass
class ReferenceSettings:
    """Every parameter of the scoring, with its unit."""

    band_low_A: float = 200.0  # lowest resolution compared (Å)
    band_high_A: float = 12.0  # highest resolution compared (Å), never past 2.2 px
    coarse_high_A: float = 20.0  # highest resolution of the coarse search (Å)
    coarse_step_deg: float = 5.0  # direction spacing of the coarse search
    fine_step_deg: float = 2.0  # direction spacing of the fine search
    n_candidates: int = 5  # coarse directions refined per class
    shift_range_A: float = 12.0  # largest shift searched (Å)
    n_psi: int = 128  # in-plane rotations of the fine search (then parabolic refinement)
    n_psi_coarse: int = 64  # in-plane rotations of the coarse search
    view_radius_deg: float = 15.0  # directions closer than this are one view
    weighting: str = pol.WEIGHTING  # ring weights: "projection" or "class" power
    single_view_min: float = SINGLE_VIEW_MIN
    no_structure_max: float = NO_STRUCTURE_MAX


@dataclass
class ReferenceScores:
    """Per-class result of :func:`score_classes` (arrays ``(K,)`` in class order)."""

    structure: np.ndarray
    correlation: np.ndarray
    rot_deg: np.ndarray
    tilt_deg: np.ndarray
    psi_deg: np.ndarray
    shift_x_px: np.ndarray
    shift_y_px: np.ndarray
    verdict: np.ndarray  # object: "single" / "blurred" / "none"
    view: np.ndarray  # int64, 0 unless single
    apix_A: float
    symmetry: str
    projections: np.ndarray  # (K, b, b) float32: best projection posed like the class, low-passed
    seconds: float = 0.0
    n_directions: dict[str, int] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The :data:`REFERENCE_COLUMNS` (one row per class)."""
        return pd.DataFrame(
            {
                "tdcRefStructure": np.round(self.structure, 4),
                "tdcRefCorrelation": np.round(self.correlation, 4),
                "tdcRefVerdict": self.verdict.astype(str),
                "tdcRefView": self.view.astype(np.int64),
                "tdcRefRot": np.round(self.rot_deg, 2),
                "tdcRefTilt": np.round(self.tilt_deg, 2),
                "tdcRefPsi": np.round(self.psi_deg, 2),
                "tdcRefShiftAngst": np.round(
                    np.hypot(self.shift_x_px, self.shift_y_px) * self.apix_A, 2
                ),
            }
        )


def prepare_projector(
    volume: np.ndarray, map_apix_A: float, b: int, apix_A: float
) -> tuple[VolumeProjector, int]:
    """The map resampled to ``apix_A`` (box at least ``b``, the whole map kept), its density's
    centre moved to the box centre: the projector and its box."""
    v = np.asarray(volume, dtype=np.float32)
    if v.ndim != 3 or len(set(v.shape)) != 1 or v.shape[0] < 4:
        raise ParameterError(f"the reference must be a cubic 3D map, got shape {v.shape}")
    if not np.isfinite(v).all() or float(v.std()) == 0.0:
        raise ParameterError("the reference map is empty or holds non-finite values")
    n = v.shape[0]
    m = int(round(n * map_apix_A / apix_A))
    big = max(b, m + (m % 2))
    vol = resample_volume(v, map_apix_A, big, apix_A)
    dens = np.clip(vol - 0.1 * float(vol.max()), 0.0, None)
    tot = float(dens.sum())
    if tot > 0:
        ax = np.arange(big, dtype=np.float64) - big // 2
        com = [
            float((dens.sum(axis=tuple(a for a in range(3) if a != k)) * ax).sum() / tot)
            for k in range(3)
        ]  # z, y, x
        vol = np.roll(vol, [-int(round(c)) for c in com], axis=(0, 1, 2))
    return VolumeProjector(vol, pad=2), big


def _project(
    proj: VolumeProjector, big: int, b: int, dirs: np.ndarray, chunk: int = 128
) -> np.ndarray:
    """Projections (psi 0, centred) along ``dirs`` ``(n, 3)``, cropped to ``(n, b, b)``.

    The slice kernel releases the GIL: chunks run on one thread per core."""
    rot, tilt = grid.directions_to_angles(dirs)
    o = big // 2 - b // 2
    out = np.empty((len(rot), b, b), dtype=np.float32)

    def one(s: int) -> None:
        e = min(s + chunk, len(rot))
        out[s:e] = proj.project(rot[s:e], tilt[s:e])[:, o : o + b, o : o + b]

    starts = list(range(0, len(rot), chunk))
    if len(starts) == 1:
        one(0)
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(len(starts), os.cpu_count() or 1))) as ex:
            list(ex.map(one, starts))
    return out


def _projection_spectra(
    proj: VolumeProjector,
    big: int,
    dirs: np.ndarray,
    mask: np.ndarray,
    band: pol.PolarBand,
    weighting: str,
    apix_A: float,
    r_in: float,
    chunk: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Projection factors (:func:`reference_polar.projection_factors`) ``(n, R, n_m)`` of the
    projections along ``dirs``, each about its density centre, and those centres ``(n, 2)``."""
    out = np.empty((dirs.shape[0], band.radii.size, band.n_m), dtype=np.complex64)
    centres = np.empty((dirs.shape[0], 2))
    for s in range(0, dirs.shape[0], chunk):
        e = min(s + chunk, dirs.shape[0])
        imgs = _project(proj, big, band.b, dirs[s:e])
        centres[s:e] = density_centres(imgs, apix_A, r_in)
        out[s:e] = pol.projection_factors(
            pol.angular_spectra(imgs, mask, band, centres_px=centres[s:e]), band.radii, weighting
        )
    return out, centres


def density_centres(imgs: np.ndarray, apix_A: float, r_in: float) -> np.ndarray:
    """Centre of the density of each image ``(n, b, b)`` relative to the box centre, ``(n, 2)``
    (x, y) px: centre of mass of the part above the median inside ``r_in`` px, after a
    12 Å low-pass; at most ``r_in / 2`` from the box centre. The same for classes and
    projections, so that each one's rotational average is taken about the same point of the
    particle."""
    n, b, _ = imgs.shape
    g = _lowpass(np.asarray(imgs, dtype=np.float32), apix_A, max(12.0, 2.5 * apix_A))
    y, x = np.mgrid[0:b, 0:b].astype(np.float64) - b // 2
    inside = np.hypot(x, y) < r_in
    v = g[:, inside].astype(np.float64)
    dens = np.clip(v - np.median(v, axis=1, keepdims=True), 0.0, None)
    tot = dens.sum(axis=1)
    tot = np.where(tot > 0, tot, 1.0)
    c = np.stack([(dens * x[inside]).sum(axis=1) / tot, (dens * y[inside]).sum(axis=1) / tot], 1)
    r = np.hypot(c[:, 0], c[:, 1])
    return c * np.minimum(1.0, 0.5 * r_in / np.where(r > 0, r, 1.0))[:, None]


def _lowpass(imgs: np.ndarray, apix_A: float, res_A: float) -> np.ndarray:
    """Gaussian low-pass (amplitude 1/2 at ``1/res_A``) of ``(n, b, b)`` images."""
    b = imgs.shape[-1]
    f = np.hypot(np.fft.fftfreq(b)[:, None], np.fft.rfftfreq(b)[None, :]) / apix_A
    filt = np.exp(-np.log(2.0) * (f * res_A) ** 2)
    return np.fft.irfft2(np.fft.rfft2(imgs) * filt, s=(b, b)).astype(np.float32)


def _parabola(cm: float, c0: float, cp: float) -> float:
    d = cm - 2.0 * c0 + cp
    return 0.0 if d >= 0 else float(np.clip(0.5 * (cm - cp) / d, -0.5, 0.5))


def _refine(
    image: np.ndarray,
    mask: np.ndarray,
    band: pol.PolarBand,
    p_row: np.ndarray,
    t0: np.ndarray,
    step: float,
    wt: str,
    centre: np.ndarray,
    rounds: int = 3,
) -> tuple[np.ndarray, float, float]:
    """Shift and rotation of one class against one projection, refined: ``rounds`` times the
    best of a 3 x 3 grid of shifts at half the previous step, then a parabola through the
    best rotation and its neighbours. Returns ``(shift (2,), psi_deg, score)``."""
    t = np.asarray(t0, dtype=np.float64)
    offs = np.array([(x, y) for y in (-1, 0, 1) for x in (-1, 0, 1)], dtype=np.float64)
    for _ in range(rounds):
        step *= 0.5
        ts = t[None] + step * offs
        spec = pol.angular_spectra(image[None], mask, band, ts, centres_px=centre[None])
        cls = pol.class_factors(spec[0], band.radii, wt)
        s, _ = pol.best_rotations(p_row[None], cls, band.n_psi)
        t = ts[int(np.argmax(s[0]))]
    cls = pol.class_factors(
        pol.angular_spectra(image[None], mask, band, t[None], centres_px=centre[None])[0, 0],
        band.radii,
        wt,
    )
    s, j = pol.best_rotations(p_row[None], cls[None], band.n_psi)
    jj = int(j[0, 0])
    vals = np.asarray(pol.score_at(p_row, cls, np.array([jj - 1, jj, jj + 1]) * 360.0 / band.n_psi))
    psi = (jj + _parabola(*vals)) * 360.0 / band.n_psi
    return t, float(psi), float(pol.score_at(p_row, cls, psi))


def _check(classes: np.ndarray, apix_A: float, map_apix_A: float) -> np.ndarray:
    c = np.asarray(classes, dtype=np.float32)
    if c.ndim != 3 or c.shape[1] != c.shape[2] or c.shape[1] < 8:
        raise ParameterError(f"class averages must be (K, b, b) with b >= 8, got {c.shape}")
    if not apix_A > 0 or not map_apix_A > 0:
        raise ParameterError(
            f"pixel sizes must be > 0 Å (classes {apix_A}, map {map_apix_A}): give the "
            "map's pixel size if its header has none"
        )
    return np.nan_to_num(c)


def score_classes(
    classes: np.ndarray,
    apix_A: float,
    volume: np.ndarray,
    map_apix_A: float,
    symmetry: str = "C1",
    diameter_A: float | None = None,
    weights: np.ndarray | None = None,
    settings: ReferenceSettings | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> ReferenceScores:
    """Score class averages against a 3D map (see the module docstring).

    Parameters
    ----------
    classes : ``(K, b, b)`` float
        Class averages (protein bright), centre at ``(b//2, b//2)``.
    apix_A : float
        Their pixel size (Å).
    volume : ``(n, n, n)`` float
        The map, indexed ``[z, y, x]``, density positive.
    map_apix_A : float
        Its voxel size (Å).
    symmetry : str
        Point group of the map: ``C1``, ``Cn`` or ``Dn`` (RELION's axes).
    diameter_A : float, optional
        The run's inner mask diameter (Å); default 85% of the class box. The mask's soft edge
        runs out to 1.2 x that, capped at the box.
    weights : ``(K,)`` float, optional
        Particle counts, to number the views by population (default: equal).
    settings : ReferenceSettings, optional
    progress : callable, optional
        ``progress(stage, fraction_done)``.

    Returns
    -------
    ReferenceScores
    """
    t0 = time.perf_counter()
    st = settings or ReferenceSettings()
    sym = grid.normalise_symmetry(symmetry)
    imgs = _check(classes, float(apix_A), float(map_apix_A))
    k, b, _ = imgs.shape
    apix_A = float(apix_A)
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    say = progress or (lambda stage, frac: None)
    wt = st.weighting

    ops = grid.symmetry_operators(sym)
    d_in = 0.85 * b * apix_A if diameter_A is None else float(diameter_A)
    r_in = min(d_in / 2.0 / apix_A, b / 2.0 - 1.0)
    mask = soft_circular_mask(b, r_in, min(1.2 * r_in, b / 2.0))
    high = max(st.band_high_A, 2.2 * apix_A)
    coarse_high = max(st.coarse_high_A, high)
    fine_band = pol.make_band(b, apix_A, st.band_low_A, high, st.n_psi)
    coarse_band = pol.make_band(b, apix_A, st.band_low_A, coarse_high, st.n_psi_coarse)
    proj, big = prepare_projector(volume, float(map_apix_A), b, apix_A)
    q = density_centres(imgs, apix_A, r_in)  # each class about its density centre

    # ---- coarse: every direction of the asymmetric unit, coarse shifts and rotations
    say("coarse search", 0.0)
    full_coarse = grid.sphere_directions(st.coarse_step_deg)
    coarse = full_coarse[grid.asymmetric_unit(full_coarse, ops)]
    range_px = st.shift_range_A / apix_A
    c_step = max(1.0, 0.25 * coarse_high / apix_A)
    shifts = pol.shift_grid(range_px, c_step)
    n_t = shifts.shape[0]
    cls_c = pol.class_factors(
        pol.angular_spectra(imgs, mask, coarse_band, shifts, centres_px=q),
        coarse_band.radii,
        weighting=wt,
    ).reshape(k * n_t, coarse_band.radii.size, coarse_band.n_m)
    p_c, _ = _projection_spectra(proj, big, coarse, mask, coarse_band, wt, apix_A, r_in)
    sc, _ = pol.best_rotations(p_c, cls_c, coarse_band.n_psi)
    sc = sc.reshape(-1, k, n_t)
    best_t = np.argmax(sc, axis=2)  # (N, K)
    sc_dir = np.take_along_axis(sc, best_t[..., None], axis=2)[..., 0]  # (N, K)

    # ---- candidates: the best few coarse directions per class, at least 2 steps apart
    fine_grid = grid.sphere_directions(st.fine_step_deg)
    radius = 1.25 * st.coarse_step_deg
    cand_idx: list[np.ndarray] = []
    cand_shift: list[np.ndarray] = []
    for c in range(k):
        order = np.argsort(-sc_dir[:, c])
        chosen: list[int] = []
        for i in order:
            if len(chosen) >= st.n_candidates:
                break
            if (
                chosen
                and grid.angular_distance_deg(coarse[i], coarse[chosen], ops).min()
                < 2.0 * st.coarse_step_deg
            ):
                continue
            chosen.append(int(i))
        cand_idx.append(grid.neighbours(fine_grid, coarse[chosen], radius))
        cand_shift.append(shifts[best_t[chosen[0], c]])
    union = np.unique(np.concatenate(cand_idx))
    say("fine search", 0.3)
    p_f, c_f = _projection_spectra(proj, big, fine_grid[union], mask, fine_band, wt, apix_A, r_in)
    where = {int(g): i for i, g in enumerate(union)}

    # ---- fine: per class, its candidate directions, finer shifts and rotations
    f_step = 0.5 * c_step
    res = {n: np.zeros(k) for n in ("s", "psi", "tx", "ty")}
    best_dir = np.zeros((k, 3))
    full_corr = np.zeros(k)
    for c in range(k):
        t_f = pol.shift_grid(c_step * 1.01, f_step, tuple(cand_shift[c]))
        spec = pol.angular_spectra(imgs[c : c + 1], mask, fine_band, t_f, centres_px=q[c : c + 1])[
            0
        ]
        cls_f = pol.class_factors(spec, fine_band.radii, weighting=wt)
        rows = np.array([where[int(g)] for g in cand_idx[c]])
        s, _ = pol.best_rotations(p_f[rows], cls_f, fine_band.n_psi)
        i_d, i_t = np.unravel_index(int(np.argmax(s)), s.shape)
        best_dir[c] = fine_grid[cand_idx[c][i_d]]
        p_row, p_c = p_f[rows[i_d]], c_f[rows[i_d]]
        t, psi, res["s"][c] = _refine(imgs[c], mask, fine_band, p_row, t_f[i_t], f_step, wt, q[c])
        res["psi"][c] = psi
        # class and projection were compared each about its own centre (q, p_c): the class
        # is the projection turned by +psi and moved by -(t - q + R(psi) p_c)
        a = np.deg2rad(psi)
        rot_p = np.array(
            [np.cos(a) * p_c[0] - np.sin(a) * p_c[1], np.sin(a) * p_c[0] + np.cos(a) * p_c[1]]
        )
        res["tx"][c], res["ty"][c] = t - q[c] + rot_p
        # the correlation at that pose, rotational average included
        one = _project(proj, big, b, best_dir[c : c + 1])
        p_spec = pol.angular_spectra(one, mask, fine_band, structure=False, centres_px=p_c[None])
        p_full = pol.projection_factors(p_spec, fine_band.radii, wt)[0]
        c_spec = pol.angular_spectra(imgs[c : c + 1], mask, fine_band, t[None], False, q[c : c + 1])
        c_full = pol.class_factors(c_spec[0, 0], fine_band.radii, wt)
        full_corr[c] = float(pol.score_at(p_full, c_full, psi))
        say("fine search", 0.3 + 0.65 * (c + 1) / k)

    # ---- report: RELION angles, the posed best projections, verdicts and views
    rot, tilt = grid.directions_to_angles(best_dir)
    # class ~ projection turned by +psi, moved by -t: RELION psi = -psi, origin = t
    a = euler_matrix(rot, tilt, -res["psi"])
    # the same projection from the symmetry mate in the asymmetric unit: A' = A g^T
    g = ops[grid.canonical_operator(best_dir, ops)]
    c_rot, c_tilt, c_psi = grid.matrix_to_angles(a @ np.transpose(g, (0, 2, 1)))
    o = big // 2 - b // 2
    posed = proj.project(c_rot, c_tilt, c_psi, res["tx"], res["ty"])[:, o : o + b, o : o + b]
    posed = _lowpass(posed, apix_A, high)
    verdict = np.where(
        res["s"] >= st.single_view_min,
        "single",
        np.where(res["s"] < st.no_structure_max, "none", "blurred"),
    ).astype(object)
    view = np.zeros(k, dtype=np.int64)
    single = np.flatnonzero(verdict == "single")
    if single.size:
        canon = grid.angles_to_directions(c_rot, c_tilt)
        view[single] = grid.cluster_directions(canon[single], ops, st.view_radius_deg, w[single])
    say("done", 1.0)
    return ReferenceScores(
        structure=res["s"],
        correlation=full_corr,
        rot_deg=c_rot,
        tilt_deg=c_tilt,
        psi_deg=c_psi,
        shift_x_px=res["tx"],
        shift_y_px=res["ty"],
        verdict=verdict,
        view=view,
        apix_A=apix_A,
        symmetry=sym,
        projections=np.ascontiguousarray(posed, dtype=np.float32),
        seconds=time.perf_counter() - t0,
        n_directions={"coarse": int(coarse.shape[0]), "fine": int(union.size)},
    )

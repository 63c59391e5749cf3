"""Score a finished job against the ground truth of a simulation (``truth.star``).

Used by the tests and by ``benchmarks/quality.py``. A class is *good* when most of its
members are good particles, else *junk*. Within each good class:

- view spread: mean angle between the members' true viewing directions and the class's
  mean direction (degrees);
- rotation error: circular standard deviation of ``psi_true - psi_est`` (a class average is
  the true view turned by one unknown angle, so this difference is constant when alignments
  are right);
- shift error: RMS of ``o_true - o_est - R(-psi_est) s`` with ``s`` the class's own offset
  fitted by least squares (pose convention: README / :mod:`engine.core.pose`).

Over the good particles of every class (junk classes included, junk particles left out):

- orientation coherence: each member's true 3D orientation expressed in the class frame
  (``A(rot, tilt, psi_true - psi_est)``: the true rotation composed with the assigned in-plane
  alignment), the class's mean orientation (chordal L2 mean of the rotation matrices), and
  the mean angle of the members to it; summarised as the particle-weighted median over
  classes (degrees). It grows when a class mixes views *or* aligns its members in-plane
  inconsistently;
- direction spread: mean angle between the members' viewing directions and the class's
  mean direction, particle-weighted median over classes (degrees);
- axis spread: the same with each direction and its opposite counted as one (the angle to
  the class's principal axis, at most 90°). The projections along ``d`` and ``-d`` are
  mirror images, alike at low resolution for many shapes; the gap between the direction
  spread and the axis spread is what a class loses to such mirror views.

:func:`oracle_coherence` gives the same numbers for the ideal grouping: the good particles
clustered by true viewing direction into K groups, each aligned in-plane optimally.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.core.projection import Projector
from engine.io.jobfolder import JobFiles
from engine.io.star import read_star
from engine.sim.plan import viewing_directions

__all__ = [
    "Evaluation",
    "evaluate_job",
    "evaluate_arrays",
    "oracle_coherence",
    "direction_clusters",
    "class_frame_rotations",
    "mean_rotation",
    "rotation_angles_deg",
    "weighted_median",
]


@dataclass
class Evaluation:
    """Summary numbers (see module docstring) and one row per class."""

    view_purity: float  # good particles in a good class of their own majority view
    view_spread_deg: float  # particle-weighted mean over good classes
    psi_error_deg: float  # particle-weighted mean over good classes
    shift_error_A: float  # RMS over good particles in good classes
    junk_in_junk: float  # fraction of junk particles that landed in junk classes
    good_in_good: float  # fraction of good particles that landed in good classes
    n_good_classes: int
    n_junk_classes: int
    views_found: int  # distinct true views that are the majority of a good class
    n_views: int
    classes: pd.DataFrame
    coherence_deg: float = float("nan")  # weighted median over classes (module docstring)
    direction_spread_deg: float = float("nan")  # weighted median over classes
    axis_spread_deg: float = float("nan")  # the same, d and -d as one (module docstring)

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k != "classes"}


def class_frame_rotations(
    rot_deg: np.ndarray, tilt_deg: np.ndarray, psi_true_deg: np.ndarray, psi_est_deg: np.ndarray
) -> np.ndarray:
    """True orientations in the class frame, ``(n, 3, 3)``: ``A(rot, tilt, psi_t - psi_e)``.

    A particle is the projection at ``A(rot, tilt, psi_t)`` and the class average is the
    particle turned back by its assigned ``psi_e`` (both RELION's sign), i.e. the projection
    at ``Rz(-psi_e) A(rot, tilt, psi_t) = A(rot, tilt, psi_t - psi_e)``.
    """
    from engine.core.projection import euler_matrix

    return euler_matrix(rot_deg, tilt_deg, np.asarray(psi_true_deg) - np.asarray(psi_est_deg))


def mean_rotation(R: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of rotations ``(n, 3, 3)``: the rotation nearest their average matrix."""
    U, _, Vt = np.linalg.svd(R.mean(axis=0))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    return U @ D @ Vt


def rotation_angles_deg(R: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Angle (degrees) of the rotation between each ``R[i]`` and ``Q``."""
    tr = np.einsum("ij,nij->n", Q, R)
    return np.rad2deg(np.arccos(np.clip(0.5 * (tr - 1.0), -1.0, 1.0)))


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value below which half of the total weight lies (nan when empty)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(v) & (w > 0)
    if not ok.any():
        return float("nan")
    order = np.argsort(v[ok])
    cw = np.cumsum(w[ok][order])
    return float(v[ok][order][np.searchsorted(cw, 0.5 * cw[-1])])


def _coherence_of(R: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """Mean angle to the mean rotation, and mean angle to the mean direction (degrees)."""
    coh = float(rotation_angles_deg(R, mean_rotation(R)).mean())
    md = d.mean(axis=0)
    md /= np.linalg.norm(md) + 1e-12
    spread = float(np.rad2deg(np.arccos(np.clip(d @ md, -1.0, 1.0))).mean())
    return coh, spread


def _axis_spread_of(d: np.ndarray) -> float:
    """Mean angle (degrees) of the directions ``d`` to their principal axis, ``d`` and ``-d``
    alike."""
    axis = np.linalg.eigh(d.T @ d)[1][:, -1]
    return float(np.rad2deg(np.arccos(np.clip(np.abs(d @ axis), 0.0, 1.0))).mean())


def _best_inplane(R: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """``Rz(a_i) R_i`` with the in-plane angle ``a_i`` that brings each nearest to ``Q``."""
    M = np.einsum("nij,kj->nik", R, Q)  # R_i Q^T; trace(Rz(a) M) is maximised
    a = np.arctan2(M[:, 0, 1] - M[:, 1, 0], M[:, 0, 0] + M[:, 1, 1])
    ca, sa = np.cos(a), np.sin(a)
    Rz = np.zeros((len(a), 3, 3))
    Rz[:, 0, 0] = ca
    Rz[:, 0, 1] = -sa
    Rz[:, 1, 0] = sa
    Rz[:, 1, 1] = ca
    Rz[:, 2, 2] = 1.0
    return np.einsum("nij,njk->nik", Rz, R)


def direction_clusters(
    d: np.ndarray, k: int, seed: int = 0, iters: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of unit viewing directions ``d`` ``(n, 3)``: ``(labels (n,), centres
    (k, 3))``, ``k <= n``."""
    rng = np.random.default_rng(seed)
    centres = d[rng.choice(len(d), size=k, replace=False)]
    lab = np.zeros(len(d), np.int64)
    for _ in range(iters):
        lab = np.argmax(d @ centres.T, axis=1)
        for c in range(k):
            m = lab == c
            v = d[m].mean(axis=0) if m.any() else d[rng.integers(len(d))]
            centres[c] = v / (np.linalg.norm(v) + 1e-12)
    return lab, centres


def oracle_coherence(
    truth: pd.DataFrame, k: int, seed: int = 0, iters: int = 30
) -> tuple[float, float]:
    """Coherence and direction spread (weighted medians, degrees) of the ideal grouping: the
    good particles in ``k`` clusters of their true viewing directions (spherical k-means),
    each member turned in-plane to the cluster's mean orientation."""
    from engine.core.projection import euler_matrix

    good = truth["tdcViewId"].to_numpy(np.int64) >= 0
    rot = truth["rlnAngleRot"].to_numpy(float)[good]
    tilt = truth["rlnAngleTilt"].to_numpy(float)[good]
    d = viewing_directions(rot, tilt)
    k = min(k, len(d))
    lab, _ = direction_clusters(d, k, seed, iters)
    R0 = euler_matrix(rot, tilt, np.zeros_like(rot))
    coh, spr, wts = [], [], []
    for c in range(k):
        m = lab == c
        if m.sum() < 2:
            continue
        R = R0[m]
        for _ in range(5):
            R = _best_inplane(R, mean_rotation(R))
        a, b = _coherence_of(R, d[m])
        coh.append(a)
        spr.append(b)
        wts.append(m.sum())
    return weighted_median(np.array(coh), np.array(wts)), weighted_median(
        np.array(spr), np.array(wts)
    )


def evaluate_arrays(
    cls: np.ndarray,
    psi_est: np.ndarray,
    ox_est: np.ndarray,
    oy_est: np.ndarray,
    truth: pd.DataFrame,
) -> Evaluation:
    """Score per-particle results (1-based classes, RELION pose columns in Å) against truth."""
    view = truth["tdcViewId"].to_numpy(np.int64)
    good = view >= 0
    d = viewing_directions(
        truth["rlnAngleRot"].to_numpy(float), truth["rlnAngleTilt"].to_numpy(float)
    )
    psi_t = truth["rlnAnglePsi"].to_numpy(float)
    Rc = class_frame_rotations(
        truth["rlnAngleRot"].to_numpy(float),
        truth["rlnAngleTilt"].to_numpy(float),
        psi_t,
        np.asarray(psi_est, dtype=float),
    )
    coh_rows: list[tuple[float, float, int, float]] = []
    o_t = truth[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy(float)
    o_e = np.stack([ox_est, oy_est], axis=1).astype(float)
    rows = []
    purity_hits = 0
    spread_w = psi_w = 0.0
    sq_shift = []
    junk_ok = good_ok = 0
    found: set[int] = set()
    for c in np.unique(cls):
        m = cls == c
        n = int(m.sum())
        g = m & good
        if g.sum() >= 2:
            coh_rows.append((*_coherence_of(Rc[g], d[g]), int(g.sum()), _axis_spread_of(d[g])))
        is_good = g.sum() > 0.5 * n
        if not is_good:
            junk_ok += int((m & ~good).sum())
            rows.append(
                dict(
                    cls=int(c),
                    n=n,
                    good=False,
                    view=-1,
                    spread=np.nan,
                    psi_err=np.nan,
                    shift_err=np.nan,
                )
            )
            continue
        good_ok += int(g.sum())
        vals, counts = np.unique(view[g], return_counts=True)
        major = int(vals[np.argmax(counts)])
        found.add(major)
        mv = g & (view == major)
        purity_hits += int(mv.sum())
        mean_d = d[mv].mean(axis=0)
        mean_d /= np.linalg.norm(mean_d) + 1e-12
        ang = np.rad2deg(np.arccos(np.clip(d[g] @ mean_d, -1, 1)))
        spread = float(ang.mean())
        dpsi = np.deg2rad(psi_t[mv] - psi_est[mv])
        Rlen = np.hypot(np.cos(dpsi).mean(), np.sin(dpsi).mean())
        psi_err = float(np.rad2deg(np.sqrt(max(-2.0 * np.log(max(Rlen, 1e-12)), 0.0))))
        a = np.deg2rad(psi_est[mv])
        ca, sa = np.cos(a), np.sin(a)
        dv = o_t[mv] - o_e[mv]
        # s = R(psi_est) dv for each member; the class offset is their mean
        s_each = np.stack([ca * dv[:, 0] - sa * dv[:, 1], sa * dv[:, 0] + ca * dv[:, 1]], 1)
        s = s_each.mean(axis=0)
        resid = s_each - s
        sq_shift.append((resid**2).sum(axis=1))
        shift_err = float(np.sqrt((resid**2).sum(axis=1).mean()))
        spread_w += spread * g.sum()
        psi_w += psi_err * mv.sum()
        rows.append(
            dict(
                cls=int(c),
                n=n,
                good=True,
                view=major,
                spread=spread,
                psi_err=psi_err,
                shift_err=shift_err,
            )
        )
    n_good = int(good.sum())
    n_junk = int((~good).sum())
    table = pd.DataFrame(rows)
    ch = np.array(coh_rows, dtype=np.float64).reshape(-1, 4)
    gm = table["good"].to_numpy(bool) if len(table) else np.zeros(0, bool)
    n_in_good = max(int(table.loc[gm, "n"].sum()) if len(table) else 0, 1)
    return Evaluation(
        view_purity=purity_hits / max(n_good, 1),
        view_spread_deg=spread_w / max(good_ok, 1),
        psi_error_deg=psi_w / max(purity_hits, 1),
        shift_error_A=float(np.sqrt(np.concatenate(sq_shift).mean())) if sq_shift else np.nan,
        junk_in_junk=junk_ok / n_junk if n_junk else 1.0,
        good_in_good=good_ok / max(n_good, 1),
        n_good_classes=int(gm.sum()),
        n_junk_classes=int((~gm).sum()),
        views_found=len(found),
        n_views=len(np.unique(view[good])),
        classes=table.assign(fraction_of_good=table["n"] / n_in_good) if len(table) else table,
        coherence_deg=weighted_median(ch[:, 0], ch[:, 2]),
        direction_spread_deg=weighted_median(ch[:, 1], ch[:, 2]),
        axis_spread_deg=weighted_median(ch[:, 3], ch[:, 2]),
    )


def evaluate_job(job_dir: str | Path, truth_star: str | Path) -> Evaluation:
    """Read ``run_data.star`` of ``job_dir`` and score it against ``truth_star``."""
    data = read_star(JobFiles(Path(job_dir)).data)["particles"]
    truth = read_star(truth_star)["particles"]
    if len(data) != len(truth):
        raise ValueError(f"{job_dir}: {len(data)} particles but the truth has {len(truth)}")
    truth = truth.rename(columns=lambda c: c.lstrip("_"))
    return evaluate_arrays(
        data["rlnClassNumber"].to_numpy(np.int64),
        data["rlnAnglePsi"].to_numpy(float),
        data["rlnOriginXAngst"].to_numpy(float),
        data["rlnOriginYAngst"].to_numpy(float),
        truth,
    )


def _euler_of(Q: np.ndarray) -> tuple[float, float, float]:
    """RELION's ``Euler_matrix2angles``: ``(rot, tilt, psi)`` degrees of a rotation matrix."""
    tilt = np.arccos(np.clip(Q[2, 2], -1.0, 1.0))
    if np.sin(tilt) > 1e-6:
        rot = np.arctan2(Q[2, 1], Q[2, 0])
        psi = np.arctan2(Q[1, 2], -Q[0, 2])
    else:
        rot = 0.0
        psi = np.arctan2(-Q[1, 0], Q[0, 0])
    return float(np.rad2deg(rot)), float(np.rad2deg(tilt)), float(np.rad2deg(psi))


def _frc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fourier ring correlation of two ``(n, n)`` images, one value per integer shell."""
    n = a.shape[0]
    A, B = np.fft.fftshift(np.fft.fft2(a)), np.fft.fftshift(np.fft.fft2(b))
    y, x = np.mgrid[0:n, 0:n] - n // 2
    sh = np.rint(np.hypot(x, y)).astype(np.int64)
    n_sh = n // 2 + 1
    sh = np.minimum(sh, n_sh)
    num = np.bincount(sh.ravel(), (A * np.conj(B)).real.ravel(), n_sh + 1)[:n_sh]
    da = np.bincount(sh.ravel(), (np.abs(A) ** 2).ravel(), n_sh + 1)[:n_sh]
    db = np.bincount(sh.ravel(), (np.abs(B) ** 2).ravel(), n_sh + 1)[:n_sh]
    return num / np.sqrt(np.maximum(da * db, 1e-300))


def _shift_to_match(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``img`` moved (Fourier phase ramp, sub-pixel) to its cross-correlation peak with ``ref``."""
    n = img.shape[0]
    F, G = np.fft.fft2(img), np.fft.fft2(ref)
    cc = np.fft.ifft2(G * np.conj(F)).real
    j = np.unravel_index(np.argmax(cc), cc.shape)
    sub = []
    for ax in (0, 1):
        m = list(j)
        m[ax] = (j[ax] - 1) % n
        p = list(j)
        p[ax] = (j[ax] + 1) % n
        a, b, c = cc[tuple(m)], cc[j], cc[tuple(p)]
        den = a - 2 * b + c
        sub.append(j[ax] + (0.5 * (a - c) / den if den < 0 else 0.0))
    dy, dx = [(s + n / 2) % n - n / 2 for s in sub]
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(n)[None, :]
    return np.fft.ifft2(F * np.exp(-2j * np.pi * (kx * dx + ky * dy))).real


def truth_frc_resolution(
    classes: np.ndarray,
    apix_small_A: float,
    cls: np.ndarray,
    psi_est: np.ndarray,
    truth: pd.DataFrame,
    projector: Projector,
    box: int,
    mask_radius_px: float,
) -> pd.DataFrame:
    """Each good class average against the noise-free projection at its members' mean
    class-frame orientation (the ideal average of the class): FRC 0.5 and 0.143 resolutions.

    ``classes`` ``(K, b, b)`` (``cls`` numbers them from 1), ``projector.slices`` as
    :class:`engine.sim.phantom.GaussianProjector` on the original ``box``; ``mask_radius_px`` in
    small-box pixels. Returns one row per good class: ``cls, n, res05_A, res0143_A``.
    """
    from engine.core.fourier import fourier_crop, soft_circular_mask

    b = classes.shape[-1]
    good = truth["tdcViewId"].to_numpy(np.int64) >= 0
    Rc = class_frame_rotations(
        truth["rlnAngleRot"].to_numpy(float),
        truth["rlnAngleTilt"].to_numpy(float),
        truth["rlnAnglePsi"].to_numpy(float),
        np.asarray(psi_est, float),
    )
    mask = soft_circular_mask(b, mask_radius_px, 1.2 * mask_radius_px)
    rows = []
    for c in np.unique(cls[cls > 0]):
        m = cls == c
        g = m & good
        if g.sum() <= 0.5 * m.sum() or g.sum() < 2:
            continue
        rot, tilt, psi = _euler_of(mean_rotation(Rc[g]))
        f = projector.slices(
            np.array([rot]),
            np.array([tilt]),
            np.array([psi]),
            np.zeros(1),
            np.zeros(1),
        )
        proj = fourier_crop(np.fft.irfft2(f, s=(box, box)).astype(np.float32), b)[0]
        avg = np.asarray(classes[int(c) - 1], dtype=np.float64)
        proj = _shift_to_match(proj.astype(np.float64), avg) * mask
        frc = _frc(avg * mask, proj)
        res = []
        for thr in (0.5, 0.143):
            below = np.flatnonzero(frc[1:] < thr)
            r = (below[0] + 1) if below.size else len(frc)
            res.append(b * apix_small_A / max(r - 0.5, 0.5))  # halfway to the shell below
        rows.append(dict(cls=int(c), n=int(m.sum()), res05_A=res[0], res0143_A=res[1]))
    return pd.DataFrame(rows)

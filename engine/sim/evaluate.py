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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.io.jobfolder import JobFiles
from engine.io.star import read_star

__all__ = ["Evaluation", "evaluate_job", "evaluate_arrays"]


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

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k != "classes"}


def _dirs(rot: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    r, t = np.deg2rad(rot), np.deg2rad(tilt)
    return np.stack([np.sin(t) * np.cos(r), np.sin(t) * np.sin(r), np.cos(t)], axis=1)


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
    d = _dirs(truth["rlnAngleRot"].to_numpy(float), truth["rlnAngleTilt"].to_numpy(float))
    psi_t = truth["rlnAnglePsi"].to_numpy(float)
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

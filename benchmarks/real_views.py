"""How many 3D views each class mixes, on real particles, against projection matching.

Usage::

    python benchmarks/real_views.py --star PARTICLES.star --map MAP.mrc [--symmetry D2]
        [--diameter 200] [--out DIR] [JOB ...]

Real particles have no ground truth; this makes one from their known map. Every particle
is matched against projections of ``--map`` along the directions of a ``--step`` (4°) grid
in the symmetry's asymmetric unit, over every in-plane rotation and shifts up to
``--shift`` (25 Å), with its own CTF, at ``--lowpass`` (10 Å): the engine's own E-step
(force max, flat offset prior) with the projections as 2D references, scaled by the factor
that maximises the likelihood of a subset. The match (direction, in-plane angle, offset,
log-likelihood) is cached in ``--out``.

For each ``JOB`` (a finished ``twodclass run`` of the same particles) it prints, per
class, how far the members' matched directions lie from the class's medoid direction
(symmetry-aware), and over the classes:

- direction spread: mean angle of the members to the medoid, particle-weighted median over
  classes (a class of one view: a few degrees; a random grouping: about 35°);
- view-pure share: the fraction of particles in classes whose members lie within
  ``--pure`` (15°) of the medoid for at least 70% of them;
- the same for an oracle that groups the particles by matched direction into as many
  classes as the job has (a floor).

Beta-gal (the 2,374 EMPIAR-10204 particles of ../shared/data with the 3.54 Å/px beta-gal map
of nglviewer/ngl, D2) takes about 90 s for the match on 2 cores (644 directions).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _key(args: argparse.Namespace) -> str:
    text = "|".join(
        str(x)
        for x in (
            Path(args.star).resolve(),
            Path(args.map).resolve(),
            args.symmetry,
            args.diameter,
            args.step,
            args.shift,
            args.lowpass,
        )
    )
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def match_particles(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Match every particle against the map's projections (cached in ``args.out``)."""
    import mrcfile

    from engine.core.dataset import Dataset
    from engine.core.model import Reducer, State, geometry_for, initial_noise, run_iteration
    from engine.core.mstep import Stats
    from engine.io.particles import read_particles
    from engine.params import ClassifyParams
    from engine.run.preprocess import prepare_dataset
    from engine.select import reference_grid as grid
    from engine.select.reference import _project, prepare_projector

    cache = Path(args.out) / f"match-{_key(args)}.npz"
    if cache.exists():
        return dict(np.load(cache))
    t0 = time.perf_counter()
    pset = read_particles(args.star)
    ops = grid.symmetry_operators(args.symmetry)
    sphere = grid.sphere_directions(args.step)
    dirs = sphere[grid.asymmetric_unit(sphere, ops)]
    base = ClassifyParams(max_res_A=args.lowpass, diameter_A=args.diameter)
    data = prepare_dataset(pset, base)
    a = data.apix_small_A
    p = ClassifyParams(
        n_classes=len(dirs),
        max_res_A=args.lowpass,
        diameter_A=args.diameter,
        offset_range_A=args.shift,
        offset_step_A=a,
        offset_sigma_A=1e4,  # flat: the offset is part of what is measured
        local_offsets=False,
        center_classes=False,
        reseed_dead=False,
        online_iters=0,
        full_passes=1,
        seed=0,
    )
    geo = geometry_for(p, data)
    with mrcfile.open(args.map, permissive=True) as f:
        vol = np.asarray(f.data, dtype=np.float32)
        map_apix = float(f.voxel_size.x) or a
    proj, big = prepare_projector(vol, map_apix, data.b, a)
    refs = _project(proj, big, data.b, dirs) * geo.mask[None]
    sigma2 = initial_noise(data, geo, np.random.default_rng(0), Reducer())
    print(
        f"{len(pset)} particles, box {data.b} at {a:.2f} Å, {len(dirs)} directions "
        f"({args.symmetry}), {len(geo.grid.shifts)} shifts",
        flush=True,
    )

    def run(d: Dataset, scale: float, coarse: bool) -> tuple[State, float]:
        q = replace(p, offset_step_A=2 * a) if coarse else p
        g = geometry_for(q, d)
        st = State(
            stats=Stats.zeros(len(dirs), d.b),
            sigma2=sigma2.copy(),
            refs=(refs * scale).astype(np.float32),
            cls=np.full(d.n, -1, np.int32),
            psi_deg=np.zeros(d.n, np.float32),
            shift_px=np.zeros((d.n, 2), np.float32),
            maxprob=np.zeros(d.n, np.float32),
            loglik=np.zeros(d.n, np.float32),
            nsig=np.zeros(d.n, np.int32),
        )
        info = run_iteration(q, d, g, st, 1)
        return st, float(info["mean_loglik"])

    rng = np.random.default_rng(1)
    sub = np.sort(rng.choice(data.n, size=min(200, data.n), replace=False))
    dsub = Dataset(
        images=np.asarray(data.images[sub], dtype=np.float32),
        ctfm=None if data.ctfm is None else data.ctfm[sub],
        box=data.box,
        apix_A=data.apix_A,
        b=data.b,
    )
    pv = float(np.var(dsub.images * geo.mask[None]))
    rv = float(np.var(refs))
    s0 = np.sqrt(0.1 * pv / max(rv, 1e-30))
    best = (-np.inf, s0)
    for k in np.arange(-4.0, 4.01, 1.0):
        ll = run(dsub, s0 * 2.0**k, True)[1]
        best = max(best, (ll, s0 * 2.0**k))
    for k in (-0.5, 0.5):
        ll = run(dsub, best[1] * 2.0**k, True)[1]
        best = max(best, (ll, best[1] * 2.0**k))
    print(f"projection scale {best[1]:.3g} (mean log-likelihood {best[0]:.1f})", flush=True)
    st, _ = run(data, best[1], False)
    out = {
        "direction": dirs[st.cls],
        "psi_deg": st.psi_deg,
        "shift_A": st.shift_px * a,
        "loglik": st.loglik,
        "maxprob": st.maxprob,
        "symmetry": np.array(args.symmetry),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(cache)
    print(f"matched in {time.perf_counter() - t0:.0f} s -> {cache}", flush=True)
    return out


def class_spreads(
    direction: np.ndarray, cls: np.ndarray, ops: np.ndarray, pure_deg: float
) -> dict[str, Any]:
    """Per class: members' mean angle to their medoid direction and the share within
    ``pure_deg`` of it; over classes: particle-weighted median spread and view-pure share."""
    from engine.select import reference_grid as grid
    from engine.sim.evaluate import weighted_median

    rows = []
    for c in np.unique(cls[cls >= 0]):
        m = direction[cls == c]
        d = grid.angular_distance_deg(m, m, ops)
        med = int(np.argmin(d.mean(axis=1)))
        rows.append((int(c), len(m), float(d[med].mean()), float((d[med] <= pure_deg).mean())))
    r = np.array(rows, dtype=np.float64).reshape(-1, 4)
    n = r[:, 1]
    pure = r[:, 3] >= 0.7
    return {
        "spread_deg": weighted_median(r[:, 2], n),
        "pure_share": float(n[pure].sum() / n.sum()),
        "pure_classes": int(pure.sum()),
        "rows": r,
    }


def oracle_classes(direction: np.ndarray, k: int, ops: np.ndarray, seed: int = 0) -> np.ndarray:
    """k-medoids-like grouping of the matched directions into ``k`` classes (symmetry-aware)."""
    from engine.select import reference_grid as grid

    rng = np.random.default_rng(seed)
    centres = direction[rng.choice(len(direction), size=k, replace=False)]
    for _ in range(20):
        lab = np.argmin(grid.angular_distance_deg(direction, centres, ops), axis=1)
        for j in range(k):
            m = direction[lab == j]
            if len(m):
                d = grid.angular_distance_deg(m, m, ops)
                centres[j] = m[int(np.argmin(d.mean(axis=1)))]
    return lab


def job_classes(job: Path, n: int) -> np.ndarray:
    from engine.io.star import read_star

    tab = read_star(job / "run_data.star")["particles"]
    if len(tab) != n:
        raise SystemExit(f"{job}: {len(tab)} particles, the match has {n}")
    return tab["rlnClassNumber"].to_numpy().astype(np.int64) - 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("jobs", nargs="*", type=Path, help="finished twodclass jobs to score")
    ap.add_argument("--star", required=True, help="the particles the jobs classified")
    ap.add_argument("--map", required=True, help="3D map of the particle")
    ap.add_argument("--symmetry", default="C1")
    ap.add_argument("--diameter", type=float, default=None, help="mask diameter (Å)")
    ap.add_argument("--step", type=float, default=4.0, help="direction grid spacing (deg)")
    ap.add_argument("--shift", type=float, default=25.0, help="shift search radius (Å)")
    ap.add_argument("--lowpass", type=float, default=10.0, help="matching resolution (Å)")
    ap.add_argument("--pure", type=float, default=15.0, help="view-pure radius (deg)")
    ap.add_argument("--out", default="/tmp/twodclass-real-views")
    args = ap.parse_args(argv)
    from engine.select import reference_grid as grid

    truth = match_particles(args)
    ops = grid.symmetry_operators(args.symmetry)
    direction = truth["direction"]
    sh = np.hypot(truth["shift_A"][:, 0], truth["shift_A"][:, 1])
    print(
        f"matched offsets: median {np.median(sh):.1f} Å, 90th percentile "
        f"{np.percentile(sh, 90):.1f} Å"
    )
    print(f"{'job':40s} {'classes':>7s} {'spread':>7s} {'pure share':>10s} {'pure classes':>12s}")
    for job in args.jobs:
        cls = job_classes(job, len(direction))
        k = int(cls.max()) + 1
        r = class_spreads(direction, cls, ops, args.pure)
        o = class_spreads(direction, oracle_classes(direction, k, ops), ops, args.pure)
        print(
            f"{str(job):40s} {k:7d} {r['spread_deg']:6.1f}° {100 * r['pure_share']:9.1f}% "
            f"{r['pure_classes']:12d}   (oracle {o['spread_deg']:.1f}°, "
            f"{100 * o['pure_share']:.1f}%)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

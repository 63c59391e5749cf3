"""Calibration and real-data check of the reference-based class score (engine.select.reference).

``calibrate``: simulated class averages of known kind (engine.select.reference_calibration:
single views, single views blurred by in-plane errors, 50/50 two-view mixtures, Gaussian
blobs, noise; averaged with the true poses and CTF correction) are scored against the map
they were made from; prints the range of the structure score per kind and the thresholds
that separate them (the constants in engine/select/reference.py come from this table).

    .venv/bin/python benchmarks/reference_score.py calibrate [--map MAP --symmetry D2]

``job``: scores a finished job's classes against a map and prints the share of particles in
single-view classes, the distinct views, the classes per view, the blurred classes and the
time taken.

    .venv/bin/python benchmarks/reference_score.py job JOBDIR --map MAP --symmetry D2

Measured (2 shared CPU cores): see the README's "Reference-based class scoring".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.io.mrc import read_volume  # noqa: E402
from engine.select import reference_grid as grid  # noqa: E402
from engine.select.reference import (  # noqa: E402
    NO_STRUCTURE_MAX,
    SINGLE_VIEW_MIN,
    ReferenceSettings,
    score_classes,
)
from engine.select.reference_calibration import KINDS, calibration_classes  # noqa: E402


def calibrate(args: argparse.Namespace) -> dict:
    if args.map:
        vol, map_apix = read_volume(args.map)
        map_apix = args.map_apix or map_apix
        apix = args.apix or map_apix
        name = Path(args.map).name
    else:
        from engine.sim.phantom import phantom_volume

        apix = args.apix or 3.0
        vol, map_apix, name = phantom_volume(args.box), apix, "phantom"
    st = ReferenceSettings(weighting=args.weighting)
    rows = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        cs = calibration_classes(
            vol, map_apix, box=args.box, apix_A=apix, n_per_class=tuple(args.n),
            n_views=args.views, snr=args.snr, symmetry=args.symmetry, seed=seed,
        )  # fmt: skip
        t1 = time.perf_counter()
        r = score_classes(cs.images, apix, vol, map_apix, args.symmetry, settings=st)
        ops = grid.symmetry_operators(args.symmetry)
        err = np.full(len(cs.kind), np.nan)
        known = np.isfinite(cs.rot_deg)
        if known.any():
            a = grid.angles_to_directions(cs.rot_deg[known], cs.tilt_deg[known])
            b = grid.angles_to_directions(r.rot_deg[known], r.tilt_deg[known])
            err[known] = np.diag(grid.angular_distance_deg(a, b, ops))
        for i in range(len(cs.kind)):
            rows.append(
                (cs.kind[i], int(cs.n_particles[i]), r.structure[i], r.correlation[i], err[i])
            )
        print(
            f"seed {seed}: {len(cs.kind)} averages simulated in {t1 - t0:.0f} s, "
            f"scored in {r.seconds:.0f} s",
            file=sys.stderr,
        )
    print(f"\nmap {name} ({args.symmetry}), box {args.box} at {apix:.2f} Å, SNR {args.snr}, "
          f"{args.views} views, weighting {args.weighting}")  # fmt: skip
    print(f"{'kind':<9} {'n':>4} {'count':>5} {'structure min-max (mean)':>27} "
          f"{'correlation min-max':>20} {'direction error max':>20}")  # fmt: skip
    out: dict = {"map": name, "rows": []}
    for n in args.n:
        for k in KINDS:
            sel = [row for row in rows if row[0] == k and abs(row[1] - n) <= 0.3 * n]
            if not sel:
                continue
            s = np.array([row[2] for row in sel])
            c = np.array([row[3] for row in sel])
            e = np.array([row[4] for row in sel])
            err_s = f"{np.nanmax(e):.1f}°" if np.isfinite(e).any() else "-"
            print(f"{k:<9} {n:>4} {len(sel):>5} {s.min():>9.3f}-{s.max():.3f} ({s.mean():.3f}) "
                  f"{c.min():>13.3f}-{c.max():.3f} {err_s:>20}")  # fmt: skip
            out["rows"].append(
                dict(kind=k, n=n, count=len(sel), min=float(s.min()), max=float(s.max()),
                     mean=float(s.mean()), corr_min=float(c.min()), corr_max=float(c.max()))
            )  # fmt: skip
    out["scores"] = [[row[0], row[1], round(float(row[2]), 4)] for row in rows]
    s_of = {k: np.array([row[2] for row in rows if row[0] == k]) for k in KINDS}
    th_s, th_n = SINGLE_VIEW_MIN, NO_STRUCTURE_MAX
    print(f"\nverdicts at the thresholds in use (single >= {th_s:.2f}, none < {th_n:.2f}):")
    for k in KINDS:
        s = s_of[k]
        print(
            f"  {k:<8} single {np.mean(s >= th_s):6.1%}  blurred "
            f"{np.mean((s < th_s) & (s >= th_n)):6.1%}  none {np.mean(s < th_n):6.1%}"
        )
    single_lo, mix_hi = s_of["single"].min(), s_of["mixture"].max()
    junk_hi = max(s_of["blob"].max(), s_of["noise"].max())
    mix_lo = s_of["mixture"].min()
    out["single_view_min"] = round(float(0.5 * (single_lo + mix_hi)), 2)
    out["no_structure_max"] = round(float(0.5 * (junk_hi + mix_lo)), 2)
    print(
        f"\nsingle views >= {single_lo:.3f} > mixtures <= {mix_hi:.3f}: "
        f"single-view threshold {out['single_view_min']:.2f}\n"
        f"mixtures >= {mix_lo:.3f} > blobs and noise <= {junk_hi:.3f}: "
        f"no-structure threshold {out['no_structure_max']:.2f}"
    )
    return out


def job_report(args: argparse.Namespace) -> dict:
    from engine.io.jobfolder import load_job
    from engine.select.reference_job import reference_summary, score_job

    job = load_job(args.job_dir, read_data=False)
    t0 = time.perf_counter()
    scores = score_job(job, args.map, args.symmetry, map_apix_A=args.map_apix)
    dt = time.perf_counter() - t0
    table = scores.table()
    summ = reference_summary(table, job.counts)
    print(summ["text"])
    # every class with structure (single or blurred) grouped by its matched direction
    ops = grid.symmetry_operators(args.symmetry)
    some = np.flatnonzero(scores.verdict != "none")
    dirs = grid.angles_to_directions(scores.rot_deg[some], scores.tilt_deg[some])
    fam = grid.cluster_directions(dirs, ops, 15.0, job.counts[some].astype(float))
    families = []
    print("classes per matched direction (15°, symmetry-aware; single + blurred):")
    for f in range(1, int(fam.max(initial=0)) + 1):
        m = some[fam == f]
        single = int((scores.verdict[m] == "single").sum())
        families.append(
            dict(family=f, classes=len(m), single=single, blurred=len(m) - single,
                 particles=int(job.counts[m].sum()), class_numbers=[int(i + 1) for i in m])
        )  # fmt: skip
        print(f"  direction {f:>2}: {len(m)} classes ({single} single, {len(m) - single} "
              f"blurred), {int(job.counts[m].sum())} particles")  # fmt: skip
    print(f"{job.n_classes} classes scored in {dt:.1f} s ({scores.n_directions})")
    out = {k: v for k, v in summ.items() if k != "text"}
    return {**out, "directions": families, "seconds": round(dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("--map", default=None, help="map file (default: the built-in phantom)")
    c.add_argument("--map-apix", type=float, default=None)
    c.add_argument("--apix", type=float, default=None, help="class pixel size (Å)")
    c.add_argument("--symmetry", default="C1")
    c.add_argument("--box", type=int, default=64)
    c.add_argument("--n", type=int, nargs="+", default=[50, 200])
    c.add_argument("--views", type=int, default=8)
    c.add_argument("--snr", type=float, default=0.05)
    c.add_argument("--seeds", type=int, default=1)
    c.add_argument("--weighting", default="class")
    j = sub.add_parser("job")
    j.add_argument("job_dir")
    j.add_argument("--map", required=True)
    j.add_argument("--map-apix", type=float, default=None)
    j.add_argument("--symmetry", default="C1")
    args = ap.parse_args()
    res = calibrate(args) if args.cmd == "calibrate" else job_report(args)
    print(json.dumps(res, default=float))


if __name__ == "__main__":
    main()

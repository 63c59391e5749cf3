"""Quality of the classification on a realistic simulated data set, against the ground truth.

Usage::

    python benchmarks/quality.py [--shape compact|elongated|both] [--particles 5000]
        [--classes 50] [--diameter 110] [--views N] [--variant "key=value ..."]... [--out DIR]

Simulates particles of the built-in asymmetric phantom (``--shape``: globular or elongated;
box 128 at 1.5 Å, SNR 0.05, 15% junk of five kinds, per-particle CTF, random viewing
directions unless ``--views`` is given; fixed ``--data-seed``), classifies them with
``twodclass run``'s defaults (K = 50, 6 Å, uncertainty 2, 20 online iterations of 100 x K,
one full pass; ``--diameter`` 110 Å) and with each ``--variant`` (``ClassifyParams`` fields,
e.g. ``--variant "uncertainty=4 online_iters=30"``) on the same particles, and prints one
column per setting:

- orientation coherence: per class, the good members' true 3D orientations in the class
  frame (true rotation composed with the assigned in-plane angle), the mean angle to their
  mean orientation; particle-weighted median over classes (degrees, :mod:`engine.sim.evaluate`);
- direction spread: the same with viewing directions only;
- axis spread: the direction spread with each direction and its opposite as one (their
  projections are mirror images; what lies between the two spreads is mirror views mixed);
- the oracle: good particles grouped by true viewing direction into K clusters, each
  aligned in-plane ideally (a floor for both numbers);
- class-average resolution against the truth: FRC between each good class average and the
  noise-free projection at its members' mean orientation (0.5 threshold, median over good
  classes; the 0.143 one too), and the engine's own estimate (SSNR = 1);
- junk particles in junk classes, good particles in good classes, rotation/shift errors;
- run time (reading, classifying, statistics, writing).

Simulated data are kept in ``--out`` (default ``/tmp/twodclass-quality``) and reused; jobs
are classified again unless ``--reuse-jobs``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _parse_variant(text: str) -> dict[str, Any]:
    from engine.params import param_specs

    types = {s.name: s.type for s in param_specs()}
    out: dict[str, Any] = {}
    for item in shlex.split(text):
        k, _, v = item.partition("=")
        if k not in types:
            raise SystemExit(f"--variant: unknown parameter {k!r}")
        t = types[k]
        out[k] = (v.lower() in ("1", "true", "on", "yes")) if t is bool else t(v)
    return out


def simulate_set(out: Path, shape: str, n: int, snr: float, views: int | None, seed: int) -> Path:
    """Simulated particles (cached): the folder holding particles.star and truth.star."""
    from engine.sim.simulate import simulate

    tag = f"{shape}-n{n}-snr{snr:g}-{'random' if views is None else f'v{views}'}-s{seed}"
    sim_dir = out / tag
    if not (sim_dir / "truth.star").exists():
        simulate(
            sim_dir,
            n_particles=n,
            box=128,
            apix_A=1.5,
            snr=snr,
            junk_fraction=0.15,
            n_views=views,
            seed=seed,
            phantom=shape,
        )
    return sim_dir


def measure(sim_dir: Path, job: Path, params: Any, shape: str, reuse: bool) -> dict[str, Any]:
    """Classify (unless already done) and score one job: a dict of summary numbers."""
    import numpy as np

    from engine.io.mrc import open_stack
    from engine.io.star import read_star
    from engine.run.job import run_job
    from engine.sim.evaluate import evaluate_job, truth_frc_resolution
    from engine.sim.phantom import GaussianProjector

    done = job / "run_data.star"
    if not (reuse and done.exists()):
        t = time.perf_counter()
        run_job(sim_dir / "particles.star", job, params, overwrite=True)
        (job / "seconds.txt").write_text(f"{time.perf_counter() - t:.2f}\n")
    seconds = float((job / "seconds.txt").read_text())
    truth = read_star(sim_dir / "truth.star")["particles"].rename(columns=lambda c: c.lstrip("_"))
    ev = evaluate_job(job, sim_dir / "truth.star")
    data = read_star(done)["particles"]
    model = read_star(job / "run_model.star")
    res = model["model_classes"]["rlnEstimatedResolution"].to_numpy()
    cnt = model["model_classes"]["tdcParticleCount"].to_numpy()
    apix_s = float(model["model_general"]["rlnPixelSize"].iloc[0])
    classes, _ = open_stack(job / "run_classes.mrcs")
    good_tab = ev.classes[ev.classes["good"]] if len(ev.classes) else ev.classes
    good_cls = good_tab["cls"].to_numpy(int) if len(good_tab) else np.zeros(0, int)
    frc = truth_frc_resolution(
        np.asarray(classes),
        apix_s,
        data["rlnClassNumber"].to_numpy(np.int64),
        data["rlnAnglePsi"].to_numpy(float),
        truth,
        GaussianProjector(128, shape),
        128,
        0.5 * params.diameter_A / apix_s,
    )
    w = frc["n"].to_numpy(float) if len(frc) else np.zeros(0)

    def wmed(col: str) -> float:
        from engine.sim.evaluate import weighted_median

        return weighted_median(frc[col].to_numpy(float), w) if len(frc) else float("nan")

    return {
        "coherence_deg": ev.coherence_deg,
        "direction_spread_deg": ev.direction_spread_deg,
        "axis_spread_deg": ev.axis_spread_deg,
        "truth_frc05_A": wmed("res05_A"),
        "truth_frc0143_A": wmed("res0143_A"),
        "own_resolution_A": float(np.median(res[good_cls - 1])) if len(good_cls) else np.nan,
        "junk_in_junk": ev.junk_in_junk,
        "good_in_good": ev.good_in_good,
        "psi_error_deg": ev.psi_error_deg,
        "shift_error_A": ev.shift_error_A,
        "good_classes": ev.n_good_classes,
        "empty_classes": int((cnt == 0).sum()),
        "seconds": seconds,
        "view_purity": ev.view_purity,
    }


ROWS = [
    ("coherence_deg", "orientation coherence (deg)", "{:.1f}"),
    ("direction_spread_deg", "direction spread (deg)", "{:.1f}"),
    ("axis_spread_deg", "axis spread, d = -d (deg)", "{:.1f}"),
    ("truth_frc05_A", "class vs truth FRC 0.5 (Å)", "{:.1f}"),
    ("truth_frc0143_A", "class vs truth FRC 0.143 (Å)", "{:.1f}"),
    ("own_resolution_A", "own resolution, good (Å)", "{:.1f}"),
    ("junk_in_junk", "junk in junk classes (%)", "{:.1%}"),
    ("good_in_good", "good in good classes (%)", "{:.1%}"),
    ("psi_error_deg", "rotation error (deg)", "{:.2f}"),
    ("shift_error_A", "shift error (Å)", "{:.2f}"),
    ("good_classes", "good / empty classes", None),
    ("seconds", "run time (s)", "{:.1f}"),
]


def print_table(
    title: str, cols: list[tuple[str, dict[str, Any]]], oracle: tuple[float, float]
) -> None:
    print(title)
    print(f"  {'':32s}" + "".join(f"{name[:22]:>24s}" for name, _ in cols))
    for key, label, fmt in ROWS:
        cells = []
        for _, r in cols:
            if key == "good_classes":
                cells.append(f"{r['good_classes']} / {r['empty_classes']}")
            else:
                cells.append(fmt.format(r[key]).replace("%", ""))
        print(f"  {label:32s}" + "".join(f"{c:>24s}" for c in cells))
    print(
        f"  oracle (true view, K clusters): coherence {oracle[0]:.1f} deg, "
        f"direction spread {oracle[1]:.1f} deg"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=("compact", "elongated", "both"), default="both")
    ap.add_argument("--particles", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--diameter", type=float, default=110.0, help="mask diameter (Å)")
    ap.add_argument("--views", type=int, default=None)
    ap.add_argument("--snr", type=float, default=0.05)
    ap.add_argument("--data-seed", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="classification seed")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help='extra setting, e.g. "uncertainty=4 online_iters=30" (repeatable)',
    )
    ap.add_argument("--no-default", action="store_true", help="run only the variants")
    ap.add_argument("--out", default="/tmp/twodclass-quality")
    ap.add_argument(
        "--reuse-jobs",
        action="store_true",
        help="score finished jobs of the same settings instead of classifying again",
    )
    ap.add_argument("--json", default=None, help="write all numbers to this file")
    a = ap.parse_args(argv)

    from engine.io.star import read_star
    from engine.params import ClassifyParams
    from engine.sim.evaluate import oracle_coherence

    out = Path(a.out)
    settings = ([] if a.no_default else [("default", {})]) + [
        (v, _parse_variant(v)) for v in a.variant
    ]
    shapes = ["compact", "elongated"] if a.shape == "both" else [a.shape]
    report: dict[str, Any] = {}
    for shape in shapes:
        sim_dir = simulate_set(out, shape, a.particles, a.snr, a.views, a.data_seed)
        truth = read_star(sim_dir / "truth.star")["particles"].rename(
            columns=lambda c: c.lstrip("_")
        )
        oracle = oracle_coherence(truth, a.classes)
        cols = []
        for name, over in settings:
            p = ClassifyParams(
                n_classes=a.classes, threads=a.threads, diameter_A=a.diameter, seed=a.seed, **over
            )
            tag = "default" if not over else "_".join(f"{k}-{v}" for k, v in over.items())
            job = sim_dir.parent / f"{sim_dir.name}-jobs" / f"K{a.classes}-s{a.seed}-{tag}"
            cols.append((name, measure(sim_dir, job, p, shape, a.reuse_jobs)))
        print_table(
            f"{shape} particle, {a.particles} particles, "
            f"{'random views' if a.views is None else f'{a.views} views'}, "
            f"SNR {a.snr:g}, K={a.classes}, --diameter {a.diameter:g}",
            cols,
            oracle,
        )
        report[shape] = {
            "oracle": {"coherence_deg": oracle[0], "direction_spread_deg": oracle[1]},
            "settings": {n: r for n, r in cols},
        }
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

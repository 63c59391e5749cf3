"""Quality of the classification on a realistic simulated data set, with default settings.

Usage::

    python benchmarks/quality.py [--particles 5000] [--views N] [--out DIR]

Simulates particles of the built-in asymmetric phantom (box 128 at 1.5 Å, SNR 0.05, 15% junk
of five kinds, per-particle CTF; random viewing directions unless ``--views`` is given),
classifies them with ``twodclass run``'s defaults (K = 50, 6 Å, uncertainty 2, 20 online
iterations of 100 x K, one full pass) and prints, against the ground truth:

- view spread: mean angle between the members' true viewing directions and their class's
  mean direction (degrees; 2D classes of random views are cones of nearby views);
- rotation and shift errors of the alignments (per class, up to the class's own frame);
- the fraction of junk particles in junk classes and of good particles in good classes;
- the per-class resolution estimates.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=5000)
    ap.add_argument("--views", type=int, default=None)
    ap.add_argument("--snr", type=float, default=0.05)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--classes", type=int, default=50)
    a = ap.parse_args(argv)
    import numpy as np

    from engine.io.star import read_star
    from engine.params import ClassifyParams
    from engine.run.job import run_job
    from engine.sim.evaluate import evaluate_job
    from engine.sim.simulate import simulate

    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="twodclass-quality-"))
    sim_dir = out / "data"
    if not (sim_dir / "particles.star").exists():
        simulate(
            sim_dir,
            n_particles=a.particles,
            box=128,
            apix_A=1.5,
            snr=a.snr,
            junk_fraction=0.15,
            n_views=a.views,
            seed=5,
        )
    job = out / "job"
    if not (job / "run_data.star").exists():
        t = time.perf_counter()
        run_job(
            sim_dir / "particles.star",
            job,
            ClassifyParams(n_classes=a.classes, threads=a.threads),
            overwrite=True,
        )
        print(f"classified {a.particles} particles in {time.perf_counter() - t:.1f} s")
    ev = evaluate_job(job, sim_dir / "truth.star")
    model = read_star(job / "run_model.star")["model_classes"]
    res = model["rlnEstimatedResolution"].to_numpy()
    cnt = model["tdcParticleCount"].to_numpy()
    good = (
        ev.classes.set_index("cls")["good"]
        .reindex(np.arange(1, len(res) + 1), fill_value=False)
        .to_numpy()
    )
    print(
        f"data: {a.particles} particles, box 128 at 1.5 Å, SNR {a.snr}, 15% junk, "
        f"{'random views' if a.views is None else f'{a.views} views'}; K={a.classes}"
    )
    print(f"view spread within good classes:   {ev.view_spread_deg:6.1f} deg")
    print(f"rotation error of the alignments:  {ev.psi_error_deg:6.2f} deg")
    print(f"shift error of the alignments:     {ev.shift_error_A:6.2f} Å")
    print(f"junk particles in junk classes:    {100 * ev.junk_in_junk:6.1f} %")
    print(f"good particles in good classes:    {100 * ev.good_in_good:6.1f} %")
    if a.views is not None:
        print(
            f"view purity:                       {100 * ev.view_purity:6.1f} %  "
            f"({ev.views_found}/{ev.n_views} views are the majority of a class)"
        )
    print(
        f"classes: {int(good.sum())} good, {int((~good).sum())} junk, {int((cnt == 0).sum())} empty"
    )
    if good.any():
        r = res[good]
        print(
            f"resolution of good classes (Å): median {np.median(r):.1f}, "
            f"best {r.min():.1f}, worst {r.max():.1f}"
        )
    if (~good & (cnt > 0)).any():
        print(f"resolution of junk classes (Å): median {np.median(res[~good & (cnt > 0)]):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

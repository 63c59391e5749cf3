"""``twodclass demo -o DIR``: simulate a small built-in example and classify it (~1 minute)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.errors import ParameterError
from engine.fields import number_parser
from engine.run.progress import MODES, default_mode

__all__ = ["add_parser", "run", "DEMO_PARTICLES"]

DEMO_PARTICLES = 2000


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="simulate a small example and classify it (no downloads)",
        description="Simulates particles of the built-in asymmetric phantom in 8 views "
        "with 10% junk (box 64, 3 Å/px, CTF, SNR 0.1; truth in "
        "data/truth.star), then runs `twodclass run` on them "
        "with 12 classes. Writes DIR/data/particles.star and the job files "
        "(run_data.star, run_model.star, run_classes.mrcs) into DIR.",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="demo folder")
    p.add_argument(
        "--particles",
        type=number_parser(int, 100, 10**7, "--particles"),
        default=DEMO_PARTICLES,
        metavar="N",
        help=f"number of simulated particles (default {DEMO_PARTICLES})",
    )
    p.add_argument(
        "--threads",
        type=number_parser(int, 0, 4096, "--threads"),
        default=0,
        help="CPU threads (0 = the CPUs this process may use)",
    )
    p.add_argument(
        "--progress",
        choices=MODES,
        default=None,
        help="progress display (default: bar on a terminal, plain lines otherwise)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from engine.io.jobfolder import JobFiles
    from engine.params import ClassifyParams
    from engine.run.job import run_job
    from engine.sim.simulate import simulate

    out = Path(args.output)
    if JobFiles(out).job.exists():
        raise ParameterError(f"{out} already holds a demo job; choose another -o")
    mode = args.progress or default_mode()
    if mode != "none":
        print(
            f"twodclass demo: simulating {args.particles} particles -> {out / 'data'}",
            file=sys.stderr,
        )
    sim = simulate(
        out / "data",
        n_particles=args.particles,
        box=64,
        apix_A=3.0,
        snr=0.1,
        junk_fraction=0.10,
        n_views=8,
        seed=1,
    )
    params = ClassifyParams(
        n_classes=12,
        online_iters=15,
        batch_per_class=60,
        full_passes=1,
        max_res_A=8.0,
        threads=args.threads,
        seed=1,
    )
    rc = run_job(sim.particles_star, out, params, progress=mode, overwrite=False)
    if rc == 0 and mode != "none":
        print(
            f"twodclass demo: done. Browse the classes with: twodclass browse {out}",
            file=sys.stderr,
        )
    return rc

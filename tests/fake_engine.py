"""A stand-in for ``twodclass run --progress jsonl`` used by the run-screen tests.

``python tests/fake_engine.py run PARTICLES -o JOBDIR [--iters N] [--delay S]`` and
``python tests/fake_engine.py run --resume JOBDIR``: prints the README's events, rewrites
``run_model.star`` / ``run_classes.mrcs`` after every iteration, keeps the last finished
iteration in ``job.json`` so that a resumed run continues from there, and writes
``run_data.star`` at the end (via ``helpers_job.make_finished_job``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers_job import make_finished_job  # noqa: E402


def emit(**d: object) -> None:
    print(json.dumps(d), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("particles", nargs="?")
    ap.add_argument("-o", dest="job_dir")
    ap.add_argument("--resume", dest="resume")
    ap.add_argument("--progress")
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--delay", type=float, default=0.3)
    args, _ = ap.parse_known_args()
    job = Path(args.resume or args.job_dir)
    start = 0
    iters, delay = args.iters, args.delay
    if args.resume:
        meta = json.loads((job / "job.json").read_text())
        start, iters, delay = meta["iteration"], meta["n_iterations"], meta["delay"]
    job.mkdir(parents=True, exist_ok=True)
    scratch = job.parent / (job.name + "_scratch")

    def on_term(signum: int, frame: object) -> None:
        meta = json.loads((job / "job.json").read_text())
        meta["status"] = "cancelled"
        (job / "job.json").write_text(json.dumps(meta))
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_term)
    emit(
        event="start",
        job_dir=str(job),
        n_particles=60,
        n_classes=4,
        n_iterations=iters,
        box=32,
        box_small=32,
    )
    emit(event="stage", stage="classifying", message="classifying")
    print("fake engine: working", file=sys.stderr, flush=True)
    for it in range(start + 1, iters + 1):
        for d in range(1, 3):
            time.sleep(delay / 2)
            emit(
                event="progress",
                iteration=it,
                n_iterations=iters,
                done=d,
                total=2,
                elapsed_s=it * delay,
                eta_s=(iters - it) * delay,
            )
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir()
        tmp = make_finished_job(scratch, n_classes=4, n_particles=60, seed=it)
        for name in ("run_model.star", "run_classes.mrcs"):
            shutil.copy(tmp / name, job / name)
        (job / "job.json").write_text(
            json.dumps(
                {
                    "status": "running",
                    "iteration": it,
                    "n_iterations": iters,
                    "delay": delay,
                    "input": str(scratch / "particles.star"),
                }
            )
        )
        emit(
            event="iteration",
            iteration=it,
            n_iterations=iters,
            kind="online",
            temperature=1.0,
            changed_fraction=round(0.5 / it, 3),
            mean_loglik=-1.0,
            elapsed_s=it * delay,
            eta_s=(iters - it) * delay,
            classes_file="run_classes.mrcs",
            model_file="run_model.star",
        )
    shutil.copy(scratch / "job" / "run_data.star", job / "run_data.star")
    (job / "job.json").write_text(
        json.dumps(
            {
                "status": "finished",
                "iteration": iters,
                "n_iterations": iters,
                "delay": delay,
                "input": str(scratch / "particles.star"),
            }
        )
    )
    emit(event="done", job_dir=str(job), seconds=iters * delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())

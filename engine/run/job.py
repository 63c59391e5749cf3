"""``run_job``: one classification job from particles to a finished job folder.

The CLI (``twodclass run``), the terminal UI (through the CLI, as a subprocess) and the Scipion
protocol all end up here. It reads the particles, validates the parameters against the data,
prepares the cropped dataset, runs the schedule with a checkpoint after every iteration, and
writes the job folder (:mod:`engine.io.job_writer`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import ParameterError, TwodclassError
from engine.params import ClassifyParams

__all__ = ["run_job"]


def _reducer() -> Any:
    from engine.run.mpi import mpi_reducer

    return mpi_reducer()


def run_job(
    particles: Path | None,
    job_dir: Path,
    params: ClassifyParams | None,
    *,
    progress: str = "none",
    resume: bool = False,
    project_dir: str | None = None,
    overwrite: bool = False,
    overrides: argparse.Namespace | None = None,
) -> int:
    """Run (or resume) a classification job; the CLI, the TUI and Scipion all end up here."""
    import numba
    import numpy as np

    from engine.core.model import classify, gather_state, geometry_for, n_iterations
    from engine.core.particle_residuals import residual_statistics
    from engine.io.job_writer import (
        load_checkpoint,
        save_checkpoint,
        write_data,
        write_job_json,
        write_model,
    )
    from engine.io.jobfolder import JobFiles, read_job_info
    from engine.io.particles import read_particles
    from engine.params import resolve_threads
    from engine.run.preprocess import prepare_dataset
    from engine.run.progress import Progress
    from engine.select.class_stats import class_statistics_for_state

    files = JobFiles(job_dir)
    red = _reducer()
    root = red.rank == 0
    prog = Progress(progress if root else "none")
    state = None
    if resume:
        if not files.job.exists():
            raise TwodclassError(f"{files.job}: no job to resume here")
        info = read_job_info(job_dir)
        params = ClassifyParams.from_dict(info["params"])
        if overrides is not None and getattr(overrides, "threads", None):
            params.threads = overrides.threads
        particles = Path(info["input"])
        project_dir = project_dir or info.get("project_dir")
        if info.get("status") == "finished":
            prog.stage("done", f"{job_dir} is already finished")
            return 0
    else:
        assert params is not None and particles is not None
        if files.job.exists() and not overwrite:
            raise TwodclassError(
                f"{job_dir} already holds a job (job.json); use --resume "
                f"{job_dir} to continue it, --overwrite, or another -o"
            )
    assert params is not None and particles is not None
    errs = params.validate()
    if errs:
        raise ParameterError("; ".join(errs))
    from engine.core import fft as _fft

    n_threads = min(resolve_threads(params.threads), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n_threads)
    _fft.set_workers(n_threads)
    pset = read_particles(particles, project_dir)
    if not pset.apix_A or pset.apix_A <= 0:
        raise TwodclassError(
            f"{particles}: pixel size unknown (no rlnImagePixelSize in the "
            "optics table and none in the stack header)"
        )
    errs = params.validate_for_data(len(pset), pset.box, pset.apix_A)
    if errs:
        raise ParameterError("; ".join(errs))
    if params.max_res_A < 2 * pset.apix_A:
        prog.stage(
            "reading",
            f"--max-res {params.max_res_A:g} Å is finer than Nyquist "
            f"({2 * pset.apix_A:g} Å): using the full box",
        )
    if params.ctf and pset.ctf is None:
        prog.stage("reading", "no CTF columns in the input: classifying without CTF")
        params.ctf = False
    t0 = time.perf_counter()
    job_info: dict[str, Any] = {
        "input": str(particles.resolve()),
        "project_dir": project_dir,
        "params": params.to_dict(),
        "status": "running",
        "n_particles": len(pset),
        "box": pset.box,
        "apix_A": pset.apix_A,
        "mpi_processes": red.size,
        "command": " ".join(sys.argv),
    }
    if root:
        files.dir.mkdir(parents=True, exist_ok=True)
        if resume and files.checkpoint.exists():
            state = load_checkpoint(files)
        write_job_json(files, job_info)
    if resume and not root and files.checkpoint.exists():
        state = load_checkpoint(files)
    try:
        prog.stage("reading", f"reading and Fourier-cropping {len(pset)} particles")
        data = prepare_dataset(pset, params, files.cache, red.rank, red.size)
        geo = geometry_for(params, data)
        job_info.update(
            box_small=data.b, apix_small_A=data.apix_small_A, n_iterations=n_iterations(params)
        )
        size = min(params.batch_per_class * params.n_classes, len(pset))
        total = size * params.online_iters + len(pset) * params.full_passes
        done = sum(h["n_particles"] for h in state.history) if state else 0
        prog.start(
            job_dir=str(job_dir),
            n_particles=len(pset),
            n_classes=params.n_classes,
            n_iterations=n_iterations(params),
            box=pset.box,
            box_small=data.b,
            total_visits=total,
            done_visits=done,
            resumed_from=state.iteration if state else 0,
        )
        prog.stage("classifying", "classifying (the first iteration compiles the kernels)")

        def on_iteration(st: Any, info: dict[str, Any]) -> None:
            gather_state(red, st, data)
            if root:
                save_checkpoint(files, st)
                write_model(files, st, params, data, geo)
                job_info.update(iteration=st.iteration)
                write_job_json(files, job_info)
            prog.iteration(info)

        state = classify(params, data, state, red, on_iteration, prog.block)
        owned = np.arange(data.n) % data.size == data.rank
        per_particle = {
            k: red.gather_particles(v, owned)
            for k, v in residual_statistics(data, geo, state, params.ctf, n_threads).items()
        }
        if root:
            prog.stage("writing", "writing run_data.star and class statistics")
            order = write_model(
                files,
                state,
                params,
                data,
                geo,
                extra_columns=class_statistics_for_state(state, params, data, geo),
            )
            write_data(
                files,
                state,
                pset,
                data,
                order,
                {k: np.round(v.astype(np.float64), 4) for k, v in per_particle.items()},
            )
            job_info.update(
                status="finished",
                iteration=state.iteration,
                seconds=round(time.perf_counter() - t0, 2),
            )
            write_job_json(files, job_info)
        prog.emit("done", job_dir=str(job_dir), seconds=round(time.perf_counter() - t0, 2))
        return 0
    except KeyboardInterrupt:
        if root:
            job_info.update(status="cancelled")
            write_job_json(files, job_info)
        prog.emit("error", message=f"cancelled; resume with twodclass run --resume {job_dir}")
        raise
    except Exception as exc:
        if root:
            job_info.update(status="failed", error=str(exc))
            write_job_json(files, job_info)
        prog.emit("error", message=str(exc))
        raise

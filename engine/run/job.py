"""``run_job``: one classification job from particles to a finished job folder.

The CLI (``twodclass run``), the terminal UI (through the CLI, as a subprocess) and the Scipion
protocol all end up here. In order:

1. check the parameters (and ``TWODCLASS_CACHE_GB``) and create the job folder;
2. claim the folder (:mod:`engine.io.claim`: one command per folder; a dead holder's lock and
   temporary files are cleared);
3. check the folder (a new job replaces nothing without ``--overwrite``) or, to resume, that
   ``job.json``, the input on disk and the checkpoint still agree (:mod:`engine.run.jobcheck`);
4. read the particles and validate the parameters against them; no output is an input;
5. only then write: ``job.json`` (with the run key), a checkpoint after every iteration, and
   the job folder (:mod:`engine.io.job_writer`) at the end.

An interruption (ctrl+c, SIGTERM) records ``cancelled``; an error records ``failed`` with its
message; a job killed outright stays ``running`` in ``job.json`` and reads as
``interrupted`` (:func:`engine.io.claim.job_status`). Any of them resumes to the result of an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import (
    InputError,
    Interrupted,
    ParameterError,
    TwodclassError,
    os_error_message,
)
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
    overrides: dict[str, Any] | None = None,
) -> int:
    """Run (or resume) a classification job; the CLI, the TUI and Scipion all end up here.

    Parameters
    ----------
    particles, params
        Input file and parameters of a new job (None with ``resume``).
    job_dir : Path
        The job folder.
    progress : str
        Progress mode (:data:`engine.run.progress.MODES`).
    resume : bool
        Continue the job in ``job_dir`` from its last checkpoint.
    overwrite : bool
        Replace a job (or other run files) in ``job_dir``.
    overrides : dict, optional
        With ``resume``: parameters given again (name -> value). ``threads`` is applied;
        any other that differs from the job's is refused.

    Raises
    ------
    TwodclassError
        One line for the user (bad input or parameters, folder in use, input changed...).
    Interrupted
        Stopped by a signal; ``job.json`` says ``cancelled``.
    """
    from engine.io.claim import FolderClaim, prepare_output_dir
    from engine.io.jobfolder import JobFiles
    from engine.run.preprocess import cache_budget_bytes
    from engine.run.progress import Progress

    files = JobFiles(job_dir)
    red = _reducer()
    root = red.rank == 0
    prog = Progress(progress if root else "none")
    cache_budget_bytes()  # a bad TWODCLASS_CACHE_GB stops here, before anything is written
    created = not files.dir.exists()
    if resume:
        if not files.dir.is_dir():
            raise InputError(files.dir, "no job to resume here (folder not found)")
    else:
        assert params is not None and particles is not None
        errs = params.validate()
        if errs:
            raise ParameterError(errs)
        if root:
            prepare_output_dir(files.dir)
    claim = FolderClaim(files.dir, "twodclass run").acquire() if root else None
    try:
        if claim is not None:
            from engine.io.atomic import remove_stale_temps

            remove_stale_temps(files.dir)
            if claim.stale:
                prog.stage(
                    "reading",
                    f"the previous run in {job_dir} (pid {claim.stale.get('pid', '?')} on "
                    f"{claim.stale.get('host', '?')}) ended without finishing",
                )
        return _run_claimed(
            files, particles, params, prog, red, resume, project_dir, overwrite, overrides
        )
    except BaseException:
        if claim is not None:
            claim.release()
            claim = None
            if created:  # a job that failed before writing anything leaves no empty folder
                with contextlib.suppress(OSError):
                    files.dir.rmdir()
        raise
    finally:
        if claim is not None:
            claim.release()


def _run_claimed(
    files: Any,
    particles: Path | None,
    params: ClassifyParams | None,
    prog: Any,
    red: Any,
    resume: bool,
    project_dir: str | None,
    overwrite: bool,
    overrides: dict[str, Any] | None,
) -> int:
    import numba

    from engine.core import fft as _fft
    from engine.io.fingerprint import run_key
    from engine.io.job_writer import write_job_json
    from engine.io.particles import read_particles
    from engine.params import resolve_threads
    from engine.run import jobcheck
    from engine.run.preprocess import prepare_dataset

    root = red.rank == 0
    job_dir = files.dir
    info: dict[str, Any] = {}
    if resume:
        info = jobcheck.resume_info(files)
        params = jobcheck.check_given_params(jobcheck.params_of_job(files, info), overrides)
        if info.get("status") == "finished":
            prog.stage("done", f"{job_dir} is already finished")
            return 0
        particles = Path(info["input"])
        project_dir = project_dir or info.get("project_dir")
    elif root:
        jobcheck.check_new_job_folder(files, overwrite)
    assert params is not None and particles is not None

    n_threads = min(resolve_threads(params.threads), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n_threads)
    _fft.set_workers(n_threads)
    pset = read_particles(particles, project_dir)
    if not pset.apix_A or pset.apix_A <= 0:
        raise InputError(
            particles,
            "pixel size unknown (no rlnImagePixelSize in the optics table and none in the "
            "stack header)",
        )
    errs = params.validate_for_data(len(pset), pset.box, pset.apix_A)
    if errs:
        raise ParameterError(errs)
    inputs = [pset.path, *pset.stack_paths]
    if root:
        jobcheck.check_outputs_not_inputs(files, inputs)
    if params.max_res_A < 2 * pset.apix_A:
        prog.warn(
            f"--max-res {params.max_res_A:g} Å is finer than Nyquist "
            f"({2 * pset.apix_A:g} Å): using the full box"
        )
    if params.ctf and pset.ctf is None:
        prog.warn("no CTF columns in the input: classifying without CTF")
        params.ctf = False
    key = run_key(params, pset)
    state = None
    if resume:
        jobcheck.check_run_key(
            files.job,
            info.get("run_key"),
            key,
            "the input or the settings changed since the job started",
        )
        if files.checkpoint.exists():
            state = jobcheck.load_checked_checkpoint(files, key)
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
        "run_key": key,
    }
    cache = files.cache / f"rank{red.rank}"
    started = resume  # a job.json of this job exists (to record the end in)
    t0 = time.perf_counter()
    try:
        prog.stage("reading", f"reading and Fourier-cropping {len(pset)} particles")
        data = prepare_dataset(pset, params, cache, red.rank, red.size)
        _check_blank(pset, data, red, prog)
        if root:  # everything checked: from here on, the folder changes
            if not resume and overwrite:
                jobcheck.remove_previous_outputs(files, inputs)
            write_job_json(files, job_info)
        started = True
        return _classify(files, pset, params, prog, red, state, job_info, key, data, t0)
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        if not started:
            raise Interrupted(signum, "nothing was written") from None
        _record(files, job_info, root, status="cancelled")
        prog.emit("error", message=f"cancelled; resume with twodclass run --resume {job_dir}")
        raise Interrupted(signum, f"resume with `twodclass run --resume {job_dir}`") from None
    except Exception as exc:
        msg = os_error_message(exc) if isinstance(exc, OSError) else str(exc)
        if started:
            _record(files, job_info, root, status="failed", error=msg)
        prog.emit("error", message=msg)
        if isinstance(exc, OSError) and started:
            it = job_info.get("iteration", 0)
            raise TwodclassError(
                f"{msg}; the job stopped after iteration {it}: once this is fixed, resume it "
                f"with `twodclass run --resume {job_dir}`"
            ) from None
        raise
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if root:
            with contextlib.suppress(OSError):
                files.cache.rmdir()  # empty once every process removed its own


def _record(files: Any, job_info: dict[str, Any], root: bool, **fields: Any) -> None:
    """Record the job's end in job.json, if the disk lets us (a full disk may not)."""
    if not root:
        return
    from engine.io.job_writer import write_job_json

    job_info.update(fields)
    with contextlib.suppress(OSError):
        write_job_json(files, job_info)


def _check_blank(pset: Any, data: Any, red: Any, prog: Any) -> None:
    """Refuse a set whose images are all blank (constant); warn about some blank ones."""
    import numpy as np

    n_own = data.images.shape[0]
    blank = np.zeros(n_own, dtype=bool)
    for s in range(0, n_own, 4096):
        block = np.asarray(data.images[s : s + 4096], dtype=np.float32)
        blank[s : s + 4096] = ~np.any(block != 0, axis=(1, 2))
        if data.after_read is not None:  # a memory-mapped cache: drop the pages just read
            data.after_read(np.arange(s, s + len(block)))
    n_blank = int(red.sum_array(np.array([blank.sum()], dtype=np.int64))[0])
    if n_blank == 0:
        return
    first = ""
    if data.size == 1:
        first = f" (the first at row {int(np.argmax(blank)) + 1})"
    if n_blank == len(pset):
        raise InputError(
            pset.path, "every image is blank (all its pixels equal): there is nothing to classify"
        )
    prog.warn(
        f"{n_blank} of {len(pset)} images are blank (all pixels equal){first}; they carry "
        "no signal and will end up in arbitrary classes"
    )


def _classify(
    files: Any,
    pset: Any,
    params: ClassifyParams,
    prog: Any,
    red: Any,
    state: Any,
    job_info: dict[str, Any],
    key: dict[str, Any],
    data: Any,
    t0: float,
) -> int:
    import numba
    import numpy as np

    from engine.core.model import classify, gather_state, geometry_for, n_iterations
    from engine.core.particle_residuals import residual_statistics
    from engine.core.schedule import visits
    from engine.io.job_writer import (
        save_checkpoint,
        write_data,
        write_job_json,
        write_model,
    )
    from engine.select.class_stats import class_statistics_for_state

    root = red.rank == 0
    job_dir = files.dir
    geo = geometry_for(params, data)
    n_updates = n_iterations(params, len(pset))
    job_info.update(box_small=data.b, apix_small_A=data.apix_small_A, n_iterations=n_updates)
    total = visits(params, len(pset))
    done = sum(h["n_particles"] for h in state.history) if state else 0
    prog.start(
        job_dir=str(job_dir),
        n_particles=len(pset),
        n_classes=params.n_classes,
        n_iterations=n_updates,
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
            save_checkpoint(files, st, key)
            write_model(files, st, params, data, geo)
            job_info.update(iteration=st.iteration)
            write_job_json(files, job_info)
        prog.iteration(info)

    state = classify(params, data, state, red, on_iteration, prog.block)
    owned = np.arange(data.n) % data.size == data.rank
    per_particle = {
        k: red.gather_particles(v, owned)
        for k, v in residual_statistics(
            data, geo, state, params.ctf, numba.get_num_threads()
        ).items()
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
            status="finished", iteration=state.iteration, seconds=round(time.perf_counter() - t0, 2)
        )
        write_job_json(files, job_info)
    prog.emit("done", job_dir=str(job_dir), seconds=round(time.perf_counter() - t0, 2))
    return 0

"""Checks a job makes before it writes anything, each raising one clear line.

- :func:`check_new_job_folder`: a new job does not replace a job, or other run files,
  without ``--overwrite``;
- :func:`check_outputs_not_inputs`: no file the job writes is one of its inputs (the
  particle file or an image stack), ``--overwrite`` or not;
- :func:`remove_previous_outputs`: with ``--overwrite``, the previous job's results,
  checkpoint and selection go before the new job starts (an input among them stays);
- :func:`read_job_info`, :func:`params_of_job`, :func:`check_given_params`,
  :func:`check_run_key`, :func:`load_checked_checkpoint`: ``--resume`` continues only the
  same job, on the same input with the same settings.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from engine.errors import InputError, ParameterError, Problem
from engine.io.fingerprint import key_differences
from engine.io.jobfolder import JobFiles, read_job_info
from engine.params import ClassifyParams, param_specs

__all__ = [
    "output_paths",
    "check_new_job_folder",
    "check_outputs_not_inputs",
    "remove_previous_outputs",
    "resume_info",
    "params_of_job",
    "check_given_params",
    "check_run_key",
    "load_checked_checkpoint",
]


def _selection_files(files: JobFiles) -> list[Path]:
    return list(files.selection_files())


def output_paths(files: JobFiles) -> list[Path]:
    """Every file a job writes or replaces in its folder."""
    return [files.job, files.data, files.model, files.classes, files.checkpoint]


def check_new_job_folder(files: JobFiles, overwrite: bool) -> None:
    """Refuse a folder that holds a job, or run files of another program, without overwrite."""
    if overwrite:
        return
    d = files.dir
    if files.job.exists():
        raise InputError(
            d,
            f"already holds a job (job.json); use --resume {d} to continue it, "
            "--overwrite to replace it, or another -o",
        )
    present = [p.name for p in (files.data, files.model, files.classes) if p.exists()]
    if present:
        raise InputError(
            d,
            f"already holds {', '.join(present)} (not from a twodclass job: no job.json); "
            "--overwrite replaces them, or choose another -o",
        )


def _file_id(p: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(p)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_outputs_not_inputs(files: JobFiles, inputs: list[Path]) -> None:
    """Refuse when a file the job writes (or removes) is one of ``inputs``."""
    ids: dict[tuple[int, int], Path] = {}
    for p in inputs:
        fid = _file_id(p)
        if fid is not None:
            ids.setdefault(fid, p)
    for out in [*output_paths(files), *_selection_files(files)]:
        fid = _file_id(out)
        if fid is not None and fid in ids:
            raise InputError(
                ids[fid],
                f"this input would be overwritten by the job's {out.name} in {files.dir}; "
                "choose another -o (or move the input)",
            )


def remove_previous_outputs(files: JobFiles, inputs: list[Path]) -> list[Path]:
    """Remove the previous job's files (``--overwrite``), never an input; returns them."""
    keep = {_file_id(p) for p in inputs} - {None}
    gone = []
    for p in [files.data, files.model, files.classes, files.checkpoint, *_selection_files(files)]:
        fid = _file_id(p)
        if fid is None or fid in keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            gone.append(p)
    return gone


# ------------------------------------------------------------------------------ resume
def resume_info(files: JobFiles) -> dict[str, Any]:
    """``job.json`` of a job to resume (:func:`engine.io.jobfolder.read_job_info`), checked:
    InputError when missing or damaged."""
    if not files.job.exists():
        what = "folder not found" if not files.dir.exists() else "no job.json"
        raise InputError(files.dir, f"no job to resume here ({what})")
    try:
        info = read_job_info(files.dir)
    except InputError as exc:
        raise InputError(files.job, f"{exc.problem}; start the job again") from None
    if not isinstance(info.get("params"), dict):
        raise InputError(files.job, "damaged job.json (no parameters); start the job again")
    if not isinstance(info.get("input"), str) or not info["input"]:
        raise InputError(files.job, "damaged job.json (no input file); start the job again")
    return info


def params_of_job(files: JobFiles, info: dict[str, Any]) -> ClassifyParams:
    """The parameters recorded in ``job.json``, checked like the CLI's."""
    try:
        params = ClassifyParams.from_dict(info["params"])
    except (TypeError, ValueError) as exc:
        raise InputError(files.job, f"damaged job.json ({exc}); start the job again") from None
    errs = params.validate()
    if errs:
        raise InputError(
            files.job, f"damaged job.json ({'; '.join(map(str, errs))}); start the job again"
        )
    return params


def check_given_params(params: ClassifyParams, given: dict[str, Any] | None) -> ClassifyParams:
    """Apply ``--threads`` given with ``--resume``; refuse any other parameter that differs
    from the job's (a resumed job continues with its own settings)."""
    if not given:
        return params
    problems = []
    for s in param_specs():
        if s.name not in given:
            continue
        new, old = given[s.name], getattr(params, s.name)
        if s.name == "threads":
            params.threads = new
        elif new != old:
            if s.type is bool:
                no = "--no-" + s.flag[2:]
                given_s, job_s = (s.flag if new else no), (s.flag if old else no)
                problems.append(Problem(s.flag, f"{given_s} differs from the job's {job_s}"))
            else:
                problems.append(Problem(s.flag, f"{s.flag} {new} differs from the job's {old}"))
    if problems:
        problems.append(
            Problem(
                "",
                "--resume continues a job with its own settings: drop these options, or start "
                "a new job (another -o, or --overwrite)",
            )
        )
        raise ParameterError(problems)
    return params


def check_run_key(
    where: Path, recorded: dict[str, Any] | None, now: dict[str, Any], what: str
) -> None:
    """Refuse to resume when ``recorded`` (job.json's or the checkpoint's run key) differs
    from ``now``; a key missing (older versions) is not checked."""
    if not recorded:
        return
    diff = key_differences(recorded, now)
    if diff:
        raise InputError(
            where,
            f"{what}: {'; '.join(diff)}. Resuming would mix two runs; start a new job "
            "(another -o, or --overwrite)",
        )


def load_checked_checkpoint(files: JobFiles, key: dict[str, Any]) -> Any:
    """The checkpoint's state, after checking it belongs to this run (run key)."""
    from engine.io.job_writer import checkpoint_run_key, load_checkpoint

    try:
        recorded = checkpoint_run_key(files)
        state = load_checkpoint(files)
    except Exception as exc:  # numpy/zipfile errors of every kind: a damaged file
        raise InputError(
            files.checkpoint,
            f"damaged checkpoint ({type(exc).__name__}: {exc}); the job cannot be resumed: "
            f"start it again with --overwrite",
        ) from None
    check_run_key(
        files.checkpoint, recorded, key, "the checkpoint belongs to another run than job.json"
    )
    return state

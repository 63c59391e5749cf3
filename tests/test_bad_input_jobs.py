"""Catalogue of bad situations around job folders: output paths, a folder in use, a full
disk, resuming what cannot be resumed, and ``twodclass select`` / ``browse`` on bad jobs.

Each case asserts the exit status, exactly one ``twodclass: error:`` line naming the
file/folder/option, no traceback, inputs byte-identical and earlier outputs intact
(sha256 of every file before and after).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from engine.io.claim import FolderClaim
from engine.io.jobfolder import load_job
from tests.helpers_bad import (
    TINY,
    assert_one_error,
    cli,
    readonly_fs,
    same_result,
    tree_digest,
    write_particles,
)


# ----------------------------------------------------------------------------- fixtures
def _job(tmp: Path, *extra: str, capsys=None) -> Path:
    """A finished tiny job ``tmp/job`` of the particles ``tmp/in/particles.star``."""
    p = tmp / "in" / "particles.star"
    if not p.exists():
        write_particles(tmp / "in")
    from engine.cli import main

    assert main(["run", str(p), "-o", str(tmp / "job"), *TINY, *extra]) == 0
    return tmp / "job"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return _job(tmp_path_factory.mktemp("finished"))


def _copy(job: Path, tmp: Path, name: str = "job") -> Path:
    dst = tmp / name
    shutil.copytree(job, dst)
    return dst


def _interrupt_at(monkeypatch, iteration: int) -> None:
    """The next run stops (as on ctrl+c) right after iteration ``iteration`` is saved."""
    from engine.run.progress import Progress

    real = Progress.iteration

    def stop(self, info):
        real(self, info)
        if info["iteration"] == iteration:
            raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "iteration", stop)


def _interrupted(tmp: Path, monkeypatch, capsys, at: int = 2, *extra: str) -> Path:
    """A job stopped after iteration ``at`` (job.json: cancelled; checkpoint of ``at``)."""
    write_particles(tmp / "in")
    with monkeypatch.context() as m:
        _interrupt_at(m, at)
        rc, _, err = cli(
            ["run", tmp / "in" / "particles.star", "-o", tmp / "job", *TINY, *extra], capsys
        )
    assert rc == 130 and f"twodclass run --resume {tmp / 'job'}" in err
    info = json.loads((tmp / "job" / "job.json").read_text())
    assert info["status"] == "cancelled" and info["iteration"] == at
    return tmp / "job"


def _unchanged(tmp: Path, before: dict, *folders: str) -> None:
    after = {k: tree_digest(tmp / k) for k in folders}
    assert after == before


def _digests(tmp: Path, *folders: str) -> dict:
    return {k: tree_digest(tmp / k) for k in folders}


# ----------------------------------------------------------------------------- run: -o
def test_output_is_a_file(tmp_path, capsys):
    p = write_particles(tmp_path / "in")
    (tmp_path / "out").write_text("keep me")
    before = _digests(tmp_path, "in")
    rc, _, err = cli(["run", p, "-o", tmp_path / "out", *TINY], capsys)
    assert_one_error(rc, err, str(tmp_path / "out"), "-o must be a folder")
    _unchanged(tmp_path, before, "in")
    assert (tmp_path / "out").read_text() == "keep me"


def test_output_under_a_file(tmp_path, capsys):
    p = write_particles(tmp_path / "in")
    (tmp_path / "f").write_text("keep me")
    rc, _, err = cli(["run", p, "-o", tmp_path / "f" / "job", *TINY], capsys)
    assert_one_error(rc, err, str(tmp_path / "f" / "job"), f"{tmp_path / 'f'} is a file")
    assert (tmp_path / "f").read_text() == "keep me"


def test_output_on_read_only_file_system(tmp_path, capsys, monkeypatch):
    p = write_particles(tmp_path / "in")
    (tmp_path / "ro").mkdir()
    before = _digests(tmp_path, "in")
    readonly_fs(monkeypatch, tmp_path / "ro")
    rc, _, err = cli(["run", p, "-o", tmp_path / "ro" / "job", *TINY], capsys)
    assert_one_error(rc, err, str(tmp_path / "ro" / "job"), "read-only file system")
    rc, _, err = cli(["run", p, "-o", tmp_path / "ro", *TINY], capsys)
    assert_one_error(rc, err, str(tmp_path / "ro"), "cannot write into this folder")
    monkeypatch.undo()
    _unchanged(tmp_path, before, "in")
    assert list((tmp_path / "ro").iterdir()) == []


def test_input_inside_output_is_not_overwritten(tmp_path, capsys):
    """``run DIR/run_data.star -o DIR``: refused without --overwrite (DIR holds run files),
    and with --overwrite too (the input would be replaced)."""
    write_particles(tmp_path / "d", name="run_data.star")
    before = _digests(tmp_path, "d")
    rc, _, err = cli(["run", tmp_path / "d" / "run_data.star", "-o", tmp_path / "d", *TINY], capsys)
    assert_one_error(rc, err, str(tmp_path / "d"), "already holds run_data.star", "--overwrite")
    _unchanged(tmp_path, before, "d")
    argv = ["run", tmp_path / "d" / "run_data.star", "-o", tmp_path / "d", "--overwrite", *TINY]
    rc, _, err = cli(argv, capsys)
    assert_one_error(rc, err, str(tmp_path / "d" / "run_data.star"), "input would be overwritten")
    _unchanged(tmp_path, before, "d")


def test_existing_job_needs_overwrite(finished, tmp_path, capsys):
    job = _copy(finished, tmp_path)
    before = _digests(tmp_path, "job")
    rc, _, err = cli(["run", finished.parent / "in" / "particles.star", "-o", job, *TINY], capsys)
    assert_one_error(rc, err, str(job), "already holds a job", f"--resume {job}", "--overwrite")
    _unchanged(tmp_path, before, "job")


def test_folder_in_use_is_refused(finished, tmp_path, capsys):
    """A second run into a folder that a living process holds is refused (pid and host)."""
    job = _copy(finished, tmp_path)
    before = _digests(tmp_path, "job")
    with FolderClaim(job, "twodclass run"):
        for argv in (
            ["run", finished.parent / "in" / "particles.star", "-o", job, "--overwrite", *TINY],
            ["run", "--resume", job],
            ["select", job, "--classes", "1"],
        ):
            rc, _, err = cli(argv, capsys)
            assert_one_error(rc, err, str(job), f"in use by twodclass run (pid {os.getpid()}")
        after = _digests(tmp_path, "job")
    assert after["job"].keys() - before["job"].keys() == {"job.lock"}
    _unchanged(tmp_path, before, "job")  # the lock went with the claim


def test_disk_full_then_resume(tmp_path, capsys, monkeypatch):
    """No space left mid-run: one line naming the file and how to resume; nothing is
    half-written; once there is space, --resume gives the uninterrupted result."""
    ref = _job(tmp_path / "ref")
    write_particles(tmp_path / "in")
    before = _digests(tmp_path, "in")
    calls = {"n": 0}
    real_fsync = os.fsync

    def full(fd):
        calls["n"] += 1
        if calls["n"] >= 6:  # the disk fills up during the second iteration's writes
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    rc, _, err = cli(
        ["run", tmp_path / "in" / "particles.star", "-o", tmp_path / "job", *TINY], capsys
    )
    monkeypatch.undo()
    line = assert_one_error(rc, err, "no space left on the device (disk full)")
    assert str(tmp_path / "job") in line and f"twodclass run --resume {tmp_path / 'job'}" in line
    assert not [p for p in (tmp_path / "job").rglob(".*.tmp*")]  # no half-written file left
    assert load_job(tmp_path / "job").status in ("failed", "interrupted")
    _unchanged(tmp_path, before, "in")
    rc, _, err = cli(["run", "--resume", tmp_path / "job"], capsys)
    assert rc == 0, err
    same_result(ref, tmp_path / "job")


# ----------------------------------------------------------------------------- resume
def test_resume_without_a_job(tmp_path, capsys):
    rc, _, err = cli(["run", "--resume", tmp_path / "nowhere"], capsys)
    assert_one_error(rc, err, str(tmp_path / "nowhere"), "folder not found")
    (tmp_path / "empty").mkdir()
    rc, _, err = cli(["run", "--resume", tmp_path / "empty"], capsys)
    assert_one_error(rc, err, str(tmp_path / "empty"), "no job.json")
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize(
    "text,needle",
    [
        ('{"status": "running", "params": {', "damaged job.json (JSONDecodeError"),
        ("[1, 2]", "damaged job.json (not a JSON object)"),
        ('{"params": {}, "status": "cancelled"}', "damaged job.json (no input file)"),
        ('{"params": {"n_classes": "x"}, "input": "p.star"}', "--classes must be a whole number"),
        ('{"params": {"colour": 1}, "input": "p.star"}', "unknown parameter(s): colour"),
    ],
)
def test_resume_damaged_job_json(text, needle, tmp_path, capsys, monkeypatch):
    job = _interrupted(tmp_path, monkeypatch, capsys)
    (job / "job.json").write_text(text)
    before = _digests(tmp_path, "in", "job")
    rc, _, err = cli(["run", "--resume", job], capsys)
    assert_one_error(rc, err, str(job / "job.json"), needle)
    _unchanged(tmp_path, before, "in", "job")


def test_resume_truncated_checkpoint(tmp_path, capsys, monkeypatch):
    job = _interrupted(tmp_path, monkeypatch, capsys)
    ck = job / "checkpoint" / "state.npz"
    ck.write_bytes(ck.read_bytes()[:1000])
    before = _digests(tmp_path, "in", "job")
    rc, _, err = cli(["run", "--resume", job], capsys)
    assert_one_error(rc, err, str(ck), "damaged checkpoint", "--overwrite")
    _unchanged(tmp_path, before, "in", "job")


def test_resume_after_the_particle_file_changed(tmp_path, capsys, monkeypatch):
    """The input changed: refused, and the valid checkpoint is kept."""
    job = _interrupted(tmp_path, monkeypatch, capsys)
    p = tmp_path / "in" / "particles.star"
    p.write_text(p.read_text().replace("10000.000000", "11000.000000", 1))
    before = _digests(tmp_path, "in", "job")
    rc, _, err = cli(["run", "--resume", job], capsys)
    assert_one_error(rc, err, str(job / "job.json"), "the particle file changed", "new job")
    _unchanged(tmp_path, before, "in", "job")


def test_resume_after_the_stack_changed(tmp_path, capsys, monkeypatch):
    job = _interrupted(tmp_path, monkeypatch, capsys)
    from tests.helpers_bad import blobs, write_stack

    write_stack(tmp_path / "in" / "stack.mrcs", blobs(40, 32, seed=5))
    before = _digests(tmp_path, "in", "job")
    rc, _, err = cli(["run", "--resume", job], capsys)
    assert_one_error(rc, err, str(job / "job.json"), "the image stacks changed")
    _unchanged(tmp_path, before, "in", "job")


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--classes", "3"], "--classes 3 differs from the job's 2"),
        (["--max-res", "10"], "--max-res 10.0 differs from the job's 12.0"),
        (["--no-ctf"], "--no-ctf differs from the job's --ctf"),
    ],
)
def test_resume_with_other_settings(extra, needle, tmp_path, capsys, monkeypatch):
    job = _interrupted(tmp_path, monkeypatch, capsys)
    before = _digests(tmp_path, "in", "job")
    rc, _, err = cli(["run", "--resume", job, *extra], capsys)
    assert_one_error(rc, err, needle, "--resume continues a job with its own settings")
    _unchanged(tmp_path, before, "in", "job")


def test_resume_with_a_checkpoint_of_another_run(tmp_path, capsys, monkeypatch):
    job = _interrupted(tmp_path, monkeypatch, capsys)
    other = _job(tmp_path / "other", "--seed", "7")
    shutil.copy(other / "checkpoint" / "state.npz", job / "checkpoint" / "state.npz")
    before = _digests(tmp_path, "in", "job")
    rc, _, err = cli(["run", "--resume", job], capsys)
    assert_one_error(rc, err, "state.npz", "belongs to another run", "seed 7 -> 1")
    _unchanged(tmp_path, before, "in", "job")


def test_resume_allows_other_threads_and_equals_uninterrupted(tmp_path, capsys, monkeypatch):
    ref = _job(tmp_path / "ref")
    job = _interrupted(tmp_path, monkeypatch, capsys)
    rc, _, err = cli(["run", "--resume", job, "--threads", "1", "--classes", "2"], capsys)
    assert rc == 0, err
    same_result(ref, job)
    rc, _, err = cli(["run", "--resume", job], capsys)
    assert rc == 0 and "already finished" in err


def test_interrupted_overwrite_does_not_resume_the_old_job(tmp_path, capsys, monkeypatch):
    """Job A finished; B (other settings) started with --overwrite is stopped before its first
    iteration; --resume must run B (B's classes and pixel size), not continue A."""
    a = _job(tmp_path)
    ref_b = _job(tmp_path / "ref", "--max-res", "9", "--classes", "3")
    import engine.core.model as model

    def stop(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(model, "classify", stop)
        argv = ["run", tmp_path / "in" / "particles.star", "-o", a, "--overwrite", *TINY]
        rc, _, err = cli([*argv, "--max-res", "9", "--classes", "3"], capsys)
    assert rc == 130 and f"--resume {a}" in err
    assert not (a / "checkpoint" / "state.npz").exists()  # A's checkpoint went with A
    assert not (a / "run_data.star").exists()
    rc, _, err = cli(["run", "--resume", a], capsys)
    assert rc == 0, err
    same_result(ref_b, a)
    assert load_job(a).n_classes == 3


# ----------------------------------------------------------------------------- select
def test_select_missing_job(tmp_path, capsys):
    rc, _, err = cli(["select", tmp_path / "nope"], capsys)
    assert_one_error(rc, err, str(tmp_path / "nope"), "job folder not found")


def test_select_interrupted_job_says_resume(tmp_path, capsys, monkeypatch):
    """A job killed while running (job.json still says running, nobody holds the folder)."""
    job = _interrupted(tmp_path, monkeypatch, capsys)
    info = json.loads((job / "job.json").read_text())
    (job / "job.json").write_text(json.dumps(dict(info, status="running")))
    before = _digests(tmp_path, "job")
    rc, _, err = cli(["select", job, "--classes", "1"], capsys)
    assert_one_error(rc, err, "status: interrupted", f"twodclass run --resume {job}")
    _unchanged(tmp_path, before, "job")


def test_select_running_job_says_wait(tmp_path, capsys, monkeypatch):
    job = _interrupted(tmp_path, monkeypatch, capsys)
    info = json.loads((job / "job.json").read_text())
    (job / "job.json").write_text(json.dumps(dict(info, status="running")))
    with FolderClaim(job, "twodclass run"):
        rc, _, err = cli(["select", job, "--classes", "1"], capsys)
    assert_one_error(rc, err, "still running", f"pid {os.getpid()}", "wait")


@pytest.mark.parametrize(
    "classes,needle",
    [
        ("2-1", "class range 2-1 in '2-1' runs backwards: write 1-2"),
        ("1,x", "cannot read class list '1,x'"),
        ("99", "unknown class number(s) 99"),
        (",", "names no class"),
    ],
)
def test_select_bad_class_list(classes, needle, finished, tmp_path, capsys):
    job = _copy(finished, tmp_path)
    before = _digests(tmp_path, "job")
    rc, _, err = cli(["select", job, "--classes", classes], capsys)
    assert_one_error(rc, err, needle)
    _unchanged(tmp_path, before, "job")


def test_select_twice_needs_overwrite(finished, tmp_path, capsys):
    job = _copy(finished, tmp_path)
    rc, _, err = cli(["select", job, "--classes", "1", "--no-particle-filter"], capsys)
    assert rc == 0, err
    first = _digests(tmp_path, "job")
    rc, _, err = cli(["select", job, "--classes", "2", "--no-particle-filter"], capsys)
    assert_one_error(rc, err, str(job), "already holds a selection", "--overwrite")
    _unchanged(tmp_path, first, "job")  # the first selection is intact
    rc, _, err = cli(
        ["select", job, "--classes", "2", "--no-particle-filter", "--overwrite"], capsys
    )
    assert rc == 0, err
    assert json.loads((job / "selection.json").read_text())["class_ids"] == [2]


def test_select_bad_output_folder(finished, tmp_path, capsys, monkeypatch):
    job = _copy(finished, tmp_path)
    (tmp_path / "file").write_text("keep")
    before = _digests(tmp_path, "job")
    args = ["--classes", "1", "--no-particle-filter"]
    rc, _, err = cli(["select", job, *args, "-o", tmp_path / "file"], capsys)
    assert_one_error(rc, err, str(tmp_path / "file"), "-o must be a folder")
    rc, _, err = cli(["select", job, *args, "-o", tmp_path / "file" / "sub"], capsys)
    assert_one_error(rc, err, f"{tmp_path / 'file'} is a file")
    readonly_fs(monkeypatch, tmp_path / "job")
    rc, _, err = cli(["select", job, *args], capsys)
    assert_one_error(rc, err, str(job), "cannot write into this folder")
    rc, _, err = cli(["select", job, *args, "-o", job / "sel"], capsys)
    assert_one_error(rc, err, str(job / "sel"), "read-only file system")
    monkeypatch.undo()
    _unchanged(tmp_path, before, "job")
    assert (tmp_path / "file").read_text() == "keep"


def test_select_never_overwrites_the_jobs_input(tmp_path, capsys):
    """Job 2 classified job 1's particles_selected.star; a selection of job 2 written into
    job 1's folder would replace job 2's input: refused even with --overwrite."""
    j1 = _job(tmp_path)
    rc, _, err = cli(["select", j1, "--classes", "1,2", "--no-particle-filter"], capsys)
    assert rc == 0, err
    shutil.copy(tmp_path / "in" / "stack.mrcs", j1 / "stack.mrcs")
    argv = ["run", j1 / "particles_selected.star", "-o", tmp_path / "j2", *TINY]
    rc, _, err = cli(argv, capsys)
    assert rc == 0, err
    before = _digests(tmp_path, "job")
    sel = ["select", tmp_path / "j2", "--classes", "1", "--no-particle-filter", "--overwrite"]
    rc, _, err = cli([*sel, "-o", j1], capsys)
    assert_one_error(rc, err, str(j1 / "particles_selected.star"), "the job's input")
    _unchanged(tmp_path, before, "job")


def test_select_bad_threshold_number(finished, tmp_path, capsys):
    rc, _, err = cli(["select", finished, "--max-carbon", "nan"], capsys)
    assert_one_error(rc, err, "--max-carbon", "finite")
    rc, _, err = cli(["select", finished, "--min-particles", "2.5"], capsys)
    assert_one_error(rc, err, "--min-particles", "whole number")


def test_select_damaged_job_files(finished, tmp_path, capsys):
    job = _copy(finished, tmp_path)
    (job / "job.json").write_text("{not json")
    rc, _, err = cli(["select", job, "--classes", "1"], capsys)
    assert_one_error(rc, err, str(job / "job.json"), "damaged job.json")
    job2 = _copy(finished, tmp_path, "job2")
    mrcs = job2 / "run_classes.mrcs"
    mrcs.write_bytes(mrcs.read_bytes()[:-100])
    before = _digests(tmp_path, "job2")
    rc, _, err = cli(["select", job2, "--classes", "1"], capsys)
    assert_one_error(rc, err, str(mrcs), "truncated")
    _unchanged(tmp_path, before, "job2")


def test_browse_damaged_job_is_one_line(finished, tmp_path, capsys):
    """browse stops with one line before the terminal UI opens."""
    job = _copy(finished, tmp_path)
    mrcs = job / "run_classes.mrcs"
    mrcs.write_bytes(mrcs.read_bytes()[:-100])
    rc, _, err = cli(["browse", job], capsys)
    assert_one_error(rc, err, str(mrcs), "truncated")

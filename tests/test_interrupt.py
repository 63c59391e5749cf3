"""Interruptions: signals, kill -9 at a random iteration and in the middle of writing a file,
two runs started at once into one folder; then ``--resume`` gives the uninterrupted result.

Also: a job killed while running reads as *interrupted* (its lock is stale), the disk cache
goes when the run ends, and without a terminal progress and warnings are plain lines.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.io.jobfolder import load_job
from tests.helpers_bad import cli, same_result, tree_digest, write_particles

ROOT = Path(__file__).resolve().parents[1]
#: 13 iterations (about 0.15 s each, mostly the synced writes): a signal sent after
#: iteration k lands in the middle of the run
ARGS = [
    "--classes",
    "4",
    "--online-iters",
    "12",
    "--batch-per-class",
    "20",
    "--full-passes",
    "1",
    "--max-res",
    "12",
    "--threads",
    "1",
    "--seed",
    "2",
]
N_ITER = 13


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_particles(tmp_path_factory.mktemp("data"), n=120)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    from engine.cli import main

    out = tmp_path_factory.mktemp("ref") / "job"
    assert main(["run", str(data), "-o", str(out), *ARGS, "--progress", "none"]) == 0
    return out


def _start(data: Path, out: Path, prelude: str = "", *extra: str) -> subprocess.Popen:
    """``twodclass run`` in a new process (``prelude``: Python run before it), jsonl events."""
    code = f"import sys\n{prelude}\nfrom engine.cli import main\nsys.exit(main(sys.argv[1:]))"
    cmd = [
        sys.executable,
        "-c",
        code,
        "run",
        str(data),
        "-o",
        str(out),
        *ARGS,
        "--progress",
        "jsonl",
        *extra,
    ]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


PAUSE_AFTER = """
import time
import engine.core.model as _m
_real = _m.run_iteration
def _run_iteration(p, data, geo, state, it, *a, **k):
    if it == {k} + 1:  # the signal sent on iteration {k}'s event finds the job still running
        time.sleep(60)
    return _real(p, data, geo, state, it, *a, **k)
_m.run_iteration = _run_iteration
"""


def _stop_at(proc: subprocess.Popen, iteration: int, sig: int) -> tuple[int, str]:
    assert proc.stdout is not None
    for line in proc.stdout:
        ev = json.loads(line)
        if ev["event"] == "iteration" and ev["iteration"] == iteration:
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_exit_status_and_message(sig, status, data, reference, tmp_path, capsys):
    out = tmp_path / "job"
    rc, err = _stop_at(_start(data, out, PAUSE_AFTER.format(k=3)), 3, sig)
    assert rc == status, err
    assert err.strip().splitlines()[-1] == (
        f"twodclass: interrupted; resume with `twodclass run --resume {out}`"
    )
    assert "JOBDIR" not in err and "Traceback" not in err
    assert json.loads((out / "job.json").read_text())["status"] == "cancelled"
    assert not (out / "job.lock").exists()  # a clean stop releases the folder
    if sig == signal.SIGTERM:
        rc, _, err = cli(["run", "--resume", out, "--progress", "none"], capsys)
        assert rc == 0, err
        same_result(reference, out)


@pytest.mark.parametrize("trial", [0])
def test_kill_at_a_random_iteration_then_resume(trial, data, reference, tmp_path, capsys):
    """kill -9 after a random iteration: the job reads as interrupted (stale lock), select
    says to resume it, and --resume gives the uninterrupted result."""
    k = random.Random(100 + trial).randrange(1, N_ITER - 1)
    out = tmp_path / "job"
    rc, _ = _stop_at(_start(data, out, PAUSE_AFTER.format(k=k)), k, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert json.loads((out / "job.json").read_text())["status"] == "running"
    assert (out / "job.lock").exists()  # left behind by the dead process...
    assert load_job(out).status == "interrupted"  # ...and recognised as stale
    rc, _, err = cli(["select", out, "--classes", "1"], capsys)
    assert rc == 2 and f"resume it with `twodclass run --resume {out}`" in err
    rc, _, err = cli(["run", "--resume", out, "--progress", "plain"], capsys)
    assert rc == 0, err
    assert "ended without finishing" in err
    same_result(reference, out)
    assert not (out / "job.lock").exists()


KILL_AT_WRITE = """
import os, signal
_real = os.replace
_n = [0]
def _replace(src, dst, *a, **k):
    _n[0] += 1
    if _n[0] == {k}:  # the temporary file is written and synced, not yet renamed
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(src, dst, *a, **k)
os.replace = _replace
"""


@pytest.mark.parametrize("trial", [0])
def test_kill_while_writing_then_resume(trial, data, reference, tmp_path, capsys):
    """kill -9 in the middle of an atomic write (at a random one of the run's writes): the
    earlier file stays whole, the orphaned temporary file is removed by --resume, and the
    result is the uninterrupted one."""
    k = random.Random(200 + trial).randrange(3, 4 * (N_ITER - 1))
    out = tmp_path / "job"
    proc = _start(data, out, KILL_AT_WRITE.format(k=k))
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    temps = [p for p in out.rglob(".*.tmp*")]
    assert len(temps) == 1  # the write that was cut off
    final = temps[0].parent / temps[0].name[1:].split(".")[0]
    assert final.name.startswith(("run_", "job", "state"))
    assert load_job(out).status == "interrupted"
    rc, _, err = cli(["run", "--resume", out, "--progress", "none"], capsys)
    assert rc == 0, err
    assert not list(out.rglob(".*.tmp*"))
    same_result(reference, out)


def test_two_runs_at_the_same_moment(data, reference, tmp_path):
    """Two runs into one folder at once: one runs, the other is refused; nothing is lost."""
    out = tmp_path / "job"
    procs = [_start(data, out), _start(data, out)]
    results = [(p.wait(timeout=180), p.communicate()[1]) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    err = next(e for rc, e in results if rc == 2)
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"twodclass: error: {out}: ")
    assert "in use by twodclass run (pid" in line or "already holds a job" in line
    assert load_job(out).status == "finished" and not (out / "job.lock").exists()
    same_result(reference, out)


def test_disk_cache_goes_when_the_run_ends(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TWODCLASS_CACHE_GB", "0")  # every cropped particle on disk
    from engine.run.progress import Progress

    seen = []
    real = Progress.iteration

    def spy(self, info):
        seen.extend(p.name for p in (tmp_path / "job").rglob("*.f16"))
        real(self, info)

    monkeypatch.setattr(Progress, "iteration", spy)
    rc, _, err = cli(["run", data, "-o", tmp_path / "job", *ARGS, "--progress", "none"], capsys)
    assert rc == 0, err
    assert seen and seen[0].startswith("particles_")  # the cache was on disk while running
    assert not (tmp_path / "job" / "cache").exists()
    assert sorted(tree_digest(tmp_path / "job")) == [
        "checkpoint/state.npz",
        "job.json",
        "run_classes.mrcs",
        "run_data.star",
        "run_model.star",
    ]


def test_plain_progress_and_warnings_without_a_terminal(tmp_path, capsys):
    """stderr is not a terminal (as in a batch job): iteration lines and every warning."""
    p = write_particles(tmp_path / "in", ctf=False)
    short = ["--classes", "2", "--online-iters", "2", "--batch-per-class", "5", "--threads", "1"]
    rc, out, err = cli(["run", p, "-o", tmp_path / "job", *short, "--max-res", "1"], capsys)
    assert rc == 0 and out == ""
    lines = err.splitlines()
    assert (
        "twodclass: warning: --max-res 1 Å is finer than Nyquist (6 Å): using the full box" in lines
    )
    assert "twodclass: warning: no CTF columns in the input: classifying without CTF" in lines
    assert sum(ln.startswith("iter ") for ln in lines) == 3
    assert not any("\r" in ln or "\033" in ln for ln in lines)
    assert lines[-1].startswith("twodclass: finished in")
    rc, out, err = cli(
        ["run", p, "-o", tmp_path / "j2", *short, "--max-res", "1", "--progress", "jsonl"], capsys
    )
    events = [json.loads(ln) for ln in out.splitlines()]
    warnings = [
        e["message"] for e in events if e["event"] == "stage" and e.get("stage") == "warning"
    ]
    assert rc == 0 and len(warnings) == 2 and err == ""
    rc, out, err = cli(["run", p, "-o", tmp_path / "j3", *short, "--progress", "none"], capsys)
    assert (
        rc == 0
        and out == ""
        and err.splitlines()
        == ["twodclass: warning: no CTF columns in the input: classifying without CTF"]
    )


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    """A lock file whose holder is gone does not block; one whose holder lives does."""
    from engine.errors import InputError
    from engine.io.claim import FolderClaim, holder, job_status

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom engine.io.claim import FolderClaim\n"
            f"c = FolderClaim({str(tmp_path)!r}, 'twodclass run').acquire()\n"
            "print('held', flush=True)\ntime.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    assert holder(tmp_path)["pid"] == proc.pid
    assert job_status(tmp_path, "running") == "running"
    with pytest.raises(InputError, match=f"in use by twodclass run \\(pid {proc.pid} on "):
        FolderClaim(tmp_path, "twodclass select").acquire()
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert holder(tmp_path) is None and job_status(tmp_path, "running") == "interrupted"
    with FolderClaim(tmp_path, "twodclass run") as claim:
        assert claim.stale is not None and claim.stale["pid"] == proc.pid
        assert holder(tmp_path)["pid"] == os.getpid()
    assert not (tmp_path / "job.lock").exists()

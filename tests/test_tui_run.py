"""Starting a run from the job screen, following it, cancelling and resuming it.

``test_job_screen_runs_cancels_resumes`` uses ``tests/fake_engine.py`` (same events and files
as ``twodclass run --progress jsonl``, quick and deterministic); ``test_real_engine_run``
drives the real engine on a tiny simulated set.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from helpers_job import make_finished_job

from engine.params import ClassifyParams
from tui.app import TwodclassApp
from tui.class_grid import ClassGrid
from tui.engine_process import parse_line
from tui.param_form import ParamForm, field_id
from tui.screen_browser import BrowserScreen
from tui.screen_job import JobScreen
from tui.screen_run import RunScreen

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]


@pytest.fixture(autouse=True)
def _halfblock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWODCLASS_HALFBLOCK", "1")


async def _until(pilot, cond, timeout: float = 30.0, step: float = 0.05) -> None:
    for _ in range(int(timeout / step)):
        if cond():
            return
        await pilot.pause(step)
    raise AssertionError("condition not reached")


def test_params_to_args_only_changed_values():
    p = ClassifyParams(n_classes=4, force_max=False, diameter_A=120.0)
    assert p.to_cli_args(changed_only=True) == [
        "--classes",
        "4",
        "--diameter",
        "120",
        "--no-force-max",
    ]
    assert ClassifyParams().to_cli_args(changed_only=True) == []


def test_parse_line():
    assert parse_line('{"event": "done", "seconds": 1.5}') == (
        "done",
        {"event": "done", "seconds": 1.5},
    )
    assert parse_line("compiling kernels") is None
    assert parse_line('{"no_event": 1}') is None


def test_job_form_validates_from_the_data(tmp_path, monkeypatch):
    asyncio.run(_job_form_validates(tmp_path, monkeypatch))


async def _job_form_validates(tmp_path, monkeypatch):
    make_finished_job(tmp_path, n_classes=4, n_particles=60)
    monkeypatch.chdir(tmp_path)
    app = TwodclassApp("job", particles=Path("particles.star"), start_dir=Path("."))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, JobScreen)
        await _until(pilot, lambda: screen.data_info is not None)
        assert screen.data_info == (60, 32, 2.0)
        # every parameter of ClassifyParams has a field; defaults filled in
        form = screen.query_one(ParamForm)
        assert {s.name for s in form.specs} == set(ClassifyParams().to_dict())
        classes = screen.query_one(f"#{field_id('n_classes')}")
        assert classes.value == "50"
        await pilot.pause()
        # 50 classes > 60 particles is fine, 100 is not; the problem is shown
        classes.value = "100"
        await pilot.pause()
        assert any("--classes 100 is more than the 60 particles" in p for p in screen.problems)
        assert "-invalid" in classes.parent.classes
        classes.value = "4"
        screen.query_one(f"#{field_id('diameter_A')}").value = "500"
        await pilot.pause()
        assert any("larger than the box" in p for p in screen.problems)
        screen.query_one(f"#{field_id('diameter_A')}").value = ""
        await pilot.pause()
        assert screen.problems == []
        params = screen.read_params()
        assert params is not None and params.n_classes == 4 and params.diameter_A is None


def test_job_screen_runs_cancels_resumes(tmp_path, monkeypatch):
    asyncio.run(_job_screen_runs(tmp_path, monkeypatch))


async def _job_screen_runs(tmp_path, monkeypatch):
    make_finished_job(tmp_path, n_classes=4, n_particles=60, job_name="ref")
    monkeypatch.chdir(tmp_path)
    app = TwodclassApp(
        "job",
        particles=Path("particles.star"),
        start_dir=Path("."),
        engine=FAKE + ["--iters", "5", "--delay", "0.4"],
    )
    # the fake engine accepts and ignores the real flags; --iters/--delay go before them
    async with app.run_test(size=(100, 30)) as pilot:
        job_screen = app.screen
        await _until(pilot, lambda: job_screen.data_info is not None)
        job_screen.query_one(f"#{field_id('n_classes')}").value = "4"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await _until(pilot, lambda: isinstance(app.screen, RunScreen))
        run = app.screen
        job_dir = tmp_path / "twodclass_job001"
        assert run.job_dir == Path("twodclass_job001")
        grid = run.query_one(ClassGrid)
        # progress and iteration events arrive; the class grid fills
        await _until(pilot, lambda: run.iteration >= 2 and len(grid.infos) == 4)
        kinds = {e.kind for e in run.events}
        assert {"start", "progress", "iteration"} <= kinds
        assert run.changes[:2] == [0.5, 0.25]
        assert run.query_one("#run-progress").progress > 0
        # cancel: the process is terminated, the job can be resumed
        await pilot.press("c")
        await _until(pilot, lambda: not run.running)
        assert run.status == "cancelled"
        done_before = run.iteration
        assert json.loads((job_dir / "job.json").read_text())["status"] == "cancelled"
        await pilot.press("r")
        await _until(pilot, lambda: run.status == "finished" and not run.running)
        assert run.iteration == 5 and run.iteration > done_before
        assert [e.kind for e in run.events].count("start") == 2
        await pilot.press("b")
        await _until(
            pilot, lambda: isinstance(app.screen, BrowserScreen) and app.screen.job is not None
        )
        assert len(app.screen.query_one(ClassGrid).infos) == 4


@pytest.mark.slow
def test_real_engine_run(tmp_path, monkeypatch):
    asyncio.run(_real_engine_run(tmp_path, monkeypatch))


async def _real_engine_run(tmp_path, monkeypatch):
    make_finished_job(tmp_path, n_classes=4, n_particles=120, job_name="ref")
    monkeypatch.chdir(tmp_path)
    app = TwodclassApp("job", particles=Path("particles.star"), start_dir=Path("."))
    async with app.run_test(size=(100, 30)) as pilot:
        job_screen = app.screen
        await _until(pilot, lambda: job_screen.data_info is not None, timeout=60)
        # enough iterations that the run is still going when it is cancelled
        for name, value in (
            ("n_classes", "4"),
            ("online_iters", "60"),
            ("batch_per_class", "10"),
            ("threads", "1"),
        ):
            await pilot.pause()
            job_screen.query_one(f"#{field_id(name)}").value = value
        await pilot.pause()
        assert job_screen.problems == [], job_screen.problems
        await pilot.press("ctrl+r")
        await _until(pilot, lambda: isinstance(app.screen, RunScreen))
        run = app.screen
        grid = run.query_one(ClassGrid)
        await _until(
            pilot,
            lambda: run.iteration >= 2 and len(grid.infos) == 4 or run.status == "failed",
            timeout=240,
        )
        assert run.status != "failed", run.query_one("#run-log").lines[-10:]
        await pilot.press("c")
        await _until(pilot, lambda: not run.running, timeout=30)
        assert run.status == "cancelled"
        stopped_at = run.iteration
        assert stopped_at < 61
        await pilot.press("r")
        await _until(
            pilot, lambda: run.status in ("finished", "failed") and not run.running, timeout=240
        )
        assert run.status == "finished", run.query_one("#run-log").lines[-10:]
        starts = [e.data for e in run.events if e.kind == "start"]
        assert len(starts) == 2 and starts[1].get("resumed_from", 1) > 0
        assert run.iteration == starts[0]["n_iterations"]
        job_dir = tmp_path / "twodclass_job001"
        assert json.loads((job_dir / "job.json").read_text())["status"] == "finished"
        await pilot.press("b")
        await _until(
            pilot,
            lambda: isinstance(app.screen, BrowserScreen) and app.screen.job is not None,
            timeout=60,
        )
        assert len(app.screen.query_one(ClassGrid).infos) == 4


def test_engine_that_cannot_start_is_reported(tmp_path):
    asyncio.run(_cannot_start(tmp_path))


async def _cannot_start(tmp_path):
    app = TwodclassApp(
        "run", job_dir=tmp_path / "job", argv=[str(tmp_path / "no-such-engine"), "run"]
    )
    async with app.run_test(size=(80, 24)) as pilot:
        run = app.screen
        await _until(pilot, lambda: not run.running)
        assert run.status == "failed"
        assert "could not be started" in str(run.query_one("#run-status").render())
        assert any("cannot run the engine" in line for line in run.query_one("#run-log").lines)


def test_engine_error_event_and_exit_status(tmp_path):
    asyncio.run(_engine_error(tmp_path))


async def _engine_error(tmp_path):
    code = (
        "import json, sys; print(json.dumps({'event': 'error', "
        "'message': 'particles.star, row 3: no such image'}), flush=True); sys.exit(2)"
    )
    app = TwodclassApp("run", job_dir=tmp_path / "job", argv=[sys.executable, "-c", code])
    async with app.run_test(size=(80, 24)) as pilot:
        run = app.screen
        await _until(pilot, lambda: not run.running)
        assert run.status == "failed"
        assert "row 3: no such image" in str(run.query_one("#run-status").render())

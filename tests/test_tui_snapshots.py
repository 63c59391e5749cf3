"""Snapshots of the screens at 80x24 (half-block renderer forced, paths relative).

Update after an intended change: ``pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers_job import make_finished_job
from textual.widgets import DirectoryTree, Input
from textual.worker import WorkerCancelled, WorkerFailed

from tui.app import TwodclassApp
from tui.engine_process import EngineEvent
from tui.screen_browser import BrowserScreen
from tui.screen_run import RunScreen

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TWODCLASS_HALFBLOCK", "1")
    monkeypatch.setenv("TWODCLASS_RENDERER", "24bit")  # the same greys whatever TERM is
    monkeypatch.chdir(tmp_path)


async def _wait_workers(app) -> None:
    # not the DirectoryTree's loader: it runs for the life of the tree
    for w in list(app.workers):
        if not isinstance(w.node, DirectoryTree) and not w.is_finished:
            try:
                await w.wait()
            except (WorkerCancelled, WorkerFailed):
                pass


async def _settle(pilot, cond=lambda: True) -> None:
    for _ in range(200):
        await _wait_workers(pilot.app)
        await pilot.pause()
        if cond():
            break
    await _wait_workers(pilot.app)
    await pilot.pause(0.1)


def _browser_loaded(app) -> bool:
    s = app.screen
    return (
        isinstance(s, BrowserScreen)
        and s.job is not None
        and s.auto is not None
        and s.pfilter is not None
    )


def test_browser_snapshot(tmp_path, snap_compare):
    make_finished_job(tmp_path, n_classes=8, n_particles=240)
    app = TwodclassApp("browse", job_dir=Path("job"))

    async def run_before(pilot) -> None:
        await _settle(pilot, lambda: _browser_loaded(app))
        await pilot.press("right", "space", "right", "right", "space", "down")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_class_detail_snapshot(tmp_path, snap_compare):
    make_finished_job(tmp_path, n_classes=4, n_particles=80)
    app = TwodclassApp("browse", job_dir=Path("job"))

    async def run_before(pilot) -> None:
        await _settle(pilot, lambda: _browser_loaded(app))
        await pilot.press("space", "enter")
        await _settle(pilot, lambda: len(app.screen.query(".sample")) > 0)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_job_screen_snapshot(tmp_path, snap_compare):
    make_finished_job(tmp_path, n_classes=4, n_particles=60, job_name="old_job")
    app = TwodclassApp("job", particles=Path("particles.star"), start_dir=Path("."))

    async def run_before(pilot) -> None:
        tree = app.screen.query_one(DirectoryTree)
        for inp in app.screen.query(Input):
            inp.cursor_blink = False  # a blinking cursor makes the snapshot timing-dependent
        await _settle(
            pilot, lambda: app.screen.data_info is not None and len(tree.root.children) == 2
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_run_screen_snapshot(tmp_path, snap_compare):
    make_finished_job(tmp_path, n_classes=8, n_particles=240)
    app = TwodclassApp("run", job_dir=Path("job"), argv=[sys.executable, "-c", "pass"])

    async def run_before(pilot) -> None:
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await _settle(pilot, lambda: not screen.running)
        screen.running = True  # events as the engine would send them
        screen.status = "running"
        screen.post_message(
            EngineEvent(
                "start",
                {"n_particles": 240, "n_classes": 8, "n_iterations": 5, "box": 32, "box_small": 32},
            )
        )
        for it, f in ((1, 0.8), (2, 0.4), (3, 0.1)):
            screen.post_message(
                EngineEvent(
                    "progress",
                    {
                        "iteration": it,
                        "n_iterations": 5,
                        "done": 1,
                        "total": 2,
                        "elapsed_s": 2.0 * it,
                        "eta_s": 30.0 - 6 * it,
                    },
                )
            )
            screen.post_message(
                EngineEvent(
                    "iteration",
                    {
                        "iteration": it,
                        "n_iterations": 5,
                        "kind": "online",
                        "temperature": 1.5,
                        "changed_fraction": f,
                        "mean_loglik": -1.0,
                        "elapsed_s": 2.0 * it,
                        "eta_s": 30.0 - 6 * it,
                    },
                )
            )
        await _settle(pilot, lambda: len(screen.query_one("#run-grid").infos) == 8)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

"""The class browser driven with the Pilot: move, select, save, reopen; the class detail."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import starfile
from helpers_job import make_finished_job
from helpers_tui import browser_ready

from tui.app import TwodclassApp
from tui.class_grid import ClassGrid
from tui.screen_detail import ClassDetailScreen


@pytest.fixture(autouse=True)
def _halfblock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWODCLASS_HALFBLOCK", "1")


def test_select_three_classes_and_save(tmp_path):
    asyncio.run(_test_select_three_classes_and_save(tmp_path))


async def _test_select_three_classes_and_save(tmp_path):
    job = make_finished_job(tmp_path, n_classes=8, n_particles=240)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser_ready(pilot, app)
        grid = screen.query_one(ClassGrid)
        assert grid.columns == 5  # 80 columns: five 15-cell tiles
        assert grid.current_number == 1  # sorted by count: class 1 first
        await pilot.press("right", "space", "down", "space", "right", "space")
        chosen = {2, 7, 8}
        assert grid.selected == chosen
        await app.workers.wait_for_complete()  # the particle filter's count
        await pilot.pause()
        status = str(screen.query_one("#status-line").render())
        counts = {c.number: c.count for c in screen.job.classes}
        n_sel = sum(counts[c] for c in chosen)
        assert f"Selected 3/8 classes · {n_sel:,}/240 particles" in status
        assert "unsaved" in status
        # the particle filter is on; this job has no outliers (n_outliers=0)
        assert f"0 of the {n_sel} particles removed by the particle filter" in status
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "unsaved" not in str(screen.query_one("#status-line").render())

    written = starfile.read(job / "particles_selected.star", always_dict=True)
    inp = starfile.read(tmp_path / "particles.star", always_dict=True)
    run_data = starfile.read(job / "run_data.star", always_dict=True)
    parts = written["particles"]
    # exactly the particles of the chosen classes, in input order, with every input column
    expect = run_data["particles"][run_data["particles"]["rlnClassNumber"].isin(chosen)]
    assert len(parts) == n_sel
    assert list(parts["rlnImageName"]) == list(expect["rlnImageName"])
    assert set(parts["rlnClassNumber"]) == chosen
    for col in inp["particles"].columns:
        assert col in parts.columns, col
    for col in ("rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst"):
        np.testing.assert_allclose(parts[col].to_numpy(), expect[col].to_numpy())
    # the optics table unchanged
    assert written["optics"].equals(inp["optics"])
    # class averages and the selection record
    sel = json.loads((job / "selection.json").read_text())
    assert sel["class_ids"] == sorted(chosen)
    classes = starfile.read(job / "classes_selected.star", always_dict=True)
    assert len(classes["model_classes"]) == 3
    assert (job / "classes_selected.mrcs").exists()


def test_reopen_restores_selection_sorts_and_auto(tmp_path):
    asyncio.run(_test_reopen_restores_selection_sorts_and_auto(tmp_path))


async def _test_reopen_restores_selection_sorts_and_auto(tmp_path):
    job = make_finished_job(tmp_path, n_classes=8, n_particles=240)
    (job / "selection.json").write_text(json.dumps({"class_ids": [3, 5]}))
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser_ready(pilot, app)
        grid = screen.query_one(ClassGrid)
        assert grid.selected == {3, 5}
        # sort by resolution then by number: cursor keeps its class
        await pilot.press("right", "right")
        assert grid.current_number == 3
        await pilot.press("o")
        assert grid.sort_key == "resolution"
        assert grid.current_number == 3
        res = [grid.infos[i].resolution_A for i in grid.order]
        assert res == sorted(res)
        await pilot.press("o")
        assert grid.sort_key == "number"
        assert [grid.infos[i].number for i in grid.order] == list(range(1, 9))
        # the automatic suggestion, with a reason per class
        await pilot.press("a")
        assert grid.selected == set(screen.auto.keep)
        assert all(s.reason for s in screen.auto.suggestions.values())
        assert 8 not in grid.selected  # 25 Å, the smallest class
        line = str(screen.query_one("#class-line").render())
        assert line.startswith("Class 3:") and "auto:" in line
        fam = int(screen.auto.table.set_index("class_number").loc[3, "family"])
        assert f", view {fam}," in line  # its view family is shown
        # the mouse moves the cursor too
        await pilot.click(ClassGrid, offset=(15 * 3 + 4, 3))
        assert grid.current_number == 4


def test_class_detail_shows_aligned_members(tmp_path):
    asyncio.run(_test_class_detail_shows_aligned_members(tmp_path))


async def _test_class_detail_shows_aligned_members(tmp_path):
    job = make_finished_job(tmp_path, n_classes=4, n_particles=80)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await browser_ready(pilot, app)
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, ClassDetailScreen) and detail.number == 1
        await app.workers.wait_for_complete()
        await pilot.pause()
        samples = detail.query(".sample")
        assert len(samples) == 6
        # members aligned with engine.core.pose.align_to_class look like their class
        ref = screen.job.images[0]
        for s in samples:
            cc = np.corrcoef(s.image.ravel(), ref.ravel())[0, 1]
            assert cc > 0.7, cc
        await pilot.press("space")
        assert 1 in screen.grid.selected
        await pilot.press("right")
        assert detail.number == 2
        await pilot.press("escape")
        assert app.screen is screen
        assert "Selected 1/4" in str(screen.query_one("#status-line").render())


def test_save_into_output_folder_and_reopen(tmp_path):
    asyncio.run(_save_into_output_folder(tmp_path))


async def _save_into_output_folder(tmp_path):
    job = make_finished_job(tmp_path, n_classes=6, n_particles=150)
    out = tmp_path / "picked"
    app = TwodclassApp("browse", job_dir=job, out_dir=out)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser_ready(pilot, app)
        await pilot.press("a", "s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        keep = set(screen.auto.keep)
    assert not (job / "selection.json").exists()
    sel = json.loads((out / "selection.json").read_text())
    assert set(sel["class_ids"]) == keep
    assert sel["mode"] == "auto" and sel["reasons"]  # the automatic thresholds are recorded
    app = TwodclassApp("browse", job_dir=job, out_dir=out)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser_ready(pilot, app)
        assert screen.grid.selected == keep
        assert "unsaved" not in str(screen.query_one("#status-line").render())


def test_many_classes_scroll_with_the_cursor(tmp_path):
    asyncio.run(_many_classes(tmp_path))


async def _many_classes(tmp_path):
    job = make_finished_job(tmp_path, n_classes=200, n_particles=2000, box=24)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser_ready(pilot, app)
        grid = screen.grid
        await pilot.press("end")
        assert grid.cursor == 199 and grid.scroll_offset.y > 0
        assert len(grid._cache) < 200  # images are rendered lazily, only what was seen
        await pilot.press("home")
        assert grid.cursor == 0 and grid.scroll_offset.y == 0
        await pilot.press("pagedown")
        assert grid.cursor == 3 * grid.columns
        await pilot.press("plus")  # bigger tiles: fewer columns, cursor kept
        assert grid.columns < 5 and grid.cursor == 15

"""The particle filter in the class browser (Pilot): on by default, ``f`` toggles it, the
status line and the class detail show what it removes, saving writes what the CLI writes,
reopening restores it, and jobs without the per-particle columns still work."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from helpers_job import make_finished_job
from helpers_tui import browser_ready

from engine.select import SelectionThresholds, particle_outliers
from tui.app import TwodclassApp
from tui.screen_browser import BrowserScreen
from tui.screen_detail import ClassDetailScreen
from tui.selection_io import FilterSummary, ParticleFilter

EXCESS = "excess low-resolution power"
WEAK = "weak signal"


@pytest.fixture(autouse=True)
def _halfblock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWODCLASS_HALFBLOCK", "1")


async def _settle(pilot, app) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()  # a filter run started by the last status update
    await pilot.pause()


def _status(screen: BrowserScreen) -> str:
    return str(screen.query_one("#status-line").render())


def _truth(job: Path) -> tuple[pd.DataFrame, list[int]]:
    data = starfile.read(job / "run_data.star", always_dict=True)["particles"]
    outliers = json.loads((job / "job.json").read_text())["_test_truth"]["outliers"]
    return data, [int(i) for i in outliers]


def _expected_reason(outliers: list[int], row: int) -> str:
    # helpers_job: the first half of the outliers have a high residual, the rest a low signal
    return EXCESS if outliers.index(row) < (len(outliers) + 1) // 2 else WEAK


def test_save_with_the_filter_then_without(tmp_path):
    asyncio.run(_test_save_with_the_filter_then_without(tmp_path))


async def _test_save_with_the_filter_then_without(tmp_path):
    job = make_finished_job(tmp_path, n_classes=8, n_particles=240, n_outliers=6, with_truth=True)
    data, outliers = _truth(job)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await browser_ready(pilot, app)
        assert screen.filter_on  # on by default, as `twodclass select`
        await pilot.press("a")
        await _settle(pilot, app)
        chosen = set(screen.grid.selected)
        in_cls = data["rlnClassNumber"].isin(chosen).to_numpy()
        bad = [i for i in outliers if in_cls[i]]
        assert bad and len(bad) < len(outliers)  # some outliers inside the selection, some not
        n_in, n_keep = int(in_cls.sum()), int(in_cls.sum()) - len(bad)
        status = _status(screen)
        assert f"{n_keep:,}/240 particles" in status
        assert f"{len(bad)} of the {n_in} particles removed by the particle filter" in status
        assert "unsaved" in status

        await pilot.press("s")
        await _settle(pilot, app)
        assert "unsaved" not in _status(screen)
        assert screen.saved_filter is True

        # particles_selected.star: the selected classes minus the known outliers in them
        sel = starfile.read(job / "particles_selected.star", always_dict=True)["particles"]
        expect = data[in_cls & ~data.index.isin(bad)]
        assert list(sel["rlnImageName"]) == list(expect["rlnImageName"])
        # particles_removed.star: exactly those outliers, each with its reason
        rem = starfile.read(job / "particles_removed.star", always_dict=True)["particles"]
        assert list(rem["rlnImageName"]) == list(data.loc[bad, "rlnImageName"])
        for row, reason in zip(bad, rem["tdcRemovedReason"], strict=True):
            assert reason.startswith(_expected_reason(outliers, row)), reason
        info = json.loads((job / "selection.json").read_text())
        assert info["particle_filter"]["applied"] is True
        assert info["particle_filter"]["n_removed"] == len(bad)
        assert info["n_particles"] == n_keep and info["n_particles_in_classes"] == n_in

        # f: the filter off -> the saved files no longer match; save keeps every particle
        await pilot.press("f")
        await pilot.pause()
        status = _status(screen)
        assert not screen.filter_on
        assert f"{n_in:,}/240 particles" in status
        assert "particle filter off" in status and "unsaved" in status
        await pilot.press("s")
        await _settle(pilot, app)
        assert "unsaved" not in _status(screen)

    sel = starfile.read(job / "particles_selected.star", always_dict=True)["particles"]
    assert list(sel["rlnImageName"]) == list(data.loc[in_cls, "rlnImageName"])
    assert not (job / "particles_removed.star").exists()
    info = json.loads((job / "selection.json").read_text())
    assert info["particle_filter"] is None and info["n_particles"] == n_in


def test_reopen_restores_the_filter_state(tmp_path):
    asyncio.run(_test_reopen_restores_the_filter_state(tmp_path))


async def _test_reopen_restores_the_filter_state(tmp_path):
    job = make_finished_job(tmp_path, n_classes=8, n_particles=240, n_outliers=6, with_truth=True)
    out = tmp_path / "picked"
    for filter_on in (False, True):
        app = TwodclassApp("browse", job_dir=job, out_dir=out)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await browser_ready(pilot, app)
            if screen.filter_on != filter_on:
                await pilot.press("f")
            await pilot.press("a", "s")
            await _settle(pilot, app)
            assert screen.saved_filter is filter_on
        app = TwodclassApp("browse", job_dir=job, out_dir=out)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await browser_ready(pilot, app)
            await _settle(pilot, app)
            assert screen.filter_on is filter_on
            status = _status(screen)
            assert "unsaved" not in status
            assert ("removed by the particle filter" in status) is filter_on
            assert ("particle filter off" in status) is not filter_on
            # toggling away from what was saved makes the selection unsaved
            await pilot.press("f")
            await _settle(pilot, app)
            assert "unsaved" in _status(screen)


def test_class_detail_shows_what_the_filter_removes(tmp_path):
    asyncio.run(_test_class_detail_shows_what_the_filter_removes(tmp_path))


async def _test_class_detail_shows_what_the_filter_removes(tmp_path):
    job = make_finished_job(tmp_path, n_classes=4, n_particles=200, n_outliers=6, with_truth=True)
    data, outliers = _truth(job)
    cls_of = {i: int(data.loc[i, "rlnClassNumber"]) for i in outliers}
    counts = data["rlnClassNumber"].value_counts()
    # select the largest class holding outliers; look at it and at another one holding some
    chosen, other = sorted(set(cls_of.values()), key=lambda c: -counts[c])[:2]
    assert counts[chosen] >= 30  # enough particles for the filter's robust statistics
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser_ready(pilot, app)
        grid = screen.grid

        def goto(number: int) -> None:
            grid.cursor = grid.order.index(
                next(i for i, c in enumerate(grid.infos) if c.number == number)
            )

        goto(chosen)
        await pilot.press("space")
        await _settle(pilot, app)
        assert grid.selected == {chosen}
        for number in (chosen, other):  # other is not selected: what would be removed
            mine = [i for i, c in cls_of.items() if c == number]
            goto(number)
            await pilot.press("enter")
            await _settle(pilot, app)
            detail = app.screen
            assert isinstance(detail, ClassDetailScreen) and detail.number == number
            text = str(detail.query_one("#detail-stats").render())
            when = "" if number == chosen else " if selected"
            assert f"{'Particle filter':<28} {len(mine)} removed{when}\n" in text
            n_ex = sum(_expected_reason(outliers, i) == EXCESS for i in mine)
            for n, label in ((n_ex, EXCESS), (len(mine) - n_ex, WEAK)):
                assert (f"  {n} {label}" in text) is (n > 0), text
            await pilot.press("escape")
        await pilot.press("f", "enter")
        await _settle(pilot, app)
        assert f"{'Particle filter':<28} off" in str(app.screen.query_one("#detail-stats").render())


def test_job_without_the_particle_columns(tmp_path):
    asyncio.run(_test_job_without_the_particle_columns(tmp_path))


async def _test_job_without_the_particle_columns(tmp_path):
    job = make_finished_job(tmp_path, n_classes=8, n_particles=240)
    blocks = starfile.read(job / "run_data.star", always_dict=True)
    blocks["particles"] = blocks["particles"].drop(columns=["tdcResidualLowRes", "tdcSignalLowRes"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        starfile.write(blocks, job / "run_data.star", overwrite=True)
    data = blocks["particles"]
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await browser_ready(pilot, app)
        await pilot.press("a")
        await _settle(pilot, app)
        in_cls = data["rlnClassNumber"].isin(screen.grid.selected).to_numpy()
        status = _status(screen)
        assert f"{int(in_cls.sum()):,}/240 particles" in status
        assert "particle filter did not run: no tdcResidualLowRes" in status
        await pilot.press("s")
        await _settle(pilot, app)
        assert "unsaved" not in _status(screen)
    sel = starfile.read(job / "particles_selected.star", always_dict=True)["particles"]
    assert list(sel["rlnImageName"]) == list(data.loc[in_cls, "rlnImageName"])
    assert not (job / "particles_removed.star").exists()
    info = json.loads((job / "selection.json").read_text())
    assert info["particle_filter"]["applied"] is False


def test_palette_entry_toggles_the_filter(tmp_path):
    asyncio.run(_test_palette_entry_toggles_the_filter(tmp_path))


async def _test_palette_entry_toggles_the_filter(tmp_path):
    job = make_finished_job(tmp_path, n_classes=4, n_particles=80)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser_ready(pilot, app)
        cmds = {c.title: c for c in app.get_system_commands(screen)}
        cmds["Toggle the particle filter"].callback()
        await pilot.pause()
        assert not screen.filter_on and "particle filter off" in _status(screen)
        assert any(b.key == "f" and b.show for b in screen.BINDINGS)


def test_filter_summary_matches_the_engine_verdict():
    rng = np.random.default_rng(3)
    n = 2000
    data = pd.DataFrame(
        {
            "rlnClassNumber": rng.integers(1, 6, n),
            "tdcResidualLowRes": rng.normal(1.0, 0.1, n),
            "tdcSignalLowRes": rng.normal(8.0, 1.0, n),
            "rlnImageName": [f"{i + 1}@p.mrcs" for i in range(n)],
        }
    )
    data.loc[::50, "tdcResidualLowRes"] = 5.0
    data.loc[7::50, "tdcSignalLowRes"] = -2.0
    th = SelectionThresholds()
    pf = ParticleFilter(data)
    ids = [1, 3, 4]
    assert pf.cached(ids, th) is None
    s = pf.summary(ids, th)
    assert pf.cached([4, 3, 1], th) is s  # memoised per selection
    v = particle_outliers(data, ids, th)
    assert (s.n_in_classes, s.n_kept, s.removed) == (
        int(v.in_classes.sum()),
        int(v.keep.sum()),
        v.removed,
    )
    assert s.n_removed == v.n_removed > 0
    gone = v.in_classes & ~v.keep
    for c in ids:
        n_c, removed_c, reasons = s.for_class(c)
        mask = data["rlnClassNumber"].to_numpy() == c
        assert n_c == int(mask.sum()) and removed_c == int((gone & mask).sum())
        assert sum(reasons.values()) == removed_c
    assert s.for_class(2) == (0, 0, {})
    assert s.text().startswith(
        f"{v.n_removed} of the {int(v.in_classes.sum()):,} particles "
        "removed by the particle filter ("
    )
    # without particles or without the columns: a note, nothing removed
    assert ParticleFilter(None).summary(ids, th).note
    assert "did not run" in FilterSummary(0, 0, {}, "x").text()
    noc = ParticleFilter(data.drop(columns=["tdcSignalLowRes"])).summary(ids, th)
    assert "tdcSignalLowRes" in noc.note and noc.n_removed == 0


def _star(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


PARTS = """
loop_
_rlnImageName #1
_rlnClassNumber #2
_tdcResidualLowRes #3
_tdcSignalLowRes #4
000001@a.mrcs 2 0.812345 7.5
000002@a.mrcs 1 nan 8.25
# a comment

000003@a.mrcs 3 1.5e-1 -0.5
"""


def test_read_star_columns_variants(tmp_path):
    from engine.io.star import read_star, read_star_columns

    cols = ("rlnClassNumber", "tdcResidualLowRes", "tdcSignalLowRes")
    optics = "\ndata_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n1 1.5\n"
    for name, text in (
        ("relion31", optics + "\ndata_particles\n" + PARTS),
        ("relion30", "\ndata_\n" + PARTS),
        (
            "block_after",
            optics + "\ndata_particles\n" + PARTS + "\ndata_extra\n\nloop_\n_rlnFoo #1\n5\n6\n",
        ),
    ):
        path = _star(tmp_path / f"{name}.star", text)
        got = read_star_columns(path, cols)
        ref = [b for b in read_star(path).values() if "rlnClassNumber" in b.columns][0]
        assert list(got.columns) == list(cols), name
        for c in cols:  # parsed exactly as the engine parses them
            np.testing.assert_array_equal(got[c].to_numpy(), ref[c].to_numpy(), err_msg=name)
    # a missing column is left out; quoted values or no class column -> None (use the engine)
    path = _star(
        tmp_path / "nosig.star",
        "data_particles\n" + PARTS.replace("_tdcSignalLowRes #4", "_rlnDefocusU #4"),
    )
    assert list(read_star_columns(path, cols).columns) == list(cols[:2])
    path = _star(
        tmp_path / "quoted.star",
        "data_particles\n" + PARTS.replace("000002@a.mrcs", "'000002@a b.mrcs'"),
    )
    assert read_star_columns(path, cols) is None
    path = _star(tmp_path / "nocls.star", optics)
    assert read_star_columns(path, cols) is None


def test_unusual_particle_file_read_whole(tmp_path, monkeypatch):
    asyncio.run(_test_unusual_particle_file_read_whole(tmp_path, monkeypatch))


async def _test_unusual_particle_file_read_whole(tmp_path, monkeypatch):
    import tui.screen_browser

    monkeypatch.setattr(tui.screen_browser, "read_star_columns", lambda *a: None)
    job = make_finished_job(tmp_path, n_classes=8, n_particles=240, n_outliers=6, with_truth=True)
    data, outliers = _truth(job)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await browser_ready(pilot, app)
        assert screen.job.engine_job.data is not None  # read whole, reused for saving
        await pilot.press("a")
        await _settle(pilot, app)
        in_cls = data["rlnClassNumber"].isin(screen.grid.selected).to_numpy()
        bad = [i for i in outliers if in_cls[i]]
        assert bad
        assert f"{int(in_cls.sum()) - len(bad):,}/240 particles" in _status(screen)
        assert f"{len(bad)} of the {int(in_cls.sum())} particles removed" in _status(screen)
        await pilot.press("s")
        await _settle(pilot, app)
    rem = starfile.read(job / "particles_removed.star", always_dict=True)["particles"]
    assert list(rem["rlnImageName"]) == list(data.loc[bad, "rlnImageName"])


def test_class_detail_opened_before_the_particles_are_read(tmp_path, monkeypatch):
    asyncio.run(_test_detail_before_particles(tmp_path, monkeypatch))


async def _test_detail_before_particles(tmp_path, monkeypatch):
    import threading

    import tui.screen_browser
    from engine.io.star import read_star_columns

    gate = threading.Event()

    def slow(*args):
        gate.wait(10)
        return read_star_columns(*args)

    monkeypatch.setattr(tui.screen_browser, "read_star_columns", slow)
    job = make_finished_job(tmp_path, n_classes=4, n_particles=120)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            screen = app.screen
            if (
                isinstance(screen, BrowserScreen)
                and screen.job is not None
                and screen.auto is not None
            ):
                break
        assert screen.pfilter is None
        assert "particle filter on" in _status(screen)
        await pilot.press("space")
        assert "reading the particles" in _status(screen)
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, ClassDetailScreen)
        stats = detail.query_one("#detail-stats")
        assert f"{'Particle filter':<28} reading the particles…" in str(stats.render())
        gate.set()
        await _settle(pilot, app)
        assert f"{'Particle filter':<28} 0 removed\n" in str(stats.render())
        await pilot.press("escape")
        await _settle(pilot, app)
        assert "0 of the " in _status(screen)

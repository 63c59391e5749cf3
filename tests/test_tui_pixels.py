"""The class grid and the image widgets in each renderer (Pilot): real pixels in every tile
with Kitty / Sixel (>= 64 x 64 screen pixels, 1:1), Sixel data that reaches the terminal
even with a scrollbar, half-blocks in 16 colours, aspect kept in the detail and members."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import numpy as np
import pytest
from helpers_job import make_finished_job
from helpers_tui import browser_ready, open_detail

from tui import terminal
from tui.app import TwodclassApp
from tui.class_grid import ClassGrid
from tui.image import ImageView
from tui.terminal import Renderer, Setup

CELL = (8, 15)


def sync(test):
    """Run an async Pilot test with asyncio (no async pytest plugin here)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


@pytest.fixture
def setup_as(monkeypatch):
    def use(renderer: Renderer, cell=CELL) -> None:
        monkeypatch.setattr(terminal, "_current", Setup(renderer, cell))

    yield use
    terminal.set_current(None)


def _frame(app) -> str:
    """What the app would write to the terminal for a full repaint."""
    comp = app.screen._compositor
    update = comp.render_update(full=True, screen_stack=app._background_screens)
    return update.render_segments(app.console)


@pytest.mark.parametrize("renderer", [Renderer.SIXEL, Renderer.KITTY])
@sync
async def test_pixel_tiles_are_square_and_at_least_64_px(tmp_path, setup_as, renderer):
    setup_as(renderer)
    job = make_finished_job(tmp_path, n_classes=60, n_particles=600, box=32)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser_ready(pilot, app)
        grid = screen.query_one(ClassGrid)
        d = grid.drawn(0)
        assert d.px[0] == d.px[1] >= 64  # 32 px classes drawn 2 x 2: pixel for pixel, square
        assert d.px[0] % 32 == 0
        assert grid.img_w * CELL[0] >= d.px[0] and grid.img_h * CELL[1] >= d.px[1]
        grid.action_toggle_size()
        await pilot.pause()
        assert grid.drawn(0).px == (2 * d.px[0], 2 * d.px[1])
        grid.action_toggle_size()
        await pilot.pause()
        frame = _frame(app)
        if renderer is Renderer.SIXEL:
            # 60 classes need a scrollbar: the slices must reach the terminal anyway
            assert grid.virtual_size.height > grid.size.height
            visible_rows = -(-grid.size.height // grid.tile_h)
            n = frame.count("\x1bP0;1;0q")
            assert n >= grid.columns * (visible_rows - 1) * (grid.img_h - 1)
            assert frame.count("\x1bP") == frame.count("\x1b\\")  # every slice whole
        else:
            assert "\U0010eeee" in frame


@sync
async def test_sixel_images_not_drawn_under_a_modal_screen(tmp_path, setup_as):
    setup_as(Renderer.SIXEL)
    job = make_finished_job(tmp_path, n_classes=8, n_particles=160, box=32)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(100, 30)) as pilot:
        await browser_ready(pilot, app)
        assert "\x1bP" in _frame(app)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        assert "\x1bP" not in _frame(app)


@sync
async def test_16_colour_grid_uses_four_greys_only(tmp_path, setup_as):
    setup_as(Renderer.HALF_16, (10, 20))
    job = make_finished_job(tmp_path, n_classes=4, n_particles=80, box=32)
    app = TwodclassApp("browse", job_dir=job)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser_ready(pilot, app)
        grid = screen.query_one(ClassGrid)
        greys = set()
        for row in grid.drawn(0).rows:
            for seg in row:
                for c in (seg.style.color, seg.style.bgcolor):
                    if c is not None and c.triplet is not None and seg.text.startswith("▀"):
                        greys.add(c.triplet[0])
        assert greys <= {0, 85, 170, 255} and len(greys) >= 3


@pytest.mark.parametrize("renderer", list(Renderer))
@sync
async def test_detail_and_member_images_keep_their_aspect(tmp_path, setup_as, renderer):
    setup_as(renderer)
    job = make_finished_job(tmp_path, n_classes=4, n_particles=80, box=32)
    app = TwodclassApp("browse", job_dir=Path(job))
    async with app.run_test(size=(120, 40)) as pilot:
        await browser_ready(pilot, app)
        await open_detail(pilot, app)
        views = list(app.screen.query(ImageView))
        assert len(views) >= 2  # the class and its members
        for v in views:
            d = v.drawn()
            assert d is not None
            ih, iw = v.image.shape
            w, h = d.px
            tol = 1 / w + 1 / h if renderer.pixels else CELL[0] / w + CELL[1] / 2 / h
            assert abs((w / h) / (iw / ih) - 1) <= tol
            assert w <= v.content_size.width * CELL[0] and h <= v.content_size.height * CELL[1]


@sync
async def test_members_low_passed_and_r_shows_them_raw(tmp_path, setup_as):
    setup_as(Renderer.HALF_24BIT, (10, 20))
    job = make_finished_job(tmp_path, n_classes=4, n_particles=80, box=32)
    app = TwodclassApp("browse", job_dir=Path(job))
    async with app.run_test(size=(120, 40)) as pilot:
        await browser_ready(pilot, app)
        await open_detail(pilot, app)
        screen = app.screen
        filtered = [v.image for v in screen.query(".sample")]
        raw = screen._samples[1]
        assert "low-passed to" in str(screen.query_one("#samples-title").render())

        def hf(a):  # power in the outer half of the spectrum
            f = np.abs(np.fft.fftshift(np.fft.fft2(a - a.mean()))) ** 2
            n = a.shape[0]
            y, x = np.mgrid[:n, :n] - n // 2
            return f[np.hypot(x, y) > n / 4].sum() / f.sum()

        assert all(hf(f) < 0.5 * hf(r) for f, r in zip(filtered, raw, strict=True))
        await pilot.press("r")
        await pilot.pause(0.2)
        shown = [v.image for v in screen.query(".sample")]
        assert all(np.allclose(s, r) for s, r in zip(shown, raw, strict=True))
        assert "unfiltered" in str(screen.query_one("#samples-title").render())

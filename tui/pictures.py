"""One image drawn into a box of terminal cells, for any renderer, keeping its aspect ratio.

:func:`draw` returns, per cell row, the cells to print (half-block colours, Kitty
placeholders, or blank cells under a Sixel image) and, for Sixel, the slice of the image that
covers that row (drawn after the row's cells by the widget, see :func:`sixel_control`). Each
row carries its own slice, so any redrawn line repaints its part of the image.

Sizes: with pixels (Kitty, Sixel) the image is scaled by a whole factor when it fits
(``integer=True``: pixel for pixel, 2 x 2, ...), else shrunk by area averaging, and centred;
with half-blocks each cell is two pixels of ``cell_w x cell_h / 2`` screen pixels, and the
number of cells is chosen so that the drawn image has the image's aspect ratio on the screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.segment import ControlType, Segment
from rich.style import Style

from tui import kitty
from tui.halfblock import halfblock_segments, quantise_levels, resize_area, stretch
from tui.png import encode_png
from tui.sixel import encode_sixel
from tui.terminal import Renderer, Setup

__all__ = ["Drawn", "draw", "pixel_size", "halfblock_size", "sixel_control", "grey_pixels"]

_CONTROL = ((ControlType.CURSOR_FORWARD, 0),)


@dataclass
class Drawn:
    """An image laid out in ``box_w x box_h`` cells."""

    rows: list[list[Segment]]
    """Per cell row: segments filling exactly ``box_w`` cells."""
    slices: list[str]
    """Per cell row: the Sixel slice to draw at the row's first cell ("" for none)."""
    px: tuple[int, int]
    """Width and height (screen pixels) of the drawn image."""
    kitty_id: int | None = None
    kitty_send: str = ""
    """The Kitty transmission to write once before the cells are shown."""


def pixel_size(
    iw: int, ih: int, box_w: int, box_h: int, cell_px: tuple[int, int], integer: bool = True
) -> tuple[int, int]:
    """Screen pixels (w, h) for an ``iw x ih`` image in ``box_w x box_h`` cells."""
    cw, ch = cell_px
    s = min(box_w * cw / iw, box_h * ch / ih)
    if integer and s >= 1:
        s = math.floor(s)
    return max(1, min(box_w * cw, round(iw * s))), max(1, min(box_h * ch, round(ih * s)))


def halfblock_size(
    iw: int, ih: int, box_w: int, box_h: int, cell_px: tuple[int, int]
) -> tuple[int, int]:
    """Half-block columns and pixel rows (2 per cell) for an ``iw x ih`` image in the box.

    A column is ``cell_w`` screen pixels wide and a pixel row ``cell_h / 2`` high.
    """
    cw, ch = cell_px
    a = iw / ih
    rows = 2 * box_h
    cols = round(a * rows * (ch / 2) / cw)
    if cols > box_w:
        cols = box_w
        rows = round(cols * cw / (a * ch / 2))
    return max(1, min(cols, box_w)), max(1, min(rows, 2 * box_h))


def grey_pixels(img: np.ndarray, w: int, h: int, stretched: bool = False) -> np.ndarray:
    """``img`` contrast-stretched and resampled to ``(h, w)`` uint8 (whole factors: each
    pixel repeated; otherwise area averaging)."""
    a = np.asarray(img, dtype=np.float32) if stretched else stretch(img)
    ih, iw = a.shape
    if h % ih == 0 and w % iw == 0 and h // ih == w // iw:
        f = h // ih
        big = np.repeat(np.repeat(a, f, axis=0), f, axis=1)
    else:
        big = resize_area(a, h, w)
    return np.clip(np.rint(big * 255.0), 0, 255).astype(np.uint8)


def sixel_control(data: str, screen_x: int, screen_y: int) -> Segment:
    """A zero-width segment drawing Sixel ``data`` at a screen cell, the cursor kept."""
    return Segment(f"\x1b7\x1b[{screen_y + 1};{screen_x + 1}H{data}\x1b8", Style(), _CONTROL)


def _rgb(style: Style) -> tuple[int, int, int]:
    c = style.bgcolor
    if c is not None and c.triplet is not None:
        return tuple(c.triplet)  # type: ignore[return-value]
    return (0, 0, 0)


def draw(
    img: np.ndarray,
    box_w: int,
    box_h: int,
    setup: Setup,
    bg: Style,
    *,
    integer: bool = True,
    stretched: bool = False,
) -> Drawn:
    """Lay ``img`` (``(h, w)`` float) out in ``box_w x box_h`` cells for ``setup``."""
    box_w, box_h = max(1, box_w), max(1, box_h)
    ih, iw = np.asarray(img).shape
    blank = [Segment(" " * box_w, bg)]
    r = setup.renderer
    if r.pixels:
        cw, ch = setup.cell_px
        dw, dh = pixel_size(iw, ih, box_w, box_h, setup.cell_px, integer)
        px = grey_pixels(img, dw, dh, stretched)
        H, W = box_h * ch, box_w * cw
        y0, x0 = (H - dh) // 2, (W - dw) // 2
        if r is Renderer.SIXEL:
            canvas = np.full((H, W), -1, np.int16)
            canvas[y0 : y0 + dh, x0 : x0 + dw] = px
            slices = [encode_sixel(canvas[k * ch : (k + 1) * ch]) for k in range(box_h)]
            return Drawn([list(blank) for _ in range(box_h)], slices, (dw, dh))
        rgb = np.empty((H, W, 3), np.uint8)
        rgb[:] = _rgb(bg)
        rgb[y0 : y0 + dh, x0 : x0 + dw] = px[:, :, None]
        image_id = kitty.new_image_id()
        send = kitty.transmit_sequence(image_id, encode_png(rgb, level=1), box_w, box_h)
        rows = [[kitty.placeholder_line(image_id, k, box_w)] for k in range(box_h)]
        return Drawn(rows, [""] * box_h, (dw, dh), image_id, send)
    cols, prow = halfblock_size(iw, ih, box_w, box_h, setup.cell_px)
    levels = quantise_levels(grey_pixels(img, cols, prow, stretched), r)
    if prow % 2:
        levels = np.vstack([levels, np.full((1, cols), -1, np.int16)])
    cells = halfblock_segments(levels, bg)
    left = (box_w - cols) // 2
    right = box_w - cols - left
    top = (box_h - len(cells)) // 2
    rows = []
    for k in range(box_h):
        j = k - top
        if 0 <= j < len(cells):
            row = ([Segment(" " * left, bg)] if left else []) + list(cells[j])
            rows.append(row + ([Segment(" " * right, bg)] if right else []))
        else:
            rows.append(list(blank))
    cw, ch = setup.cell_px
    return Drawn(rows, [""] * box_h, (cols * cw, round(prow * ch / 2)))

"""Half-block image renderer: two grey pixels per terminal cell.

Each cell shows the upper half-block character ``▀`` with the foreground colour set to the
top pixel and the background colour to the bottom pixel. Works in every terminal with
colour (over SSH, inside tmux). Pure functions on arrays; the widgets cache the strips.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

__all__ = [
    "stretch",
    "resize_area",
    "to_grey_levels",
    "halfblock_segments",
    "halfblock_strips",
    "image_strips",
    "quantise_levels",
]

UPPER_HALF = "▀"


def stretch(img: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    """Contrast-stretch ``img`` (``(h, w)``) to 0..1 between its 1st and 99th percentile.

    A flat (constant) image maps to 0.5.
    """
    a = np.asarray(img, dtype=np.float32)
    finite = np.isfinite(a)
    if not finite.any():
        return np.full(a.shape, 0.5, dtype=np.float32)
    lo, hi = np.percentile(a[finite], [lo_pct, hi_pct])
    if not hi > lo:
        return np.full(a.shape, 0.5, dtype=np.float32)
    out = (np.where(finite, a, lo) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def resize_area(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize ``(h, w)`` to ``(out_h, out_w)`` by area averaging (down) / nearest (up).

    Uses separable averaging matrices, so it is exact for integer factors and smooth otherwise.
    """
    a = np.asarray(img, dtype=np.float32)
    h, w = a.shape
    return _resample_matrix(out_h, h) @ a @ _resample_matrix(out_w, w).T


@lru_cache(maxsize=64)
def _resample_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix: row i averages the input interval covered by output pixel i."""
    m = np.zeros((n_out, n_in), dtype=np.float32)
    scale = n_in / n_out
    for i in range(n_out):
        a, b = i * scale, (i + 1) * scale
        j0, j1 = int(np.floor(a)), int(np.ceil(b))
        for j in range(j0, min(j1, n_in)):
            overlap = min(b, j + 1) - max(a, j)
            if overlap > 0:
                m[i, j] = overlap
        s = m[i].sum()
        if s > 0:
            m[i] /= s
        else:  # pragma: no cover - cannot happen for n_out, n_in >= 1
            m[i, min(int(a), n_in - 1)] = 1.0
    return m


def to_grey_levels(
    img: np.ndarray, width: int, height_cells: int, stretched: bool = False
) -> np.ndarray:
    """Image -> ``(2 * height_cells, width)`` uint8 grey levels ready for half-block cells."""
    a = np.asarray(img, dtype=np.float32)
    if not stretched:
        a = stretch(a)
    small = resize_area(a, 2 * height_cells, width)
    return np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)


# 256 colours: Rich maps a grey of lightness l to palette entry 16 (l = 0), 231 (l = 1) or
# 231 + round(25 l); xterm shows entry 231 + k (k = 1..24) as 10 k - 2. Each level is drawn
# as the nearest grey the terminal shows, sent as the grey Rich maps to that entry.
_SHOWN_256 = np.array([0] + [10 * k - 2 for k in range(1, 25)] + [255], np.float32)
_SENT_256 = np.array([round(k * 255 / 25) for k in range(26)], np.int16)
# 16 colours: black, bright black, white, bright white as xterm shows them (0, 127, 229,
# 255), sent as Rich's palette values of those entries (exact matches when downgraded)
_SHOWN_16 = np.array([0, 127, 229, 255], np.float32)
_SENT_16 = np.array([0, 85, 170, 255], np.int16)
_BAYER4 = (
    np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32) + 0.5
) / 16.0


def _nearest_lut(shown: np.ndarray, sent: np.ndarray) -> np.ndarray:
    v = np.arange(256, dtype=np.float32)[:, None]
    return sent[np.abs(v - shown[None, :]).argmin(axis=1)]


_LUT_256 = _nearest_lut(_SHOWN_256, _SENT_256)


def quantise_levels(levels: np.ndarray, renderer: object) -> np.ndarray:
    """Grey levels (uint8) -> the greys to send for a half-block ``renderer``
    (:class:`tui.terminal.Renderer`), as int16.

    24-bit: unchanged. 256 colours: the nearest of the 26 greys of the palette. 16 colours:
    ordered (4 x 4 Bayer) dithering between black, bright black, white and bright white, so
    that tones between them read as mixtures instead of three flat levels.
    """
    lv = np.asarray(levels, dtype=np.uint8)
    name = getattr(renderer, "value", renderer)
    if name == "256":
        return _LUT_256[lv]
    if name == "16":
        h, w = lv.shape
        t = np.tile(_BAYER4, (h // 4 + 1, w // 4 + 1))[:h, :w]
        v = lv.astype(np.float32)
        i = np.clip(np.searchsorted(_SHOWN_16, v, side="right") - 1, 0, len(_SHOWN_16) - 2)
        lo, hi = _SHOWN_16[i], _SHOWN_16[i + 1]
        up = (v - lo) / (hi - lo) > t
        return _SENT_16[i + up.astype(np.int64)]
    return lv.astype(np.int16)


@lru_cache(maxsize=65536)
def _style(top: int, bottom: int, bg: Style | None = None) -> Style:
    """Style of a cell: foreground = top pixel, background = bottom pixel (-1: ``bg``)."""
    base = bg if bg is not None else Style()
    fg = base.bgcolor if top < 0 else Color.from_rgb(top, top, top)
    back = base.bgcolor if bottom < 0 else Color.from_rgb(bottom, bottom, bottom)
    return Style(color=fg, bgcolor=back)


def halfblock_segments(levels: np.ndarray, bg: Style | None = None) -> list[list[Segment]]:
    """``(2 r, w)`` grey levels (0-255; -1 = the background of ``bg``) -> ``r`` lines of
    ``w`` half-block segments.

    Neighbouring cells with the same colours are merged into one segment.
    """
    rows = []
    lv = np.asarray(levels, dtype=np.int16)
    if lv.shape[0] % 2:
        lv = np.vstack([lv, lv[-1:]])
    for r in range(0, lv.shape[0], 2):
        top = lv[r].tolist()
        bot = lv[r + 1].tolist()
        segs: list[Segment] = []
        run = 1
        for x in range(1, len(top) + 1):
            if x < len(top) and top[x] == top[x - 1] and bot[x] == bot[x - 1]:
                run += 1
                continue
            segs.append(Segment(UPPER_HALF * run, _style(top[x - 1], bot[x - 1], bg)))
            run = 1
        rows.append(segs)
    return rows


def halfblock_strips(levels: np.ndarray) -> list[Strip]:
    """Like :func:`halfblock_segments` but as Textual strips (one per cell row)."""
    w = int(np.asarray(levels).shape[1])
    return [Strip(segs, w) for segs in halfblock_segments(levels)]


def image_strips(img: np.ndarray, width: int, height_cells: int) -> list[Strip]:
    """Stretch, downsample and render ``img`` into ``height_cells`` strips of ``width`` cells."""
    return halfblock_strips(to_grey_levels(img, width, height_cells))

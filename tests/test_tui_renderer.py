"""The image renderers: which one a terminal gets, what each draws, and that every image
keeps its aspect ratio (encoders checked against slow, obvious decoders)."""

from __future__ import annotations

import base64
import re
import sys
import types

import numpy as np
import pytest
from rich.style import Style

from tui import kitty
from tui.halfblock import quantise_levels
from tui.pictures import draw, grey_pixels
from tui.png import decode_png, encode_png
from tui.sixel import encode_sixel
from tui.terminal import (
    DEFAULT_CELL_PX,
    Probe,
    Renderer,
    Setup,
    choose_renderer,
    colour_depth,
    probe_terminal,
)

XTERM_SIXEL = Probe(sixel=True, cell_px=(8, 15))
KITTY = Probe(kitty=True, cell_px=(9, 18))


@pytest.mark.parametrize(
    ("env", "probe", "expected"),
    [
        ({"TERM": "xterm-kitty", "COLORTERM": "truecolor"}, KITTY, Renderer.KITTY),
        ({"TERM": "xterm-256color"}, XTERM_SIXEL, Renderer.SIXEL),
        # both answered (WezTerm, Konsole): Sixel, as they draw no Kitty placeholders
        ({"TERM": "xterm-256color"}, Probe(sixel=True, kitty=True), Renderer.SIXEL),
        ({"TERM": "xterm-256color", "COLORTERM": "truecolor"}, Probe(), Renderer.HALF_24BIT),
        ({"TERM": "xterm-256color", "COLORTERM": "24bit"}, Probe(), Renderer.HALF_24BIT),
        ({"TERM": "xterm-256color"}, Probe(), Renderer.HALF_256),  # e.g. over SSH
        ({"TERM": "screen-256color", "TMUX": "/tmp/tmux"}, Probe(), Renderer.HALF_256),
        ({"TERM": "xterm"}, Probe(), Renderer.HALF_16),
        ({"TERM": "linux"}, Probe(), Renderer.HALF_16),
        ({}, Probe(), Renderer.HALF_16),
        # forced
        ({"TERM": "xterm", "TWODCLASS_HALFBLOCK": "1"}, XTERM_SIXEL, Renderer.HALF_16),
        ({"TERM": "xterm-256color", "TWODCLASS_RENDERER": "16"}, XTERM_SIXEL, Renderer.HALF_16),
        ({"TWODCLASS_RENDERER": "sixel"}, Probe(), Renderer.SIXEL),
        ({"TERM": "xterm", "TEXTUAL_COLOR_SYSTEM": "truecolor"}, Probe(), Renderer.HALF_24BIT),
    ],
)
def test_renderer_choice(env, probe, expected):
    assert choose_renderer(env, probe) is expected


def test_colour_depth_matches_rich():
    """Textual draws with Rich's colour system: the half-block choice must agree with it."""
    from rich.console import Console

    rich_name = {"truecolor": "24bit", "256": "256", "standard": "16"}
    for env in (
        {"TERM": "xterm"},
        {"TERM": "xterm-256color"},
        {"TERM": "xterm-kitty"},
        {"TERM": "xterm", "COLORTERM": "truecolor"},
        {"TERM": "screen-256color"},
    ):
        console = Console(force_terminal=True, _environ=env)
        assert colour_depth(env).value == rich_name[console.color_system]


def _fake_textual_image(monkeypatch, auto: str) -> None:
    rend = types.ModuleType("textual_image.renderable")
    for n in ("TGPImage", "SixelImage", "HalfcellImage", "UnicodeImage"):
        setattr(rend, n, type(n, (), {}))
    rend.Image = getattr(rend, auto)
    widget = types.ModuleType("textual_image.widget")
    pkg = types.ModuleType("textual_image")
    pkg.renderable, pkg.widget = rend, widget
    monkeypatch.setitem(sys.modules, "textual_image", pkg)
    monkeypatch.setitem(sys.modules, "textual_image.renderable", rend)
    monkeypatch.setitem(sys.modules, "textual_image.widget", widget)


class _Tty:
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:  # pragma: no cover - ioctl fails on it and is skipped
        raise OSError


@pytest.mark.parametrize(
    ("auto", "sixel", "kitty_ok"),
    [("SixelImage", True, False), ("TGPImage", False, True), ("HalfcellImage", False, False)],
)
def test_probe_reads_textual_image_answers(monkeypatch, auto, sixel, kitty_ok):
    monkeypatch.setattr(sys, "__stdout__", _Tty())
    monkeypatch.setattr(sys, "__stdin__", _Tty())
    _fake_textual_image(monkeypatch, auto)
    p = probe_terminal()
    assert (p.sixel, p.kitty) == (sixel, kitty_ok)


def test_probe_without_the_graphics_extra(monkeypatch):
    monkeypatch.setattr(sys, "__stdout__", _Tty())
    monkeypatch.setattr(sys, "__stdin__", _Tty())
    monkeypatch.setitem(sys.modules, "textual_image", None)  # import fails
    monkeypatch.setitem(sys.modules, "textual_image.renderable", None)
    p = probe_terminal()
    assert not p.sixel and not p.kitty
    assert choose_renderer({"TERM": "xterm-256color"}, p) is Renderer.HALF_256


# ------------------------------------------------------------------ colours of half-blocks
def test_256_colours_use_every_palette_grey_in_order():
    sent = quantise_levels(np.arange(256, dtype=np.uint8)[None, :], Renderer.HALF_256)[0]
    assert np.all(np.diff(sent) >= 0)
    assert len(np.unique(sent)) == 26  # black, 24 greys, white
    from rich.color import Color, ColorSystem

    idx = {Color.from_rgb(v, v, v).downgrade(ColorSystem.EIGHT_BIT).number for v in sent}
    assert idx == {16, 231} | set(range(232, 256))


def test_16_colours_dither_keeps_the_mean_tone():
    """A flat grey becomes a mixture of the two nearest of the four greys with the right
    proportion, not one flat level."""
    from rich.color import Color, ColorSystem

    shown = {0: 0.0, 85: 127.0, 170: 229.0, 255: 255.0}  # sent grey -> xterm's palette
    for v in (40, 100, 180, 240):
        q = quantise_levels(np.full((16, 16), v, np.uint8), Renderer.HALF_16)
        assert set(np.unique(q).tolist()) <= set(shown)
        assert len(np.unique(q)) == 2
        mean = np.mean([shown[int(x)] for x in q.ravel()])
        assert abs(mean - v) < 10
        for x in np.unique(q):
            c = Color.from_rgb(int(x), int(x), int(x)).downgrade(ColorSystem.STANDARD)
            assert c.number in (0, 8, 7, 15)


# ------------------------------------------------------------------ Sixel and PNG encoders
def _decode_sixel(s: str) -> np.ndarray:
    """A slow, obvious Sixel decoder: (h, w) int grey percent*255/100, -1 where unset."""
    m = re.match(r'\x1bP0;1;0q"1;1;(\d+);(\d+)', s)
    assert m and s.endswith("\x1b\\")
    w, h = int(m.group(1)), int(m.group(2))
    out = np.full((h, w), -1, np.int32)
    body = s[m.end() : -2]
    colours: dict[int, int] = {}
    i, x, y, cur = 0, 0, 0, 0
    while i < len(body):
        ch = body[i]
        if ch == "#":
            j = i + 1
            while j < len(body) and (body[j].isdigit() or body[j] == ";"):
                j += 1
            parts = [int(v) for v in body[i + 1 : j].split(";")]
            cur = parts[0]
            if len(parts) == 5:
                colours[cur] = round(parts[2] * 255 / 100)
            i = j
            continue
        if ch == "$":
            x = 0
        elif ch == "-":
            x, y = 0, y + 6
        else:
            n = 1
            if ch == "!":
                j = i + 1
                while body[j].isdigit():
                    j += 1
                n, ch, i = int(body[i + 1 : j]), body[j], j
            bits = ord(ch) - 63
            for _ in range(n):
                for r in range(6):
                    if bits >> r & 1 and y + r < h:
                        out[y + r, x] = colours[cur]
                x += 1
        i += 1
    return out


def test_sixel_round_trip_with_transparent_margin():
    rng = np.random.default_rng(0)
    img = np.full((17, 23), -1, np.int16)
    img[2:15, 3:20] = rng.integers(0, 256, size=(13, 17))
    img[5:8, 4:16] = 200  # a run (RLE)
    got = _decode_sixel(encode_sixel(img))
    want = np.where(img >= 0, np.round(((img * 63 + 127) // 255) * 100 / 63) * 255 // 100, -1)
    assert np.array_equal(got >= 0, img >= 0)
    assert np.abs(got[img >= 0] - want[img >= 0]).max() <= 3
    assert encode_sixel(np.full((6, 6), -1, np.int16)) == ""


def test_png_round_trip():
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, size=(9, 13), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(grey)), grey)
    assert np.array_equal(decode_png(encode_png(rgb)), rgb)


def test_kitty_transmission_and_placeholders():
    rgb = np.zeros((30, 20, 3), np.uint8)
    seq = kitty.transmit_sequence(77, encode_png(rgb), cols=2, rows=2)
    payload = "".join(re.findall(r"\x1b_G[^;\x1b]*;([^\x1b]*)\x1b\\", seq))
    assert np.array_equal(decode_png(base64.b64decode(payload)), rgb)
    assert "a=p,U=1,i=77,c=2,r=2" in seq
    seg = kitty.placeholder_line(77, 1, 2)
    assert seg.text == (kitty.PLACEHOLDER + "\u030d\u0305") + (kitty.PLACEHOLDER + "\u030d\u030d")
    assert seg.style.color.triplet == (0, 0, 77)
    assert kitty.DIACRITICS[:4] == ("\u0305", "\u030d", "\u030e", "\u0310")


# ------------------------------------------------------------------ aspect ratio
ALL = list(Renderer)
CELLS = [(10, 20), (8, 15), (9, 18), (7, 17)]


@pytest.mark.parametrize("renderer", ALL)
@pytest.mark.parametrize("cell_px", CELLS)
@pytest.mark.parametrize(("ih", "iw"), [(64, 64), (40, 80), (90, 45)])
@pytest.mark.parametrize(("box_w", "box_h"), [(14, 7), (40, 10), (12, 30)])
def test_every_image_keeps_its_aspect(renderer, cell_px, ih, iw, box_w, box_h):
    img = np.random.default_rng(3).normal(size=(ih, iw)).astype(np.float32)
    d = draw(img, box_w, box_h, Setup(renderer, cell_px), Style())
    w, h = d.px
    cw, ch = cell_px
    assert w <= box_w * cw and h <= box_h * ch
    # within one half-block pixel (or one screen pixel) of the image's shape
    tol = (cw / w + ch / 2 / h) if not renderer.pixels else (1 / w + 1 / h)
    assert abs((w / h) / (iw / ih) - 1) <= tol + 1e-9
    assert len(d.rows) == box_h
    for row in d.rows:
        assert sum(s.cell_length for s in row) == box_w


def test_pixels_are_pixel_for_pixel_when_they_fit():
    img = np.random.default_rng(4).normal(size=(64, 64)).astype(np.float32)
    setup = Setup(Renderer.SIXEL, (8, 15))
    d = draw(img, 8, 5, setup, Style())  # 64 x 75 px box
    assert d.px == (64, 64)
    d = draw(img, 17, 9, setup, Style())  # 136 x 135: 2x
    assert d.px == (128, 128)
    assert np.array_equal(grey_pixels(img, 128, 128)[::2, ::2], grey_pixels(img, 64, 64))
    # every screen pixel of the image is in exactly one row's slice
    drawn = np.vstack([_decode_sixel(s) if s else np.full((15, 136), -1) for s in d.slices])
    assert (drawn >= 0).sum() == 128 * 128


def test_default_cell_size_is_a_vt340():
    assert DEFAULT_CELL_PX == (10, 20)

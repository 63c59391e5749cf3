"""Which image renderer this terminal gets, and the size of its cells in pixels.

:func:`choose_renderer` is a pure function of the environment and of what the terminal
answered (:class:`Probe`): Kitty graphics or Sixel when the terminal says it draws them, else
half-block cells in the colours the terminal announces (24-bit, 256 or 16), the same colour
depth Textual (Rich) picks from ``COLORTERM`` / ``TERM``. :func:`prepare` probes once, before
``App.run()`` (the answers are read from stdin, which Textual owns once it runs), and stores
the result for the widgets (:func:`current`).

Probing uses ``textual-image`` (the ``graphics`` extra): its import asks the terminal for
Sixel (DA1) and Kitty graphics support and for the cell size. Without it (a Scipion
environment) images are half-block cells; the cell size then comes from the tty's
``TIOCGWINSZ`` when the terminal fills it in.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Renderer",
    "Probe",
    "Setup",
    "colour_depth",
    "choose_renderer",
    "probe_terminal",
    "prepare",
    "current",
    "set_current",
    "RENDERER_ENV",
    "FORCE_HALFBLOCK_ENV",
    "DEFAULT_CELL_PX",
]

RENDERER_ENV = "TWODCLASS_RENDERER"
"""Force a renderer: ``kitty``, ``sixel``, ``24bit``, ``256``, ``16`` or ``halfblock``."""
FORCE_HALFBLOCK_ENV = "TWODCLASS_HALFBLOCK"
"""Any non-empty value: half-block cells even where graphics work (``--halfblock``)."""
DEFAULT_CELL_PX = (10, 20)
"""Cell size (w, h) in pixels assumed when the terminal does not say (a VT340's)."""


class Renderer(str, Enum):
    """How images are drawn."""

    KITTY = "kitty"
    SIXEL = "sixel"
    HALF_24BIT = "24bit"
    HALF_256 = "256"
    HALF_16 = "16"

    @property
    def pixels(self) -> bool:
        """True for the graphics protocols (real pixels), False for half-block cells."""
        return self in (Renderer.KITTY, Renderer.SIXEL)

    @property
    def label(self) -> str:
        return {
            Renderer.KITTY: "Kitty graphics",
            Renderer.SIXEL: "Sixel graphics",
            Renderer.HALF_24BIT: "half-blocks, 24-bit colour",
            Renderer.HALF_256: "half-blocks, 256 colours",
            Renderer.HALF_16: "half-blocks, 16 colours (dithered)",
        }[self]


@dataclass(frozen=True)
class Probe:
    """What the terminal answered: Sixel in its device attributes, Kitty graphics to a query,
    and its cell size in pixels (None when unknown)."""

    sixel: bool = False
    kitty: bool = False
    cell_px: tuple[int, int] | None = None


@dataclass(frozen=True)
class Setup:
    """The renderer in use and the cell size (w, h) in pixels."""

    renderer: Renderer
    cell_px: tuple[int, int] = DEFAULT_CELL_PX

    @property
    def cell_aspect(self) -> float:
        """Cell height / width (2 for a VT340's 10 x 20 px cells)."""
        w, h = self.cell_px
        return h / w if w > 0 and h > 0 else 2.0


_HALF = {"24bit": Renderer.HALF_24BIT, "256": Renderer.HALF_256, "16": Renderer.HALF_16}


def colour_depth(env: Mapping[str, str]) -> Renderer:
    """The half-block renderer for the colours Textual will use in this environment.

    Mirrors Rich's detection (which Textual uses): ``TEXTUAL_COLOR_SYSTEM`` if set, else
    ``COLORTERM=truecolor|24bit`` -> 24-bit, a ``TERM`` ending in ``-256color`` (or
    ``xterm-kitty``) -> 256, anything else -> 16.
    """
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "auto").strip().lower()
    if forced in ("truecolor", "24bit"):
        return Renderer.HALF_24BIT
    if forced in ("256", "eight_bit"):
        return Renderer.HALF_256
    if forced in ("standard", "16"):
        return Renderer.HALF_16
    if env.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return Renderer.HALF_24BIT
    term = env.get("TERM", "").strip().lower()
    colors = term.rpartition("-")[2]
    if colors in ("256color", "kitty"):
        return Renderer.HALF_256
    return Renderer.HALF_16


def choose_renderer(
    env: Mapping[str, str], probe: Probe, force_halfblock: bool = False
) -> Renderer:
    """The best renderer: Sixel, else Kitty graphics, when the terminal answered so (and
    half-blocks are not forced), else half-blocks in the announced colour depth.

    Sixel before Kitty: terminals that answer both (WezTerm, Konsole) draw Sixel well but not
    Kitty's Unicode placeholders, and Kitty itself does not answer Sixel (textual-image's
    order). ``TWODCLASS_RENDERER`` overrides everything (``halfblock`` = the colour depth).
    """
    forced = env.get(RENDERER_ENV, "").strip().lower()
    if forced in ("kitty", "sixel"):
        return Renderer(forced)
    if forced in _HALF:
        return _HALF[forced]
    if forced == "halfblock" or force_halfblock or env.get(FORCE_HALFBLOCK_ENV):
        return colour_depth(env)
    if probe.sixel:
        return Renderer.SIXEL
    if probe.kitty:
        return Renderer.KITTY
    return colour_depth(env)


def _winsize_cell_px() -> tuple[int, int] | None:
    """Cell size from ``TIOCGWINSZ`` (xterm, kitty and most emulators fill in the pixels)."""
    try:
        import fcntl
        import struct
        import termios

        for stream in (sys.__stdout__, sys.__stdin__):
            if stream is None or not stream.isatty():
                continue
            raw = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
            rows, cols, xpix, ypix = struct.unpack("HHHH", raw)
            if rows and cols and xpix and ypix:
                return xpix // cols, ypix // rows
    except (ImportError, OSError, ValueError):
        pass
    return None


def probe_terminal() -> Probe:
    """Ask the terminal (through ``textual-image``, when installed) what it can draw.

    Costs ~0.1 s per unanswered query; call once, before the app runs.
    """
    cell = _winsize_cell_px()
    if not (sys.__stdout__ and sys.__stdout__.isatty()):
        return Probe(cell_px=cell)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import textual_image.renderable as ti_renderable
            import textual_image.widget  # noqa: F401
    except Exception:  # noqa: BLE001 - optional extra (``pip install scipion-em-2dclass[graphics]``)
        return Probe(cell_px=cell)
    auto = getattr(ti_renderable, "Image", None)
    sixel = auto is not None and auto is getattr(ti_renderable, "SixelImage", None)
    kitty = auto is not None and auto is getattr(ti_renderable, "TGPImage", None)
    if cell is None:
        try:
            from textual_image._terminal import get_cell_size

            got = get_cell_size()  # cached by textual_image.widget's import
            cell = (int(got.width), int(got.height))
        except Exception:  # noqa: BLE001 - private helper; the default is fine
            cell = None
    return Probe(sixel=sixel, kitty=kitty, cell_px=cell)


_current: Setup | None = None


def prepare(force_halfblock: bool = False, env: Mapping[str, str] | None = None) -> Setup:
    """Probe the terminal (unless half-blocks are forced) and keep the choice for the app."""
    env = os.environ if env is None else env
    if force_halfblock:
        os.environ[FORCE_HALFBLOCK_ENV] = "1"
    wants_probe = not (force_halfblock or env.get(FORCE_HALFBLOCK_ENV))
    forced = env.get(RENDERER_ENV, "").strip().lower()
    probe = probe_terminal() if wants_probe and forced in ("", "kitty", "sixel") else Probe()
    if probe.cell_px is None and not wants_probe:
        probe = Probe(cell_px=_winsize_cell_px())
    renderer = choose_renderer(env, probe, force_halfblock)
    return set_current(Setup(renderer, probe.cell_px or DEFAULT_CELL_PX))


def set_current(setup: Setup | None) -> Setup:
    """Use ``setup`` from now on (tests); None = decide again from the environment."""
    global _current
    _current = setup
    return current()


def current() -> Setup:
    """The renderer in use: the one :func:`prepare` chose, else (tests, no tty) half-blocks in
    the environment's colour depth with the default cell size."""
    if _current is not None:
        return _current
    return Setup(choose_renderer(os.environ, Probe()), DEFAULT_CELL_PX)

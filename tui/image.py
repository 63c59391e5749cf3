"""One image in the best way the terminal can show it.

:class:`HalfBlockImage` (the default, always available) fills its content region with
half-block cells. :func:`make_image` returns a ``textual_image`` widget (Kitty / Sixel) when
the optional ``graphics`` extra is importable, the terminal answers to a graphics protocol and
the half-block renderer is not forced; otherwise a :class:`HalfBlockImage`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from textual.strip import Strip
from textual.widget import Widget

from tui.halfblock import halfblock_strips, stretch, to_grey_levels

__all__ = ["HalfBlockImage", "make_image", "graphics_renderer", "FORCE_HALFBLOCK_ENV"]

FORCE_HALFBLOCK_ENV = "TWODCLASS_HALFBLOCK"


class HalfBlockImage(Widget):
    """A grey-level image drawn with ``▀`` cells (fg = top pixel, bg = bottom pixel)."""

    DEFAULT_CSS = """
    HalfBlockImage { width: 28; height: 14; }
    """

    def __init__(
        self,
        image: np.ndarray | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._image = None if image is None else np.asarray(image, dtype=np.float32)
        self._strips: list[Strip] = []
        self._key: tuple[int, int] | None = None

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    @image.setter
    def image(self, value: np.ndarray | None) -> None:
        self._image = None if value is None else np.asarray(value, dtype=np.float32)
        self._key = None
        self.refresh()

    def _ensure(self) -> None:
        w, h = self.size.width, self.size.height
        if self._key == (w, h):
            return
        self._key = (w, h)
        if self._image is None or w <= 0 or h <= 0:
            self._strips = []
            return
        # keep the aspect: a square image needs h cells for 2h pixel rows and w = 2h columns
        ih, iw = self._image.shape
        cells_h = min(h, max(1, int(round(w * ih / iw / 2))))
        cells_w = min(w, max(1, int(round(cells_h * 2 * iw / ih))))
        self._strips = halfblock_strips(
            to_grey_levels(stretch(self._image), cells_w, cells_h, stretched=True)
        )

    def render_line(self, y: int) -> Strip:
        self._ensure()
        width = self.size.width
        if y < len(self._strips):
            strip = self._strips[y]
            pad = max(0, (width - strip.cell_length) // 2)
            return Strip.blank(pad, self.rich_style) + strip if pad else strip
        return Strip.blank(width, self.rich_style)


def graphics_renderer() -> Any | None:
    """The ``textual_image`` widget class when Kitty (TGP) or Sixel graphics work, else None.

    ``textual_image`` probes the terminal once, at import: call this before ``App.run()``.
    Its half-cell / unicode fallbacks are not used: our cached half-block renderer is the same
    idea and faster with many images.
    """
    if os.environ.get(FORCE_HALFBLOCK_ENV):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import textual_image.renderable as ti_renderable  # type: ignore[import-not-found]
            import textual_image.widget as ti_widget  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - optional extra (``pip install scipion-em-2dclass[graphics]``)
        return None
    auto = getattr(ti_renderable, "Image", None)
    graphics = {getattr(ti_renderable, n, None) for n in ("TGPImage", "SixelImage")} - {None}
    if auto in graphics:
        return getattr(ti_widget, "Image", None)
    return None


def make_image(image: np.ndarray, *, id: str | None = None, classes: str | None = None) -> Widget:
    """The best image widget for this terminal (see module docstring)."""
    cls = graphics_renderer()
    if cls is not None:
        try:
            from PIL import Image as PILImage

            grey = (stretch(image) * 255).astype(np.uint8)
            return cls(PILImage.fromarray(grey), id=id, classes=classes)
        except Exception:  # noqa: BLE001 - fall back to half blocks
            pass
    return HalfBlockImage(image, id=id, classes=classes)

"""One image in the best way the terminal can show it, keeping its aspect ratio.

:class:`ImageView` draws with the renderer :mod:`tui.terminal` chose (Kitty graphics, Sixel,
or half-block cells in 24-bit, 256 or 16 colours) and fits the image into its content region
without distorting it (whole-factor scaling when it fits: pixel for pixel).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from textual.filter import LineFilter
from textual.strip import Strip
from textual.widget import Widget

from tui import kitty
from tui.pictures import Drawn, draw, sixel_control
from tui.terminal import FORCE_HALFBLOCK_ENV, Renderer, Setup, current

__all__ = [
    "ImageView",
    "HalfBlockImage",
    "FORCE_HALFBLOCK_ENV",
    "graphics_active",
    "keep_controls",
]


def graphics_active(widget: Widget) -> bool:
    """Whether a widget may draw Sixel images now: its screen is the one on top (a modal
    screen or the command palette would be painted over)."""
    try:
        return bool(widget.screen.is_active)
    except Exception:  # noqa: BLE001 - not mounted
        return False


def keep_controls(widget: Widget, filters: Sequence[LineFilter]) -> Sequence[LineFilter]:
    """The line filters of a widget that draws Sixel: none.

    Textual's ANSI-to-truecolor filter rebuilds every segment without its control flag,
    after which the compositor counts the Sixel data as cells and cuts it apart where a
    line is divided (at a scrollbar). This widget's colours are truecolor already.
    """
    if current().renderer is Renderer.SIXEL:
        return []
    return filters


class ImageView(Widget):
    """A grey-level image (``(h, w)`` float array), fitted into the widget."""

    DEFAULT_CSS = """
    ImageView { width: 28; height: 14; }
    """

    def __init__(
        self,
        image: np.ndarray | None = None,
        *,
        integer: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``integer``: with pixels, scale by whole factors when the image fits."""
        super().__init__(name=name, id=id, classes=classes)
        self._image = None if image is None else np.asarray(image, dtype=np.float32)
        self.integer = integer
        self._drawn: Drawn | None = None
        self._key: tuple | None = None

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    @image.setter
    def image(self, value: np.ndarray | None) -> None:
        self._image = None if value is None else np.asarray(value, dtype=np.float32)
        self._forget()
        self.refresh()

    @property
    def setup(self) -> Setup:
        return current()

    def _forget(self) -> None:
        if self._drawn is not None and self._drawn.kitty_id is not None:
            kitty.send(kitty.delete_sequence(self._drawn.kitty_id))
        self._drawn = None
        self._key = None

    def on_unmount(self) -> None:
        self._forget()

    def drawn(self) -> Drawn | None:
        """The image as laid out for the current size (None before the first layout)."""
        w, h = self.content_size.width, self.content_size.height
        setup = self.setup
        key = (w, h, setup, self.rich_style)
        if self._key != key:
            self._forget()
            self._key = key
            if self._image is not None and w > 0 and h > 0:
                self._drawn = draw(self._image, w, h, setup, self.rich_style, integer=self.integer)
                kitty.send(self._drawn.kitty_send)
        return self._drawn

    def get_line_filters(self) -> Sequence[LineFilter]:
        return keep_controls(self, super().get_line_filters())

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        d = self.drawn()
        if d is None or y >= len(d.rows):
            return Strip.blank(width, self.rich_style)
        segs = list(d.rows[y])
        if d.slices[y] and graphics_active(self):
            r = self.content_region
            segs.append(sixel_control(d.slices[y], r.x, r.y + y))
        return Strip(segs, width)


HalfBlockImage = ImageView
"""The former name (the widget draws half-blocks where graphics are not available)."""

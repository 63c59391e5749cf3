"""The class-average grid: one line-API widget draws every tile, lazily.

Each tile is ``tile_w`` cells wide: a one-cell margin (highlighted at the cursor with
half-blocks), the image and two label lines under it (class number, particle count,
resolution, a tick when selected; highlighted at the cursor). Images use the terminal's
renderer (:mod:`tui.terminal`): with Kitty or Sixel graphics every tile shows the class
average pixel for pixel (at least 64 x 64 screen pixels, 1:1, ``z`` doubles the size); with
half-blocks the tile is sized from the cell shape so that the image stays square. Only
visible lines are drawn; each class's image is laid out once per tile size and cached
(Sixel: one slice per cell row, appended to the line after its cells), so 200+ classes
stay fast. Cursor and selection changes repaint only the label lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.filter import LineFilter
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui import kitty
from tui.image import graphics_active, keep_controls
from tui.jobfiles import ClassInfo
from tui.pictures import Drawn, draw, sixel_control
from tui.terminal import Setup, current

__all__ = ["ClassGrid", "SORT_KEYS"]

SORT_KEYS = ("count", "resolution", "number")
LABEL_ROWS = 2


class ClassGrid(ScrollView, can_focus=True):
    """Grid of class averages with a cursor and a set of selected class numbers."""

    COMPONENT_CLASSES = {
        "class-grid--label",
        "class-grid--selected",
        "class-grid--cursor",
        "class-grid--cursor-label",
        "class-grid--dim",
    }
    BINDINGS = [
        Binding("left", "move(-1, 0)", "Move", show=False),
        Binding("right", "move(1, 0)", "Move", show=False),
        Binding("up", "move(0, -1)", "Move", show=False),
        Binding("down", "move(0, 1)", "Move", show=False),
        Binding("pageup", "move(0, -3)", show=False),
        Binding("pagedown", "move(0, 3)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
        Binding("space", "toggle_class", "Toggle"),
        Binding("enter", "open", "Open"),
        Binding("z", "toggle_size", "Tile size"),
        Binding("plus,equals_sign", "zoom(1)", "Bigger", show=False),
        Binding("minus", "zoom(-1)", "Smaller", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)
    """Index of the cursor tile in the current display order."""

    @dataclass
    class CursorMoved(Message):
        grid: ClassGrid
        number: int

    @dataclass
    class SelectionChanged(Message):
        grid: ClassGrid

    @dataclass
    class Opened(Message):
        grid: ClassGrid
        number: int

    HALF_WIDTHS = (10, 14, 20, 28)
    """Half-block tile widths (cells), smallest first; the height follows the cell shape."""
    PIXEL_FACTORS = (1, 2, 3)
    """Pixel tiles: multiples of the base size (the class box, at least 64 px)."""
    MIN_TILE_PX = 64

    def __init__(
        self,
        *,
        selectable: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.selectable = selectable
        self.infos: list[ClassInfo] = []
        self.images: np.ndarray = np.zeros((0, 1, 1), np.float32)
        self.selected: set[int] = set()
        self.order: list[int] = []  # indices into infos
        self.sort_key = "number"
        self._zoom: int | None = None  # index into zoom_levels(); None = the default
        self._cache: dict[tuple, Drawn] = {}
        self._style_cache: tuple[Style, ...] | None = None

    # ---------------------------------------------------------------- data
    def show_classes(self, infos: list[ClassInfo], images: np.ndarray) -> None:
        """Replace the classes (e.g. after each iteration of a run); keeps the cursor's class."""
        keep = self.current_number
        self.infos = list(infos)
        self.images = images
        self._clear_cache()
        self._sort(keep)

    def sort_by(self, key: str) -> None:
        if key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {key!r}")
        self.sort_key = key
        self._sort(self.current_number)

    def _sort(self, keep: int | None) -> None:
        idx = list(range(len(self.infos)))
        if self.sort_key == "count":
            idx.sort(key=lambda i: (-self.infos[i].count, self.infos[i].number))
        elif self.sort_key == "resolution":
            idx.sort(key=lambda i: (self.infos[i].resolution_A, self.infos[i].number))
        else:
            idx.sort(key=lambda i: self.infos[i].number)
        self.order = idx
        pos = 0
        if keep is not None:
            pos = next((p for p, i in enumerate(idx) if self.infos[i].number == keep), 0)
        self._update_virtual_size()
        self.cursor = min(pos, max(len(idx) - 1, 0))
        self.refresh()

    @property
    def current_number(self) -> int | None:
        if not self.order or self.cursor >= len(self.order):
            return None
        return self.infos[self.order[self.cursor]].number

    def info(self, number: int) -> ClassInfo | None:
        return next((c for c in self.infos if c.number == number), None)

    def set_selected(self, numbers: set[int] | list[int]) -> None:
        self.selected = {int(n) for n in numbers}
        self.refresh()
        self.post_message(self.SelectionChanged(self))

    # ---------------------------------------------------------------- geometry
    @property
    def setup(self) -> Setup:
        return current()

    def zoom_levels(self) -> list[tuple[int, int]]:
        """Image boxes (cells w, h) from smallest to largest, for the current renderer."""
        setup = self.setup
        cw, ch = setup.cell_px
        if setup.renderer.pixels:
            b = int(self.images.shape[-1]) if self.images.size else self.MIN_TILE_PX
            base = b * max(1, -(-self.MIN_TILE_PX // b))
            return [(-(-base * f // cw), -(-base * f // ch)) for f in self.PIXEL_FACTORS]
        return [(w, max(1, round(w * cw / ch))) for w in self.HALF_WIDTHS]

    @property
    def zoom(self) -> int:
        """Index into :meth:`zoom_levels` (pixels: 1x; half-blocks: 14 cells wide)."""
        levels = self.zoom_levels()
        default = 0 if self.setup.renderer.pixels else 1
        z = default if self._zoom is None else self._zoom
        return min(max(z, 0), len(levels) - 1)

    @property
    def img_w(self) -> int:
        return max(self.zoom_levels()[self.zoom][0], 8)

    @property
    def img_h(self) -> int:
        return self.zoom_levels()[self.zoom][1]

    @property
    def tile_w(self) -> int:
        return self.img_w + 1

    @property
    def tile_h(self) -> int:
        return self.img_h + LABEL_ROWS

    @property
    def columns(self) -> int:
        width = self.scrollable_content_region.width or self.size.width
        if self.setup.renderer.pixels:
            width -= 1  # a free last column: see render_line
        return max(1, width // self.tile_w)

    def _update_virtual_size(self) -> None:
        rows = -(-len(self.order) // self.columns) if self.order else 0
        self.virtual_size = Size(self.columns * self.tile_w, rows * self.tile_h)

    def on_resize(self, event: events.Resize) -> None:
        self._update_virtual_size()
        self._scroll_to_cursor()

    # ---------------------------------------------------------------- drawing
    def _clear_cache(self) -> None:
        for d in self._cache.values():
            if d.kitty_id is not None:
                kitty.send(kitty.delete_sequence(d.kitty_id))
        self._cache.clear()

    def on_unmount(self) -> None:
        self._clear_cache()

    def drawn(self, index: int) -> Drawn:
        """Class ``index``'s image laid out in the tile (cached per size and renderer)."""
        base = self._styles()[0]
        setup = self.setup
        key = (index, self.img_w, self.img_h, setup, base)
        d = self._cache.get(key)
        if d is None:
            d = draw(self.images[index], self.img_w, self.img_h, setup, base)
            kitty.send(d.kitty_send)
            self._cache[key] = d
        return d

    def _label(self, info: ClassInfo, line: int) -> str:
        w = self.img_w
        if line == 0:
            mark = "✓" if info.number in self.selected else " "
            text = f"{mark}#{info.number}"
            count = f"{info.count:,}"
            if len(text) + len(count) > w:
                count = _compact(info.count)
            return (text + count.rjust(max(w - len(text), 0)))[:w].ljust(w)
        res = info.resolution_A
        res_s = f"{res:.1f} Å" if np.isfinite(res) else "– Å"
        return res_s.rjust(w)[:w]

    def _styles(self) -> tuple[Style, ...]:
        if self._style_cache is None:
            base = self.rich_style
            self._style_cache = (
                base,
                *(
                    base + self.get_component_rich_style(f"class-grid--{n}")
                    for n in ("label", "selected", "cursor", "cursor-label")
                ),
            )
        return self._style_cache

    def get_line_filters(self) -> Sequence[LineFilter]:
        return keep_controls(self, super().get_line_filters())

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style_cache = None

    def render_line(self, y: int) -> Strip:
        scroll_y = int(self.scroll_offset.y)
        vy = y + scroll_y
        th = self.tile_h
        cols = self.columns
        row, line = divmod(vy, th)
        width = self.scrollable_content_region.width or self.size.width
        base, label_style, sel_style, cur_style, cur_label = self._styles()
        focused = self.has_focus_within_screen()
        pixels = self.setup.renderer.pixels
        sixels = pixels and graphics_active(self)
        segs: list[Segment] = []
        controls: list[Segment] = []
        x0, y0 = self.content_region.x, self.content_region.y + y
        for c in range(cols):
            p = row * cols + c
            if p >= len(self.order) or p < 0:
                break
            index = self.order[p]
            info = self.infos[index]
            is_cur = p == self.cursor and focused
            # with pixels the margin stays plain: repainting it would cut into the images
            margin_cur = is_cur and not (pixels and line < self.img_h)
            segs.append(Segment(" ", cur_style if margin_cur else base))
            if line < self.img_h:
                if index < len(self.images):
                    d = self.drawn(index)
                    segs.extend(d.rows[line])
                    if sixels and d.slices[line]:
                        x = x0 + c * self.tile_w + 1
                        controls.append(sixel_control(d.slices[line], x, y0))
                else:
                    segs.append(Segment(" " * self.img_w, base))
            else:
                text = self._label(info, line - self.img_h)
                if is_cur:
                    style = cur_label
                elif info.number in self.selected:
                    style = sel_style
                else:
                    style = label_style
                segs.append(Segment(text, style))
        used = sum(s.cell_length for s in segs)
        if not controls:
            if used < width:
                segs.append(Segment(" " * (width - used), base))
            return Strip(segs, max(width, used))
        # Sixel slices after the tiles' cells, before the line's last cell (a free column):
        # the cells are written first, then the slices paint over them. The compositor cuts
        # the line where the scrollbar starts and keeps what comes before that cut, so the
        # slices must not trail the last cell (a line cut short by an overlay drops them).
        if used < width - 1:
            segs.append(Segment(" " * (width - 1 - used), base))
        tail = Segment(" ", base) if used < width else Segment("", base)
        return Strip([*segs, *controls, tail], max(width, used))

    def has_focus_within_screen(self) -> bool:
        """The cursor is drawn whenever the grid is the focused widget of its screen."""
        try:
            return self.screen.focused is self or not self.screen.focused
        except Exception:  # noqa: BLE001 - not mounted yet
            return True

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ---------------------------------------------------------------- cursor
    def watch_cursor(self, old: int, new: int) -> None:
        self._refresh_tile(old)
        self._refresh_tile(new)
        self._scroll_to_cursor()
        number = self.current_number
        if number is not None:
            self.post_message(self.CursorMoved(self, number))

    def _tile_region(self, pos: int) -> Region:
        cols = self.columns
        row, col = divmod(pos, cols)
        return Region(col * self.tile_w, row * self.tile_h, self.tile_w, self.tile_h)

    def _refresh_tile(self, pos: int) -> None:
        """Repaint what the cursor and the selection change: the margin and the labels.

        The image cells stay as they are, so a key press sends little to the terminal.
        """
        if 0 <= pos < len(self.order):
            r = self._tile_region(pos).translate(
                (-int(self.scroll_offset.x), -int(self.scroll_offset.y))
            )
            labels = Region(r.x, r.y + self.img_h, r.width, LABEL_ROWS)
            if self.setup.renderer.pixels:
                self.refresh(labels)
            else:
                self.refresh(Region(r.x, r.y, 1, r.height), labels)

    def _scroll_to_cursor(self) -> None:
        if self.order and self.size.height:
            self.scroll_to_region(self._tile_region(self.cursor), animate=False, immediate=True)

    def action_move(self, dx: int, dy: int) -> None:
        if not self.order:
            return
        new = self.cursor + dx + dy * self.columns
        if dy and not 0 <= new < len(self.order):
            new = min(max(new, 0), len(self.order) - 1)
        self.cursor = min(max(new, 0), len(self.order) - 1)

    def action_jump(self, pos: int) -> None:
        if self.order:
            self.cursor = pos % len(self.order)

    def action_toggle_class(self) -> None:
        number = self.current_number
        if number is None or not self.selectable:
            return
        if number in self.selected:
            self.selected.discard(number)
        else:
            self.selected.add(number)
        self._refresh_tile(self.cursor)
        self.post_message(self.SelectionChanged(self))

    def action_open(self) -> None:
        number = self.current_number
        if number is not None:
            self.post_message(self.Opened(self, number))

    def action_zoom(self, step: int) -> None:
        n = len(self.zoom_levels())
        self._set_zoom(min(max(self.zoom + step, 0), n - 1))

    def action_toggle_size(self) -> None:
        """Switch between the default tile size and the next larger one."""
        default = 0 if self.setup.renderer.pixels else 1
        self._set_zoom(default + 1 if self.zoom == default else default)

    def _set_zoom(self, z: int) -> None:
        self._zoom = z
        self._update_virtual_size()
        self.refresh()
        self._scroll_to_cursor()

    def position_at(self, x: int, y: int) -> int | None:
        """Display position of the tile under widget coordinates ``(x, y)``, if any."""
        col = x // self.tile_w
        if col >= self.columns:
            return None
        row = (y + int(self.scroll_offset.y)) // self.tile_h
        p = row * self.columns + col
        return p if 0 <= p < len(self.order) else None

    def on_click(self, event: events.Click) -> None:
        p = self.position_at(event.x, event.y)
        if p is None:
            return
        self.focus()
        self.cursor = p
        if event.chain >= 2:
            self.action_open()


def _compact(n: int) -> str:
    """``1234`` -> ``1.2k``, ``123456`` -> ``123k``, ``2345678`` -> ``2.3M``."""
    if n < 1000:
        return str(n)
    for div, unit in ((1_000_000, "M"), (1000, "k")):
        if n >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 10 else f"{v:.0f}{unit}"
    return str(n)  # pragma: no cover

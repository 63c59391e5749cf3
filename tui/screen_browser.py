"""The class browser: all class averages, sort, select, inspect one class, save."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui.class_grid import SORT_KEYS, ClassGrid
from tui.jobfiles import JobData, load_job, read_selection
from tui.selection_io import AutoSelection, auto_suggest, coverage_summary, save_selection

__all__ = ["BrowserScreen"]


class BrowserScreen(Screen[None]):
    """Browse the classes of a finished job and choose the good ones."""

    BINDINGS = [
        Binding("a", "auto", "Auto-select"),
        Binding("s", "save", "Save"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("x", "clear", "Clear", show=False),
        Binding("i", "invert", "Invert", show=False),
        Binding("escape,q", "back", "Back"),
    ]

    def __init__(self, job_dir: Path, out_dir: Path | None = None,
                 job: JobData | None = None) -> None:
        super().__init__()
        self.job_dir = Path(job_dir)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.job = job
        self.auto: AutoSelection | None = None
        self.saved: set[int] | None = None
        self._info = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading classes…", id="browser-info")
        yield ClassGrid(id="grid")
        yield Static("", id="class-line")
        yield Static("", id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "twodclass — classes"
        self.sub_title = str(self.job_dir)
        if self.job is not None:
            self._show(self.job)
        else:
            self._load()

    @work(thread=True, exclusive=True, group="load")
    def _load(self) -> None:
        try:
            job = load_job(self.job_dir)
        except Exception as exc:  # noqa: BLE001 - show it, do not crash
            self.app.call_from_thread(self._failed, f"Cannot read {self.job_dir}: {exc}")
            return
        self.app.call_from_thread(self._show, job)

    def _failed(self, message: str) -> None:
        self.query_one("#browser-info", Static).update(message)
        self.notify(message, severity="error", timeout=10)

    def _show(self, job: JobData) -> None:
        self.job = job
        grid = self.query_one(ClassGrid)
        grid.sort_key = "count"
        grid.set_classes(job.classes, job.images)
        restored = None
        for folder in (self.out_dir, self.job_dir):
            if folder is not None:
                restored = read_selection(folder)
                if restored is not None:
                    break
        status = job.job.get("status", "")
        self._info = (f"{len(job.classes)} classes · {job.n_particles:,} particles"
                      + (f" · {status}" if status else ""))
        self.query_one("#browser-info", Static).update(f"{self._info} · sort: count")
        if restored is not None:
            self.saved = set(restored)
            grid.set_selected(restored)
            self.notify(f"Restored the saved selection ({len(restored)} classes)")
        else:
            self._update_status()
        grid.focus()
        self._suggest(job)

    @work(thread=True, exclusive=True, group="auto")
    def _suggest(self, job: JobData) -> None:
        auto = auto_suggest(job)
        self.app.call_from_thread(self._auto_ready, auto)

    def _auto_ready(self, auto: AutoSelection) -> None:
        self.auto = auto
        if auto.error:
            self.notify(f"Automatic selection unavailable ({auto.error}); using the simple "
                        "rule", severity="warning")
        self._update_status()

    @property
    def suggestions(self) -> dict:
        return {} if self.auto is None else self.auto.suggestions

    # ------------------------------------------------------------------ status
    @property
    def grid(self) -> ClassGrid:
        return self.query_one(ClassGrid)

    def _update_status(self) -> None:
        grid = self.grid
        infos = {c.number: c for c in grid.infos}
        n_cls = len(grid.selected)
        n_part = sum(infos[c].count for c in grid.selected if c in infos)
        total = sum(c.count for c in grid.infos)
        unsaved = "" if self.saved == grid.selected or (self.saved is None
                                                         and not grid.selected) else " · unsaved"
        views, warnings = coverage_summary(self.auto, grid.selected) if n_cls else ("", [])
        views_s = f" · {views}" if views else ""
        self.query_one("#status-line", Static).update(
            f"Selected {n_cls}/{len(grid.infos)} classes · "
            f"{n_part:,}/{total:,} particles{views_s}{unsaved}", layout=False)
        self.query_one("#status-line", Static).tooltip = "\n".join(warnings) or None
        self._update_class_line()

    def _update_class_line(self) -> None:
        grid = self.grid
        number = grid.current_number
        if number is None:
            return
        c = grid.info(number)
        if c is None:
            return
        sug = self.suggestions.get(number)
        sug_s = ""
        if sug is not None:
            sug_s = f" · auto: {'keep' if sug.keep else 'drop'} ({sug.reason})"
        mark = "selected" if number in grid.selected else "not selected"
        self.query_one("#class-line", Static).update(
            f"Class {number}: {c.count:,} particles, {c.resolution_A:.1f} Å, {mark}{sug_s}",
            layout=False)

    @on(ClassGrid.SelectionChanged)
    def _selection_changed(self, event: ClassGrid.SelectionChanged) -> None:
        self._update_status()

    @on(ClassGrid.CursorMoved)
    def _cursor_moved(self, event: ClassGrid.CursorMoved) -> None:
        self._update_class_line()

    @on(ClassGrid.Opened)
    def _opened(self, event: ClassGrid.Opened) -> None:
        from tui.screen_detail import ClassDetailScreen

        if self.job is not None:
            self.app.push_screen(ClassDetailScreen(self.job, event.number, self.grid,
                                                   self.suggestions))

    # ------------------------------------------------------------------ actions
    def action_auto(self) -> None:
        if self.auto is None:
            self.notify("Still computing the automatic suggestion…")
            return
        keep = self.auto.keep
        self.grid.set_selected(keep)
        self.notify(f"Automatic suggestion ({self.auto.source}): {len(keep)} of "
                    f"{len(self.auto.suggestions)} classes")

    def action_clear(self) -> None:
        self.grid.set_selected([])

    def action_invert(self) -> None:
        grid = self.grid
        grid.set_selected({c.number for c in grid.infos} - grid.selected)

    def action_cycle_sort(self) -> None:
        key = SORT_KEYS[(SORT_KEYS.index(self.grid.sort_key) + 1) % len(SORT_KEYS)]
        self.sort_by(key)

    def sort_by(self, key: str) -> None:
        self.grid.sort_by(key)
        self.query_one("#browser-info", Static).update(f"{self._info} · sort: {key}")

    def action_save(self) -> None:
        if self.job is None:
            return
        if not self.grid.selected:
            self.notify("Nothing selected: toggle classes with space, or press a",
                        severity="warning")
            return
        self._save(sorted(self.grid.selected))

    @work(thread=True, exclusive=True, group="save")
    def _save(self, ids: list[int]) -> None:
        try:
            assert self.job is not None
            res = save_selection(self.job, ids, self.out_dir, self.auto)
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self.notify, f"Saving failed: {exc}", severity="error",
                                      timeout=10)
            return
        self.app.call_from_thread(self._saved, set(ids), res)

    def _saved(self, ids: set[int], res: dict) -> None:
        self.saved = ids
        self._update_status()
        n = res.get("n_particles")
        n_s = f"{n:,} particles, " if isinstance(n, int) else ""
        self.notify(f"Saved {len(ids)} classes ({n_s}into {res['out_dir']})")

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()

    def palette_commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand("Auto-select", "Select the classes the automatic rule keeps",
                            self.action_auto)
        yield SystemCommand("Save selection", "Write particles_selected.star, "
                            "classes_selected.mrcs/.star and selection.json", self.action_save)
        for key in SORT_KEYS:
            yield SystemCommand(f"Sort by {key}", f"Order the classes by {key}",
                                lambda k=key: self.sort_by(k))
        yield SystemCommand("Clear selection", "Deselect every class", self.action_clear)
        yield SystemCommand("Invert selection", "Select the unselected classes",
                            self.action_invert)
        yield SystemCommand("Toggle class", "Select or deselect the class under the cursor",
                            self.grid.action_toggle)
        yield SystemCommand("Open class", "Show the class under the cursor in detail",
                            self.grid.action_open)
        yield SystemCommand("Bigger tiles", "Zoom the class images in",
                            lambda: self.grid.action_zoom(1))
        yield SystemCommand("Smaller tiles", "Zoom the class images out",
                            lambda: self.grid.action_zoom(-1))

"""The class browser: all class averages, sort, select, inspect one class, save.

The particle filter (``engine.select.particle_outliers``, on by default as in
``twodclass select``; ``f`` toggles it) needs three columns of ``run_data.star``: they are
read once in a thread after the classes are shown (0.3 s for 100,000 particles), and the
filter runs in a thread for each new selection (one at a time, the latest selection wins),
so keys never wait for it. Saving reads the whole file, as ``twodclass select`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from engine.io.star import read_star_columns
from tui.class_grid import SORT_KEYS, ClassGrid
from tui.jobfiles import (
    JobData,
    load_job,
    read_selection,
    read_selection_filter,
)
from tui.selection_io import (
    FILTER_COLUMNS,
    AutoSelection,
    FilterSummary,
    ParticleFilter,
    auto_suggest,
    coverage_summary,
    filter_thresholds,
    save_selection,
)

__all__ = ["BrowserScreen"]


class BrowserScreen(Screen[None]):
    """Browse the classes of a finished job and choose the good ones."""

    BINDINGS = [
        Binding("a", "auto", "Auto", tooltip="Select the classes the automatic rule keeps"),
        Binding("s", "save", "Save"),
        Binding("o", "cycle_sort", "Sort"),
        Binding(
            "f",
            "toggle_filter",
            "Filter",
            tooltip="Particle filter on/off: remove the particles that do not look like "
            "their class-mates when saving",
        ),
        Binding("g", "plots", "Plots", tooltip="Class distribution and convergence"),
        Binding("x", "clear", "Clear", show=False),
        Binding("i", "invert", "Invert", show=False),
        Binding("escape,q", "back", "Back"),
    ]

    def __init__(
        self, job_dir: Path, out_dir: Path | None = None, job: JobData | None = None
    ) -> None:
        super().__init__()
        self.job_dir = Path(job_dir)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.job = job
        self.auto: AutoSelection | None = None
        self.saved: set[int] | None = None
        self.filter_on = True
        """remove the particles that do not look like their class-mates when saving"""
        self.saved_filter: bool | None = None
        self.pfilter: ParticleFilter | None = None
        """None until the particles are read"""
        self._filter_busy = False
        self._th: tuple[Any, Any] | None = None
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
        grid.show_classes(job.classes, job.images)
        restored = None
        for folder in (self.out_dir, self.job_dir):
            if folder is not None:
                restored = read_selection(folder)
                if restored is not None:
                    self.filter_on = bool(read_selection_filter(folder))
                    self.saved_filter = self.filter_on
                    break
        status = job.job.get("status", "")
        self._info = f"{len(job.classes)} classes · {job.n_particles:,} particles" + (
            f" · {status}" if status else ""
        )
        self.query_one("#browser-info", Static).update(f"{self._info} · sort: count")
        if restored is not None:
            self.saved = set(restored)
            grid.set_selected(restored)
            self.notify(f"Restored the saved selection ({len(restored)} classes)")
        else:
            self._update_status()
        grid.focus()
        self._suggest(job)
        self._load_particles(job)

    @work(thread=True, exclusive=True, group="auto")
    def _suggest(self, job: JobData) -> None:
        auto = auto_suggest(job)
        self.app.call_from_thread(self._auto_ready, auto)

    def _auto_ready(self, auto: AutoSelection) -> None:
        self.auto = auto
        if auto.error:
            self.notify(
                f"Automatic selection unavailable ({auto.error}); using the simple rule",
                severity="warning",
            )
        self._update_status()

    @work(thread=True, exclusive=True, group="particles")
    def _load_particles(self, job: JobData) -> None:
        from engine.io.jobfolder import JobFiles

        ej = job.engine_job
        full = optics = None
        pf: ParticleFilter
        try:
            path = JobFiles.of(job.job_dir).data
            if ej is not None and getattr(ej, "data", None) is not None:
                pf = ParticleFilter(ej.data)  # read already (a RELION job)
            elif not path.exists():
                pf = ParticleFilter(
                    None, f"no {path.name} (the job has not finished): nothing removed"
                )
            else:
                slim = read_star_columns(path, FILTER_COLUMNS)
                if slim is None:  # an unusual file: the engine's reader
                    from engine.io.jobfolder import load_job as engine_load_job

                    whole = engine_load_job(job.job_dir, read_data=True)
                    full, optics = whole.data, whole.optics
                    slim = full
                pf = ParticleFilter(slim)
        except Exception as exc:  # noqa: BLE001 - the browser works without the particles
            pf = ParticleFilter(None, f"cannot read the particles ({exc}): nothing removed")
        self.app.call_from_thread(self._particles_ready, job, pf, full, optics)

    def _particles_ready(self, job: JobData, pf: ParticleFilter, full: Any, optics: Any) -> None:
        from tui.screen_detail import ClassDetailScreen

        if (
            full is not None
            and job.engine_job is not None
            and getattr(job.engine_job, "data", None) is None
        ):
            # read whole: saving (write_selection) and the class detail reuse it
            job.engine_job = dataclasses.replace(job.engine_job, data=full, optics=optics)
            ClassDetailScreen.prime_run_data(job.job_dir, full, optics)
        self.pfilter = pf
        self._update_status_if_shown()
        if isinstance(self.app.screen, ClassDetailScreen):
            self.app.screen.refresh_filter()

    @property
    def suggestions(self) -> dict:
        return {} if self.auto is None else self.auto.suggestions

    # ------------------------------------------------------------------ status
    @property
    def grid(self) -> ClassGrid:
        return self.query_one(ClassGrid)

    @property
    def thresholds(self) -> Any:
        """The particle filter's thresholds (the automatic table's, else the defaults)."""
        if self._th is None or self._th[0] is not self.auto:
            self._th = (self.auto, filter_thresholds(self.auto))
        return self._th[1]

    def filter_summary(self) -> FilterSummary | None:
        """The particle filter's summary of the current selection if known (else None, and
        it is being computed)."""
        if self.pfilter is None or not self.grid.selected:
            return None
        ids = sorted(self.grid.selected)
        th = self.thresholds
        got = self.pfilter.cached(ids, th)
        if got is None and not self._filter_busy:
            self._filter_busy = True
            self._run_filter(self.pfilter, ids, th)
        return got

    @work(thread=True, group="filter")
    def _run_filter(self, pfilter: ParticleFilter, ids: list[int], thresholds: Any) -> None:
        # one at a time: _filter_done starts the next one if the selection moved on
        try:
            pfilter.summary(ids, thresholds)
        finally:
            self.app.call_from_thread(self._filter_done)

    def _filter_done(self) -> None:
        self._filter_busy = False
        if self.filter_on:
            self._update_status_if_shown()

    def _update_status_if_shown(self) -> None:
        """For results of workers: the app may be closing and the widgets gone."""
        try:
            self._update_status()
        except NoMatches:
            pass

    def _particles_text(self, n_in: int, total: int) -> tuple[str, str]:
        """``("1,178/2,400 particles", "<what the particle filter does>")``."""
        grid = self.grid
        if not self.filter_on:
            return (
                f"{n_in:,}/{total:,} particles",
                "particle filter off: every particle of the selected classes kept",
            )
        if not grid.selected:
            return f"0/{total:,} particles", "particle filter on"
        if self.pfilter is None:
            return f"…/{total:,} particles", "particle filter: reading the particles…"
        summ = self.filter_summary()
        if summ is None:
            return f"…/{total:,} particles", "particle filter: counting…"
        if summ.note:
            return f"{n_in:,}/{total:,} particles", summ.text()
        return f"{summ.n_kept:,}/{total:,} particles", summ.text()

    def _update_status(self) -> None:
        grid = self.grid
        infos = {c.number: c for c in grid.infos}
        n_cls = len(grid.selected)
        n_part = sum(infos[c].count for c in grid.selected if c in infos)
        total = sum(c.count for c in grid.infos)
        if self.saved is None:
            unsaved = bool(grid.selected)
        else:
            unsaved = self.saved != grid.selected or self.saved_filter != self.filter_on
        views, warnings = coverage_summary(self.auto, grid.selected) if n_cls else ("", [])
        views_s = f" · {views}" if views else ""
        particles, filter_s = self._particles_text(n_part, total)
        line = f"Selected {n_cls}/{len(grid.infos)} classes · {particles}{views_s}" + (
            " · unsaved" if unsaved else ""
        )
        status = self.query_one("#status-line", Static)
        status.update(Content.assemble((line, "bold"), "\n", filter_s), layout=False)
        status.tooltip = "\n".join([filter_s, *warnings])
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
        fam = None if self.auto is None else self.auto.family(number)
        fam_s = "" if fam is None else f", view {fam}"
        self.query_one("#class-line", Static).update(
            f"Class {number}: {c.count:,} particles, {c.resolution_A:.1f} Å{fam_s}, {mark}{sug_s}",
            layout=False,
        )

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
            self.app.push_screen(
                ClassDetailScreen(
                    self.job, event.number, self.grid, self.suggestions, self._filter_state
                )
            )

    def _filter_state(self) -> tuple[ParticleFilter | None, bool, Any]:
        """For the class detail: (the filter or None while reading, on?, thresholds)."""
        return self.pfilter, self.filter_on, self.thresholds

    # ------------------------------------------------------------------ actions
    def action_auto(self) -> None:
        if self.auto is None:
            self.notify("Still computing the automatic suggestion…")
            return
        keep = self.auto.keep
        self.grid.set_selected(keep)
        self.notify(
            f"Automatic suggestion ({self.auto.source}): {len(keep)} of "
            f"{len(self.auto.suggestions)} classes"
        )

    def action_plots(self) -> None:
        from tui.screen_plots import PlotsScreen

        if self.job is not None:
            self.app.push_screen(PlotsScreen(self.job, set(self.grid.selected)))

    def action_clear(self) -> None:
        self.grid.set_selected([])

    def action_invert(self) -> None:
        grid = self.grid
        grid.set_selected({c.number for c in grid.infos} - grid.selected)

    def action_cycle_sort(self) -> None:
        key = SORT_KEYS[(SORT_KEYS.index(self.grid.sort_key) + 1) % len(SORT_KEYS)]
        self.sort_by(key)

    def action_toggle_filter(self) -> None:
        self.filter_on = not self.filter_on
        self._update_status()

    def sort_by(self, key: str) -> None:
        self.grid.sort_by(key)
        self.query_one("#browser-info", Static).update(f"{self._info} · sort: {key}")

    def action_save(self) -> None:
        if self.job is None:
            return
        if not self.grid.selected:
            self.notify(
                "Nothing selected: toggle classes with space, or press a", severity="warning"
            )
            return
        self._save(sorted(self.grid.selected), self.filter_on)

    @work(thread=True, exclusive=True, group="save")
    def _save(self, ids: list[int], particle_filter: bool) -> None:
        try:
            assert self.job is not None
            res = save_selection(
                self.job, ids, self.out_dir, self.auto, particle_filter=particle_filter
            )
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(
                self.notify, f"Saving failed: {exc}", severity="error", timeout=10
            )
            return
        self.app.call_from_thread(self._saved, set(ids), particle_filter, res)

    def _saved(self, ids: set[int], particle_filter: bool, res: dict) -> None:
        self.saved = ids
        self.saved_filter = particle_filter
        self._update_status()
        n = res.get("n_particles")
        n_s = f"{n:,} particles, " if isinstance(n, int) else ""
        pf = res.get("particle_filter")
        if isinstance(pf, dict) and pf.get("applied"):
            n_s += f"{pf.get('n_removed', 0):,} removed by the particle filter, "
        elif isinstance(pf, dict):
            n_s += "particle filter did not run, "
        self.notify(f"Saved {len(ids)} classes ({n_s}into {res['out_dir']})")

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()

    def palette_commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand(
            "Auto-select", "Select the classes the automatic rule keeps", self.action_auto
        )
        yield SystemCommand(
            "Save selection",
            "Write particles_selected.star, classes_selected.mrcs/.star and selection.json",
            self.action_save,
        )
        yield SystemCommand(
            "Toggle the particle filter",
            "On saving, remove (or keep) the particles of the selected classes "
            "that do not look like their class-mates (particles_removed.star)",
            self.action_toggle_filter,
        )
        for key in SORT_KEYS:
            yield SystemCommand(
                f"Sort by {key}", f"Order the classes by {key}", lambda k=key: self.sort_by(k)
            )
        yield SystemCommand(
            "Plots",
            "Particles per class (sorted), changed assignments and log-likelihood per iteration",
            self.action_plots,
        )
        yield SystemCommand("Clear selection", "Deselect every class", self.action_clear)
        yield SystemCommand("Invert selection", "Select the unselected classes", self.action_invert)
        yield SystemCommand(
            "Toggle class",
            "Select or deselect the class under the cursor",
            self.grid.action_toggle_class,
        )
        yield SystemCommand(
            "Open class", "Show the class under the cursor in detail", self.grid.action_open
        )
        yield SystemCommand(
            "Bigger tiles", "Zoom the class images in", lambda: self.grid.action_zoom(1)
        )
        yield SystemCommand(
            "Smaller tiles", "Zoom the class images out", lambda: self.grid.action_zoom(-1)
        )
        yield SystemCommand(
            "Toggle tile size", "Default or double-size tiles", self.grid.action_toggle_size
        )

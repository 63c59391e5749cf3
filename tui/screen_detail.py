"""One class in detail: a larger image, its statistics (labels with units), its resolution
curve (SSNR against 1/Å), member particles aligned to it (low-passed to the class's
resolution; ``r`` shows them raw), and how many of its particles the particle filter
removes (when it is on). When the classes were scored against a 3D map (``twodclass select
--reference``, or Scipion's select protocol), the class is shown beside its best-matching
projection, with the score and the direction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui.class_grid import ClassGrid
from tui.image import ImageView
from tui.job_extras import ClassCurve, read_class_curves
from tui.jobfiles import JobData, member_samples, read_run_data
from tui.lowpass import lowpass, particle_apix
from tui.plots import PlotextPlot, plot_resolution_curve
from tui.selection_io import FilterSummary, ParticleFilter, Suggestion
from tui.stat_labels import STAT_LABELS, stat_lines

__all__ = ["ClassDetailScreen"]

N_SAMPLES = 6
LABEL_W = 28


class ClassDetailScreen(Screen[None]):
    """Shows class ``number`` of ``job``; space toggles it in the browser's grid."""

    BINDINGS = [
        Binding("space", "toggle_class", "Toggle"),
        Binding("left,p", "step(-1)", "Previous"),
        Binding("right,n", "step(1)", "Next"),
        Binding("r", "toggle_raw", "Raw/filtered"),
        Binding("escape,q,enter", "back", "Back"),
    ]

    _run_data_cache: dict[str, dict] = {}
    _curves_cache: dict[str, dict[int, ClassCurve]] = {}
    _reference_cache: dict[str, Any] = {}

    def __init__(
        self,
        job: JobData,
        number: int,
        grid: ClassGrid,
        suggestions: dict[int, Suggestion] | None = None,
        filter_state: Callable[[], tuple[ParticleFilter | None, bool, Any]] | None = None,
    ) -> None:
        """``filter_state()`` gives the browser's particle filter (None while the particles
        are read), whether it is on, and its thresholds."""
        super().__init__()
        self.job = job
        self.number = number
        self.grid = grid
        self.suggestions = suggestions or {}
        self.filter_state = filter_state
        self._filter: tuple[int, FilterSummary] | None = None
        self.raw = False
        """Show member particles unfiltered (else low-passed to the class's resolution)."""
        self._samples: tuple[int, list[np.ndarray]] | None = None

    @classmethod
    def prime_run_data(cls, job_dir: Any, particles: Any, optics: Any) -> None:
        """Reuse particles already read (by the browser) instead of reading them again."""
        cls._run_data_cache.clear()
        cls._run_data_cache[str(job_dir)] = {"particles": particles, "optics": optics}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="detail-top"):
            yield Vertical(id="detail-image")
            with Vertical(id="detail-side"):
                yield Static("", id="detail-stats")
                yield PlotextPlot(id="detail-ssnr")
        yield Static("Member particles (aligned to the class):", id="samples-title")
        yield Horizontal(id="detail-samples")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "twodclass — class detail"
        self._show()

    def _index(self) -> int:
        return next(i for i, c in enumerate(self.job.classes) if c.number == self.number)

    def _show(self) -> None:
        self.sub_title = f"class {self.number}"
        box = self.query_one("#detail-image", Vertical)
        box.remove_children()
        image = ImageView(self.job.images[self._index()], classes="detail-big")
        proj = self._reference_projection()
        if proj is None:
            box.mount(image)
        else:  # the class beside its best projection of the reference map
            box.styles.width = 2 * 44
            box.mount(Horizontal(image, ImageView(proj, classes="detail-big")))
        self._request_filter()
        self._update_stats()
        self.query_one("#detail-samples", Horizontal).remove_children()
        self._samples = None
        self._load_samples(self.number)
        self._show_curve()

    def _update_stats(self) -> None:
        c = self.job.classes[self._index()]
        total = max(self.job.n_particles, 1)
        res = f"{c.resolution_A:.1f} Å" if np.isfinite(c.resolution_A) else "–"
        lines = [
            f"[b]Class {c.number}[/b]  "
            + ("[reverse] selected [/]" if c.number in self.grid.selected else "not selected"),
            f"{'Particles':<{LABEL_W}} {c.count:,} ({100 * c.count / total:.1f} %)",
            *self._filter_lines(),
            f"{'Resolution':<{LABEL_W}} {res}",
        ]
        for label, value, _ in stat_lines(c.stats):
            lines.append(f"{escape(label):<{LABEL_W}} {escape(value)}")
        lines += self._reference_lines(c.stats)
        sug = self.suggestions.get(self.number)
        if sug is not None:
            lines.append("")
            lines.append(f"auto: {'keep' if sug.keep else 'drop'} — {escape(sug.reason)}")
        stats = self.query_one("#detail-stats", Static)
        stats.update("\n".join(lines))
        stats.tooltip = "\n".join(
            f"{v[0]} ({v[1] or 'no unit'}): {v[3]}" for v in STAT_LABELS.values()
        )

    # ------------------------------------------------------------------ reference map
    def _reference_projection(self) -> np.ndarray | None:
        """This class's best projection of the reference map (None if never scored)."""
        from engine.io.jobfolder import JobFiles
        from engine.select.reference_job import load_reference_scores

        path = JobFiles(self.job.job_dir).reference_projections
        key = f"{path}:{path.stat().st_mtime_ns if path.exists() else 0}"
        if key not in self._reference_cache:
            try:
                res = load_reference_scores(self.job.job_dir)
            except Exception:  # noqa: BLE001 - a missing or odd file: show the class alone
                res = None
            self._reference_cache.clear()
            self._reference_cache[key] = None if res is None else res.projections
        proj = self._reference_cache[key]
        return None if proj is None else proj[self._index()]

    @staticmethod
    def _reference_lines(stats: dict[str, Any]) -> list[str]:
        """``reference  single view 3 (structure 0.93)`` and the matching direction."""
        s = stats.get("tdcRefStructure")
        if not isinstance(s, (int, float)):
            return []
        verdict = str(stats.get("tdcRefVerdict", ""))
        what = f"single view {stats.get('tdcRefView')}" if verdict == "single" else verdict
        return [
            f"{'Reference map':<{LABEL_W}} {what} (structure {s:.2f}, "
            f"correlation {stats.get('tdcRefCorrelation', float('nan')):.2f})",
            f"{'  best projection':<{LABEL_W}} rot {stats.get('tdcRefRot', 0):.0f}°, "
            f"tilt {stats.get('tdcRefTilt', 0):.0f}°, psi {stats.get('tdcRefPsi', 0):.0f}°"
            " (shown on the right)",
        ]

    # ------------------------------------------------------------------ particle filter
    def _filter_ids(self) -> list[int]:
        """The selection the filter judges this class in: the browser's, with this class."""
        return sorted(self.grid.selected | {self.number})

    def _request_filter(self) -> None:
        self._filter = None
        if self.filter_state is None:
            return
        pf, on, th = self.filter_state()
        if pf is None or not on:
            return
        ids = self._filter_ids()
        got = pf.cached(ids, th)
        if got is not None:
            self._filter = (self.number, got)
        else:
            self._run_filter(pf, self.number, ids, th)

    @work(thread=True, exclusive=True, group="filter")
    def _run_filter(self, pf: ParticleFilter, number: int, ids: list[int], th: Any) -> None:
        summ = pf.summary(ids, th)
        self.app.call_from_thread(self._filter_ready, number, summ)

    def _filter_ready(self, number: int, summ: FilterSummary) -> None:
        if number == self.number and self.is_attached:
            self._filter = (number, summ)
            try:
                self._update_stats()
            except NoMatches:  # closed meanwhile
                pass

    def refresh_filter(self) -> None:
        """The browser's particle filter changed (e.g. the particles were read)."""
        self._request_filter()
        self._update_stats()

    def _filter_lines(self) -> list[str]:
        """``particle filter  2 removed`` and a line per reason (when the filter is on)."""
        if self.filter_state is None:
            return []
        pf, on, _ = self.filter_state()
        head = f"{'Particle filter':<{LABEL_W}} "
        if not on:
            return [head + "off"]
        if pf is None:
            return [head + "reading the particles…"]
        if self._filter is None or self._filter[0] != self.number:
            return [head + "counting…"]
        summ = self._filter[1]
        if summ.note:
            return [head + escape(f"did not run: {summ.note}")]
        _, gone, reasons = summ.for_class(self.number)
        when = "" if self.number in self.grid.selected else " if selected"
        return [
            head + f"{gone:,} removed{when}",
            *(f"  {v:,} {k}" for k, v in reasons.items() if v),
        ]

    @work(thread=True, exclusive=True, group="samples")
    def _load_samples(self, number: int) -> None:
        key = str(self.job.job_dir)
        try:
            rd = self._run_data_cache.get(key)
            if rd is None:
                rd = read_run_data(self.job.job_dir)
                self._run_data_cache.clear()
                self._run_data_cache[key] = rd
            samples = member_samples(self.job.job_dir, rd, number, N_SAMPLES, self.job.job)
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self._samples_failed, str(exc))
            return
        self.app.call_from_thread(self._show_samples, number, samples)

    def _samples_failed(self, message: str) -> None:
        self.query_one("#samples-title", Static).update(f"Member particles: {message}")

    def _show_samples(self, number: int, samples: list[np.ndarray]) -> None:
        if number != self.number:
            return
        self._samples = (number, samples)
        row = self.query_one("#detail-samples", Horizontal)
        row.remove_children()
        if not samples:
            self.query_one("#samples-title", Static).update(
                "Member particles: none found (images not reachable from here)"
            )
            return
        res = self.job.classes[self._index()].resolution_A
        shown = samples if self.raw else [self._filtered(s, res) for s in samples]
        how = (
            "unfiltered (r: low-pass)"
            if self.raw or not np.isfinite(res) or res >= 999
            else f"low-passed to {res:.1f} Å (r: raw)"
        )
        self.query_one("#samples-title", Static).update(
            f"Member particles (best {len(samples)}, aligned to the class, {how}):"
        )
        row.mount_all([ImageView(s, integer=False, classes="sample") for s in shown])

    def _filtered(self, img: np.ndarray, res_A: float) -> np.ndarray:
        cls_box = int(self.job.images.shape[-1])
        apix = particle_apix(self.job.apix_A, cls_box, int(img.shape[-1]))
        return lowpass(img, apix, res_A)

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        if self._samples is not None and self._samples[0] == self.number:
            self._show_samples(*self._samples)

    # ------------------------------------------------------------------ resolution curve
    def _show_curve(self) -> None:
        key = str(self.job.job_dir)
        curves = self._curves_cache.get(key)
        if curves is None:
            self._load_curves(key)
            return
        plot = self.query_one("#detail-ssnr", PlotextPlot)
        curve = curves.get(self.number)
        c = self.job.classes[self._index()]
        if curve is None:
            plot.display = False
            return
        plot.display = True
        plot_resolution_curve(plot, self.number, curve.inv_A, curve.ssnr, c.resolution_A)

    @work(thread=True, exclusive=True, group="curves")
    def _load_curves(self, key: str) -> None:
        try:
            curves = read_class_curves(self.job.job_dir)
        except Exception:  # noqa: BLE001 - the plot is optional
            curves = {}
        self.app.call_from_thread(self._curves_ready, key, curves)

    def _curves_ready(self, key: str, curves: dict[int, ClassCurve]) -> None:
        self._curves_cache.clear()
        self._curves_cache[key] = curves
        if self.is_attached:
            try:
                self._show_curve()
            except NoMatches:
                pass

    def action_toggle_class(self) -> None:
        sel = self.grid.selected
        if self.number in sel:
            sel.discard(self.number)
        else:
            sel.add(self.number)
        self.grid.refresh()
        self.grid.post_message(ClassGrid.SelectionChanged(self.grid))
        self._update_stats()

    def action_step(self, step: int) -> None:
        grid = self.grid
        if not grid.order:
            return
        grid.cursor = (grid.cursor + step) % len(grid.order)
        number = grid.current_number
        if number is not None:
            self.number = number
            self._show()

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand(
            "Toggle class", "Select or deselect this class", self.action_toggle_class
        )
        yield SystemCommand("Next class", "Show the next class", lambda: self.action_step(1))
        yield SystemCommand(
            "Previous class", "Show the previous class", lambda: self.action_step(-1)
        )
        yield SystemCommand(
            "Raw / low-passed particles",
            "Show the member particles unfiltered or low-passed to the class's resolution",
            self.action_toggle_raw,
        )

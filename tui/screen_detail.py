"""One class in detail: a larger image, its statistics, member particles aligned to it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui.class_grid import ClassGrid
from tui.image import HalfBlockImage, make_image
from tui.jobfiles import JobData, member_samples, read_run_data
from tui.selection_io import Suggestion

__all__ = ["ClassDetailScreen"]

N_SAMPLES = 6


class ClassDetailScreen(Screen[None]):
    """Shows class ``number`` of ``job``; space toggles it in the browser's grid."""

    BINDINGS = [
        Binding("space", "toggle", "Toggle"),
        Binding("left,p", "step(-1)", "Previous"),
        Binding("right,n", "step(1)", "Next"),
        Binding("escape,q,enter", "back", "Back"),
    ]

    _run_data_cache: dict[str, dict] = {}

    def __init__(self, job: JobData, number: int, grid: ClassGrid,
                 suggestions: dict[int, Suggestion] | None = None) -> None:
        super().__init__()
        self.job = job
        self.number = number
        self.grid = grid
        self.suggestions = suggestions or {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="detail-top"):
            yield Vertical(id="detail-image")
            yield Static("", id="detail-stats")
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
        box.mount(make_image(self.job.images[self._index()], classes="detail-big"))
        self._update_stats()
        self.query_one("#detail-samples", Horizontal).remove_children()
        self._load_samples(self.number)

    def _update_stats(self) -> None:
        c = self.job.classes[self._index()]
        total = max(self.job.n_particles, 1)
        lines = [
            f"[b]Class {c.number}[/b]  "
            + ("[reverse] selected [/]" if c.number in self.grid.selected else "not selected"),
            f"{'particles':<19} {c.count:,} ({100 * c.count / total:.1f} %)",
            f"{'resolution':<19} {c.resolution_A:.1f} Å",
            f"{'distribution':<19} {c.distribution:.4f}",
        ]
        for key, label in (("tdcEffectiveSampleSize", "eff. samples"),
                           ("tdcMeanMaxProb", "mean max prob"),
                           ("rlnAccuracyRotations", "acc. rotation"),
                           ("rlnAccuracyTranslationsAngst", "acc. shift Å")):
            v = c.stats.get(key)
            if isinstance(v, (int, float)):
                lines.append(f"{label:<19} {v:.3g}")
        for key, v in sorted(c.stats.items()):
            if key.startswith("tdc") and key not in ("tdcClassNumber", "tdcParticleCount",
                                                     "tdcEffectiveSampleSize", "tdcMeanMaxProb"):
                lines.append(f"{key[3:]:<19} {v:.3g}" if isinstance(v, float)
                             else f"{key[3:]:<19} {v}")
        sug = self.suggestions.get(self.number)
        if sug is not None:
            lines.append("")
            lines.append(f"auto: {'keep' if sug.keep else 'drop'} — {sug.reason}")
        self.query_one("#detail-stats", Static).update("\n".join(lines))

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
        row = self.query_one("#detail-samples", Horizontal)
        row.remove_children()
        if not samples:
            self.query_one("#samples-title", Static).update(
                "Member particles: none found (images not reachable from here)")
            return
        self.query_one("#samples-title", Static).update(
            f"Member particles (best {len(samples)}, aligned to the class):")
        row.mount_all([HalfBlockImage(s, classes="sample") for s in samples])

    def action_toggle(self) -> None:
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
        yield SystemCommand("Toggle class", "Select or deselect this class", self.action_toggle)
        yield SystemCommand("Next class", "Show the next class", lambda: self.action_step(1))
        yield SystemCommand("Previous class", "Show the previous class",
                            lambda: self.action_step(-1))

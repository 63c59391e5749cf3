"""The job's plots: class distribution (particles per class, sorted) and convergence
(changed assignments and log-likelihood per iteration)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header

from tui.job_extras import convergence
from tui.jobfiles import JobData
from tui.plots import PlotextPlot, plot_convergence, plot_distribution

__all__ = ["PlotsScreen"]


class PlotsScreen(Screen[None]):
    """Plots of ``job``; ``selected`` classes are drawn in a second colour."""

    BINDINGS = [Binding("escape,q,g", "back", "Back")]

    def __init__(self, job: JobData, selected: set[int] | None = None) -> None:
        super().__init__()
        self.job = job
        self.selected = set(selected or ())
        self.titles: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield PlotextPlot(id="plot-distribution")
        with Horizontal(id="plots-convergence"):
            yield PlotextPlot(id="plot-changed")
            yield PlotextPlot(id="plot-loglik")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "twodclass — plots"
        self.sub_title = str(self.job.job_dir)
        numbers = np.array([c.number for c in self.job.classes])
        counts = np.array([c.count for c in self.job.classes])
        conv = convergence(self.job.iterations)
        self.titles = {
            "distribution": plot_distribution(
                self.query_one("#plot-distribution", PlotextPlot), numbers, counts, self.selected
            ),
            "changed": plot_convergence(
                self.query_one("#plot-changed", PlotextPlot), conv, "changed"
            ),
            "loglik": plot_convergence(self.query_one("#plot-loglik", PlotextPlot), conv, "loglik"),
        }

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand("Back", "Return to the classes", self.action_back)

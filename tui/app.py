"""The twodclass terminal application: job form -> run -> class browser."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

__all__ = ["TwodclassApp"]


class TwodclassApp(App[int]):
    """``mode="job"``: start at the job form; ``mode="browse"``: open a job's classes;
    ``mode="resume"``: continue the job in ``job_dir`` and follow it; ``mode="run"``: run the
    engine command line ``argv`` and follow ``job_dir``."""

    CSS_PATH = Path(__file__).with_name("twodclass.tcss")
    TITLE = "twodclass"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(
        self,
        mode: str = "job",
        *,
        particles: Path | None = None,
        job_dir: Path | None = None,
        out_dir: Path | None = None,
        start_dir: Path | None = None,
        argv: list[str] | None = None,
        engine: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.particles = particles
        self.job_dir = job_dir
        self.out_dir = out_dir
        self.start_dir = start_dir
        self.argv = argv
        self.engine = engine
        """The engine's command prefix (default ``python -m engine``; tests use a stand-in)."""

    def on_mount(self) -> None:
        if self.mode == "browse":
            from tui.screen_browser import BrowserScreen

            assert self.job_dir is not None
            self.push_screen(BrowserScreen(self.job_dir, self.out_dir))
        elif self.mode in ("resume", "run"):
            from tui.engine_process import resume_argv
            from tui.screen_run import RunScreen

            assert self.job_dir is not None
            argv = self.argv or resume_argv(self.job_dir, self.engine)
            self.push_screen(RunScreen(argv, self.job_dir))
        else:
            from tui.screen_job import JobScreen

            self.push_screen(JobScreen(self.particles, self.job_dir, self.start_dir))

    def notify(self, message: str, **kwargs: Any) -> None:
        """As :meth:`App.notify`; with Kitty/Sixel images, the images under the toast are
        drawn again once it has gone (an overlay's removal repaints only the cells)."""
        super().notify(message, **kwargs)
        from tui.terminal import current

        if current().renderer.pixels:
            timeout = kwargs.get("timeout") or self.NOTIFICATION_TIMEOUT
            self.set_timer(float(timeout) + 0.5, self.repaint_images)

    def repaint_images(self) -> None:
        """Draw every image of the current screen again."""
        for widget in self.screen.query("ClassGrid, ImageView"):
            widget.refresh()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()

"""The run screen: the engine in a separate process, its progress, log and classes live."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, ProgressBar, Sparkline, Static
from textual.worker import Worker

from engine.io.jobfolder import JobFiles
from tui.class_grid import ClassGrid
from tui.engine_process import EngineEvent, EngineExited, EngineLog, resume_argv, stream_process
from tui.jobfiles import JobData, load_job

__all__ = ["RunScreen", "format_seconds"]


def format_seconds(s: float | None) -> str:
    if s is None or s != s or s < 0:
        return "–"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class RunScreen(Screen[None]):
    """Runs ``argv`` (an engine command line) and follows ``job_dir``."""

    BINDINGS = [
        Binding("c", "cancel", "Cancel"),
        Binding("r", "resume", "Resume"),
        Binding("b", "browse", "Browse classes"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, argv: list[str], job_dir: Path, cwd: Path | None = None) -> None:
        super().__init__()
        self.argv = argv
        self.job_dir = Path(job_dir)
        self.cwd = cwd
        self.running = False
        self.status = "starting"
        self.n_iterations: int | None = None
        self.iteration = 0
        self.changes: list[float] = []
        self.events: list[EngineEvent] = []
        self.job: JobData | None = None
        self._worker: Worker | None = None
        self._t0 = time.monotonic()
        self._got_done = False
        self.auto_browse = True
        """Open the class browser when the run finishes."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Starting the engine…", id="run-status")
        with Horizontal(id="run-top"):
            yield ProgressBar(total=100, show_eta=False, id="run-progress")
            yield Static("", id="run-eta")
        with Horizontal(id="run-body"):
            grid = ClassGrid(selectable=False, id="run-grid")
            grid.can_focus = False  # a live view: selecting happens in the browser
            yield grid
            with Vertical(id="run-side"):
                yield Static("Changed assignments", id="changes-title")
                yield Sparkline([], id="changes")
                yield Log(id="run-log", max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "twodclass — run"
        self.sub_title = str(self.job_dir)
        self._log("$ " + " ".join(self.argv[1:] if len(self.argv) > 1 else self.argv))
        if JobFiles(self.job_dir).model.exists():
            self._load_classes()
        self._start(self.argv)

    # ------------------------------------------------------------------ process
    def _start(self, argv: list[str]) -> None:
        self.running = True
        self.status = "running"
        self._t0 = time.monotonic()
        self._worker = self._run(argv)

    @work(exclusive=True, group="engine")
    async def _run(self, argv: list[str]) -> None:
        try:
            await stream_process(argv, self.post_message, cwd=self.cwd)
        except (OSError, ValueError) as exc:  # cannot start, or a broken pipe: say so
            self.post_message(EngineLog(f"cannot run the engine: {exc}"))
            self.post_message(EngineExited(None))

    def _log(self, line: str) -> None:
        self.query_one(Log).write_line(line)

    def _set_status(self, text: str) -> None:
        self.query_one("#run-status", Static).update(text, layout=False)

    @on(EngineLog)
    def _engine_log(self, message: EngineLog) -> None:
        self._log(message.line)

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        self.events.append(message)
        d = message.data
        kind = message.kind
        if kind == "start":
            self.n_iterations = d.get("n_iterations")
            self._log(
                f"{d.get('n_particles', '?')} particles, {d.get('n_classes', '?')} classes, "
                f"{self.n_iterations} iterations, box {d.get('box')} -> "
                f"{d.get('box_small')} px"
            )
        elif kind == "stage":
            text = d.get("message") or d.get("stage", "")
            self._log(f"[{d.get('stage', '')}] {text}")
            if self.running:
                self._set_status(f"{str(d.get('stage', '')).capitalize()}: {text}")
        elif kind == "progress":
            self._progress(d)
        elif kind == "iteration":
            self.iteration = int(d.get("iteration", self.iteration))
            f = d.get("changed_fraction")
            if isinstance(f, (int, float)):
                self.changes.append(float(f))
                self.query_one("#changes", Sparkline).data = list(self.changes)
                self.query_one("#changes-title", Static).update(
                    f"Changed assignments: {100 * f:.1f} %"
                )
            self._log(
                f"iteration {self.iteration}/{d.get('n_iterations', '?')} "
                f"({d.get('kind', '')}): changed {100 * float(f or 0):.1f} %, "
                f"T={d.get('temperature', '?')}"
            )
            self._progress(dict(d, done=1, total=1))
            self._load_classes()
        elif kind == "done":
            self._got_done = True
            self.status = "finished"
            self.query_one(ProgressBar).update(progress=100)
            self.query_one("#run-eta", Static).update(f"took {format_seconds(d.get('seconds'))}")
            self._set_status("Finished — b browses and selects classes")
            self._log(f"done in {format_seconds(d.get('seconds'))}")
            self._load_classes()
            self.notify("Classification finished")
        elif kind == "error":
            self.status = "failed"
            self._set_status(f"Failed: {d.get('message', '')}")
            self._log(f"ERROR: {d.get('message', '')}")
            self.notify(str(d.get("message", "engine error")), severity="error", timeout=10)

    def _progress(self, d: dict) -> None:
        n = d.get("n_iterations") or self.n_iterations
        it = d.get("iteration")
        if not n or it is None:
            return
        self.n_iterations = int(n)
        total = d.get("total") or 1
        frac = ((int(it) - 1) + float(d.get("done", 0)) / float(total)) / self.n_iterations
        self.query_one(ProgressBar).update(progress=min(100.0, 100.0 * frac))
        eta = format_seconds(d.get("eta_s"))
        self.query_one("#run-eta", Static).update(
            f"it {it}/{n} · {format_seconds(d.get('elapsed_s'))} · ETA {eta}", layout=False
        )
        if self.running and self.status == "running":
            self._set_status(f"Iteration {it} of {n}")

    @on(EngineExited)
    def _engine_exited(self, message: EngineExited) -> None:
        self.running = False
        if message.cancelled:
            self.status = "cancelled"
            self._set_status("Cancelled — r resumes from the last finished iteration")
            self._log("cancelled")
        elif message.returncode != 0 and self.status != "failed":
            self.status = "failed"
            self._set_status(
                "The engine could not be started (see the log)"
                if message.returncode is None
                else f"The engine stopped with exit status {message.returncode} (see the log)"
            )
        elif self.status == "running":
            self.status = "finished"
            self._set_status("Finished — b browses and selects classes")
        self._log(f"engine exited ({message.returncode})")
        if (
            self.status == "finished"
            and self._got_done
            and self.auto_browse
            and self.app.screen is self
        ):
            self.action_browse()  # the class browser is the screen after a run

    # ------------------------------------------------------------------ classes
    @work(thread=True, exclusive=True, group="classes")
    def _load_classes(self) -> None:
        try:
            job = load_job(self.job_dir)
        except Exception:  # noqa: BLE001 - files may be missing early on; next event retries
            return
        self.app.call_from_thread(self._show_classes, job)

    def _show_classes(self, job: JobData) -> None:
        self.job = job
        self.query_one(ClassGrid).show_classes(job.classes, job.images)

    # ------------------------------------------------------------------ actions
    def action_cancel(self) -> None:
        if not self.running or self._worker is None:
            self.notify("Nothing is running")
            return
        self._set_status("Cancelling…")
        self._worker.cancel()

    def action_resume(self) -> None:
        if self.running:
            self.notify("The job is running")
            return
        if self.status == "finished":
            self.notify("The job has finished: b browses its classes")
            return
        argv = resume_argv(self.job_dir, getattr(self.app, "engine", None))
        self._log("$ " + " ".join(argv[1:]))
        self._start(argv)

    def action_browse(self) -> None:
        if self.running:
            self.notify("Wait for the run to finish (or cancel it) to select classes")
            return
        if not JobFiles(self.job_dir).data.exists():
            self.notify(
                "No final assignment yet (run_data.star is written at the end)", severity="warning"
            )
            return
        from tui.screen_browser import BrowserScreen

        self.app.push_screen(BrowserScreen(self.job_dir))

    def action_back(self) -> None:
        if self.running:
            self.notify("The job is running: c cancels it first", severity="warning")
            return
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()

    def palette_commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand("Cancel run", "Stop the engine (it can be resumed)", self.action_cancel)
        yield SystemCommand(
            "Resume run", "Continue a cancelled job from its checkpoint", self.action_resume
        )
        yield SystemCommand(
            "Browse classes", "Select classes of the finished job", self.action_browse
        )

"""The job screen: pick the input particles, set the parameters, validate, start."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DirectoryTree, Footer, Header, Input, Label, Static

from engine.io.jobfolder import JobFiles
from engine.params import ClassifyParams
from tui.engine_process import resume_argv, run_argv
from tui.jobfiles import particle_info, read_job_json
from tui.param_form import ParamForm

__all__ = ["JobScreen", "ParticleTree", "default_job_dir"]

INPUT_SUFFIXES = (".star", ".cs")


class ParticleTree(DirectoryTree):
    """A directory tree that lists folders and particle files (.star, .cs) only."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            p
            for p in paths
            if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in INPUT_SUFFIXES)
        ]


def default_job_dir(base: Path) -> Path:
    """The first ``twodclass_jobNNN`` under ``base`` that does not exist yet (relative to the
    current folder when ``base`` is inside it)."""
    try:
        base = base.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    for i in range(1, 1000):
        p = base / f"twodclass_job{i:03d}"
        if not p.exists():
            return p
    return base / "twodclass_job"


class JobScreen(Screen[None]):
    """Set up a new classification job."""

    BINDINGS = [
        Binding("ctrl+r", "start", "Start"),
        Binding("ctrl+t", "focus_tree", "Pick input"),
        Binding("ctrl+e", "resume", "Resume job"),
        Binding("ctrl+b", "browse", "Browse job"),
    ]

    def __init__(
        self,
        particles: Path | None = None,
        job_dir: Path | None = None,
        start_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.start_dir = Path(start_dir) if start_dir is not None else Path.cwd()
        self.initial_particles = particles
        self.initial_job_dir = job_dir
        self.data_info: tuple[int, int, float] | None = None
        self.data_error: str | None = None
        self.problems: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="job-body"):
            with Vertical(id="picker"):
                yield Label("Input particles (.star / .cs)", id="picker-title")
                yield ParticleTree(self.start_dir, id="tree")
            with VerticalScroll(id="form"):
                with Horizontal(classes="field -path"):
                    yield Label("Input particles", classes="field-label")
                    yield Input(
                        str(self.initial_particles or ""),
                        id="input-path",
                        placeholder="pick a file on the left or type a path",
                    )
                yield Static("", id="data-info")
                with Horizontal(classes="field -path"):
                    yield Label("Job folder", classes="field-label")
                    yield Input(
                        str(self.initial_job_dir or default_job_dir(self.start_dir)), id="job-dir"
                    )
                yield ParamForm(id="params")
        yield Static("", id="field-help")
        yield Static("", id="errors")
        with Horizontal(id="start-row"):
            yield Button("Start", id="start", variant="success")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "twodclass — new 2D classification"
        self.sub_title = str(self.start_dir)
        if self.initial_particles is not None:
            self._probe(Path(self.initial_particles))
            self.query_one(ParamForm).query(Input).first().focus()
        else:
            self.query_one(ParticleTree).focus()
        self.validate()

    # ------------------------------------------------------------------ input file
    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#input-path", Input).value = str(event.path)
        self.query_one(ParamForm).query(Input).first().focus()

    @on(Input.Changed, "#input-path")
    def _input_changed(self, event: Input.Changed) -> None:
        text = event.value.strip()
        self.data_info = None
        self.data_error = None
        if text:
            self._probe(Path(text))
        self._show_info("")
        self.validate()

    @work(thread=True, exclusive=True, group="probe")
    def _probe(self, path: Path) -> None:
        if not path.is_file():
            self.app.call_from_thread(self._probed, path, None, "no such file")
            return
        if path.suffix.lower() not in INPUT_SUFFIXES:
            self.app.call_from_thread(self._probed, path, None, "not a .star or .cs file")
            return
        self.app.call_from_thread(self._show_info, f"reading {path.name}…")
        try:
            info = particle_info(path)
        except Exception as exc:  # noqa: BLE001 - any reader error is shown, not raised
            self.app.call_from_thread(self._probed, path, None, str(exc))
            return
        self.app.call_from_thread(self._probed, path, info, None)

    def _probed(self, path: Path, info: tuple[int, int, float] | None, error: str | None) -> None:
        if self.query_one("#input-path", Input).value.strip() != str(path):
            return  # the user moved on
        self.data_info, self.data_error = info, error
        if info is not None:
            n, box, apix = info
            self._show_info(f"{n:,} particles · box {box} px · {apix:g} Å/px ({box * apix:g} Å)")
        else:
            self._show_info("")
        self.validate()

    def _show_info(self, text: str) -> None:
        self.query_one("#data-info", Static).update(text)

    # ------------------------------------------------------------------ validation
    @on(ParamForm.Changed)
    @on(Input.Changed, "#job-dir")
    def _form_changed(self) -> None:
        self.validate()

    @on(ParamForm.HelpFor)
    def _help_for(self, event: ParamForm.HelpFor) -> None:
        s = event.spec
        default = "auto" if s.default is None else s.default
        self.query_one("#field-help", Static).update(
            f"{s.label} ({s.flag}, default {default}{' ' + s.unit if s.unit else ''}): {s.help}"
        )

    def read_params(self) -> ClassifyParams | None:
        params, _, _ = self.query_one(ParamForm).read()
        return params

    def validate(self) -> list[str]:
        """Check everything Start needs; show the problems; return them."""
        form = self.query_one(ParamForm)
        params, problems, bad = form.read()
        text = self.query_one("#input-path", Input).value.strip()
        if not text:
            problems.insert(0, "Input particles: pick a .star or .cs file")
        elif self.data_error:
            problems.insert(0, f"Input particles: {self.data_error}")
        elif self.data_info is None:
            problems.insert(0, "Input particles: still reading…")
        if params is not None:
            if self.data_info is not None:
                problems += map(str, params.validate_for_data(*self.data_info))
            else:
                problems += map(str, params.validate())
        job_dir = self.query_one("#job-dir", Input).value.strip()
        if not job_dir:
            problems.append("Job folder: a folder name is needed")
        elif Path(job_dir).exists() and any(Path(job_dir).iterdir()):
            problems.append(
                f"Job folder: {job_dir} is not empty (choose a new folder, "
                "or ctrl+e to resume / ctrl+b to browse it)"
            )
        for spec in form.specs:
            if any(spec.flag in p.split(" ")[0] for p in problems):
                bad.add(spec.name)
        form.mark_invalid(bad)
        self.problems = problems
        self.query_one("#errors", Static).update("\n".join(f"• {p}" for p in problems))
        return problems

    # ------------------------------------------------------------------ actions
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if self.validate():
            self.notify("Fix the problems listed above before starting", severity="warning")
            return
        params = self.read_params()
        assert params is not None
        particles = Path(self.query_one("#input-path", Input).value.strip())
        job_dir = Path(self.query_one("#job-dir", Input).value.strip())
        from tui.screen_run import RunScreen

        self.app.push_screen(
            RunScreen(run_argv(particles, job_dir, params, self._engine()), job_dir)
        )

    def _engine(self) -> list[str] | None:
        return getattr(self.app, "engine", None)

    def on_screen_resume(self) -> None:
        """Back from a run: propose a fresh job folder if the current one is taken now."""
        field = self.query_one("#job-dir", Input)
        path = Path(field.value.strip() or ".")
        if path.name.startswith("twodclass_job") and path.exists() and any(path.iterdir()):
            field.value = str(default_job_dir(self.start_dir))
        self.validate()

    def action_focus_tree(self) -> None:
        self.query_one(ParticleTree).focus()

    def _existing_job(self) -> Path | None:
        job_dir = Path(self.query_one("#job-dir", Input).value.strip() or ".")
        if not JobFiles(job_dir).job.exists():
            self.notify(f"{job_dir} holds no job (job.json is missing)", severity="warning")
            return None
        return job_dir

    def action_resume(self) -> None:
        job_dir = self._existing_job()
        if job_dir is None:
            return
        status = read_job_json(job_dir).get("status")
        if status == "finished":
            self.notify("That job has finished: ctrl+b browses its classes")
            return
        from tui.screen_run import RunScreen

        self.app.push_screen(RunScreen(resume_argv(job_dir, self._engine()), job_dir))

    def action_browse(self) -> None:
        job_dir = self._existing_job()
        if job_dir is None:
            return
        if not JobFiles(job_dir).model.exists():
            self.notify(f"{job_dir} has no classes yet", severity="warning")
            return
        from tui.screen_browser import BrowserScreen

        self.app.push_screen(BrowserScreen(job_dir))

    def palette_commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand(
            "Start run", "Validate the form and start the classification", self.action_start
        )
        yield SystemCommand("Pick input file", "Move to the file tree", self.action_focus_tree)
        yield SystemCommand(
            "Resume job", "Continue the cancelled job in the job folder", self.action_resume
        )
        yield SystemCommand(
            "Browse job", "Open the classes of the job in the job folder", self.action_browse
        )
        yield SystemCommand(
            "Show advanced parameters", "Expand the advanced section", self._expand_advanced
        )

    def _expand_advanced(self) -> None:
        from textual.widgets import Collapsible

        for c in self.query(Collapsible):
            c.collapsed = False

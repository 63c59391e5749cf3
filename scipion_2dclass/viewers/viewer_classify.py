"""Viewer of ProtTwoDClassify: montage, class distribution, convergence, terminal browser."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from pyworkflow.protocol.params import LabelParam
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, MessageView, ProtocolViewer, View

from engine.io.jobfolder import JobFiles

from .. import engine_executable
from ..protocols import ProtTwoDClassify
from .plots import job_figure

__all__ = ["FigureView", "TerminalView", "TwoDClassifyViewer", "browse_command", "terminal_command"]

# terminal emulators and how each one takes a command to run
_TERMINALS = (
    ("x-terminal-emulator", ["-e"]),
    ("gnome-terminal", ["--"]),
    ("konsole", ["-e"]),
    ("xfce4-terminal", ["-x"]),
    ("xterm", ["-e"]),
)


def browse_command(job_dir: str) -> list[str]:
    """``twodclass browse JOBDIR`` with the engine of this environment."""
    return [engine_executable(), "browse", os.path.abspath(job_dir)]


def terminal_command(job_dir: str, environ: dict | None = None) -> list[str] | None:
    """A command that opens the class browser in a new terminal window (None: no terminal).

    ``$TERMINAL`` wins (with ``-e``), then the usual emulators found on ``PATH``.
    """
    env = os.environ if environ is None else environ
    cmd = browse_command(job_dir)
    term = env.get("TERMINAL")
    if term and shutil.which(term, path=env.get("PATH")):
        return [term, "-e", *cmd]
    for name, flag in _TERMINALS:
        if shutil.which(name, path=env.get("PATH")):
            return [name, *flag, *cmd]
    return None


class FigureView(View):
    """Shows one figure of :func:`plots.job_figures` in a matplotlib window."""

    def __init__(self, job_dir: str, name: str) -> None:
        super().__init__()
        self.job_dir = job_dir
        self.name = name

    def figure(self, fig=None):
        """The figure (a headless ``matplotlib.figure.Figure`` unless ``fig`` is given)."""
        return job_figure(self.job_dir, self.name, fig=fig)

    def show(self) -> None:
        import matplotlib.pyplot as plt

        self.figure(fig=plt.figure(figsize=(9, 6)))
        plt.show(block=False)


class TerminalView(View):
    """Opens ``twodclass browse JOBDIR`` in a terminal window."""

    def __init__(self, job_dir: str) -> None:
        super().__init__()
        self.job_dir = job_dir
        self.command = terminal_command(job_dir)

    def show(self) -> None:
        if self.command is None:
            MessageView(
                f"No terminal emulator found. Run in a terminal:\n\n"
                f"{shlex.join(browse_command(self.job_dir))}",
                title="twodclass browse",
            ).show()
            return
        subprocess.Popen(self.command, start_new_session=True)


class TwoDClassifyViewer(ProtocolViewer):
    """Class averages, class distribution and convergence of a twodclass classification."""

    _label = "viewer twodclass 2D classification"
    _targets = [ProtTwoDClassify]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form) -> None:
        form.addSection(label="Visualization")
        form.addParam(
            "showClasses",
            LabelParam,
            label="Classes (Scipion viewer)",
            help="The output SetOfClasses2D in Scipion's class viewer.",
        )
        form.addParam(
            "showMontage",
            LabelParam,
            label="Class averages with counts",
            help="Every class average with its particle count and resolution "
            "(updates while the job runs).",
        )
        form.addParam(
            "showDistribution",
            LabelParam,
            label="Class distribution",
            help="Particles per class and the soft class distribution.",
        )
        form.addParam(
            "showConvergence",
            LabelParam,
            label="Convergence",
            help="Per-iteration changed fraction, log-likelihood, temperature and time.",
        )
        form.addParam(
            "openBrowser",
            LabelParam,
            label="Open terminal class browser",
            help="Runs `twodclass browse JOBDIR` in a terminal window: browse the "
            "classes and select them with the keyboard (works over SSH).",
        )

    def _getVisualizeDict(self) -> dict:
        return {
            "showClasses": self._showClasses,
            "showMontage": lambda *a: self._figure("montage"),
            "showDistribution": lambda *a: self._figure("distribution"),
            "showConvergence": lambda *a: self._figure("convergence"),
            "openBrowser": self._openBrowser,
        }

    def getJobDir(self) -> str:
        return self.protocol.getJobDir()

    def _figure(self, name: str) -> list[View]:
        job = self.getJobDir()
        if not JobFiles(job).model.exists():
            return [
                MessageView(
                    "No results yet: the job has not finished an iteration.", title="twodclass"
                )
            ]
        return [FigureView(job, name)]

    def _showClasses(self, *args) -> list[View]:
        if not hasattr(self.protocol, "outputClasses"):
            return self._figure("montage")
        from pwem.viewers.views import ClassesView

        out = self.protocol.outputClasses
        return [ClassesView(self.getProject(), out.strId(), out.getFileName())]

    def _openBrowser(self, *args) -> list[View]:
        return [TerminalView(self.getJobDir())]

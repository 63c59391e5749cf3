"""Progress reporting in one of four modes (:data:`MODES`):

- ``bar``: a bar with ETA redrawn on stderr (the default on a terminal);
- ``plain``: plain lines on stderr, one per stage and iteration, every warning, and a
  progress line at most every :data:`PLAIN_INTERVAL_S` within a long iteration (the default
  when stderr is not a terminal: batch and cluster jobs, ``2> log``);
- ``jsonl``: one JSON event per line on stdout (the terminal UI and Scipion read them);
- ``none``: warnings only.

The event format is documented in the README ("Progress events"). Warnings reach the user
in every mode: as ``twodclass: warning: ...`` lines on stderr, or in ``jsonl`` as a
``stage`` event with ``"stage": "warning"`` (so readers of the event stream show them as
they show stages). ETA counts particle visits (online batches plus full passes), so it
stays honest when iterations differ in size.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from engine.io.jobfolder import JobFiles

__all__ = ["Progress", "MODES", "default_mode", "PLAIN_INTERVAL_S"]

MODES = ("bar", "plain", "jsonl", "none")

#: seconds between two progress lines within one iteration in ``plain`` mode
PLAIN_INTERVAL_S = 60.0


def default_mode(stream: TextIO | None = None) -> str:
    """``bar`` when ``stream`` (stderr) is a terminal, else ``plain``."""
    s = stream or sys.stderr
    try:
        return "bar" if s.isatty() else "plain"
    except (AttributeError, ValueError):  # closed or unusual stream
        return "plain"


_NAMES = JobFiles(Path("."))  # file names the iteration events point to


def _fmt_s(s: float) -> str:
    s = max(0, int(round(s)))
    h, r = divmod(s, 3600)
    m, sec = divmod(r, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class Progress:
    """Reports in ``mode`` (one of :data:`MODES`): events to ``stream`` (stdout), lines to
    ``err`` (stderr)."""

    def __init__(
        self, mode: str = "bar", stream: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.mode = mode
        self.out = stream or sys.stdout
        self.err = err or sys.stderr
        self.t0 = time.perf_counter()
        self.total_visits = 0
        self.done_visits = 0
        self.n_iterations = 0
        self._last_draw = 0.0
        self._visits_at_iter_start = 0
        self._t_work0: float | None = None
        self._visits_work0 = 0
        self._last_line = time.perf_counter()
        self.warnings: list[str] = []

    # --- helpers ----------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def eta(self) -> float | None:
        if self._t_work0 is None:
            return None
        dv = self.done_visits - self._visits_work0
        if dv <= 0:
            return None
        rate = dv / max(time.perf_counter() - self._t_work0, 1e-9)
        return (self.total_visits - self.done_visits) / rate

    @property
    def _lines(self) -> bool:
        return self.mode in ("bar", "plain")

    def emit(self, event: str, **fields: Any) -> None:
        if self.mode == "jsonl":
            self.out.write(json.dumps({"event": event, **fields}) + "\n")
            self.out.flush()
        elif self._lines and event in ("stage", "error", "done", "start"):
            self._clear()
            if event == "stage":
                self.err.write(f"twodclass: {fields.get('message', fields.get('stage'))}\n")
            elif event == "start":
                self.err.write(
                    f"twodclass: {fields['n_particles']} particles, "
                    f"{fields['n_classes']} classes, {fields['n_iterations']} "
                    f"iterations, box {fields['box']} -> {fields['box_small']} px\n"
                )
            elif event == "done":
                self.err.write(
                    f"twodclass: finished in {_fmt_s(fields['seconds'])} -> {fields['job_dir']}\n"
                )
            self.err.flush()

    def _clear(self) -> None:
        if self.mode == "bar" and self._last_draw:
            self.err.write("\r\033[K")

    # --- engine callbacks -------------------------------------------------------------
    def start(self, **fields: Any) -> None:
        self.n_iterations = int(fields.get("n_iterations", 0))
        self.total_visits = int(fields.pop("total_visits", 0))
        self.done_visits = int(fields.pop("done_visits", 0))
        self.emit("start", **fields)

    def stage(self, stage: str, message: str) -> None:
        self.emit("stage", stage=stage, message=message)

    def warn(self, message: str) -> None:
        """A warning: shown in every mode (stderr line; ``stage`` event in ``jsonl``)."""
        self.warnings.append(message)
        if self.mode == "jsonl":
            self.emit("stage", stage="warning", message=message, warning=True)
            return
        self._clear()
        self.err.write(f"twodclass: warning: {message}\n")
        self.err.flush()
        self._last_draw = 0.0

    def block(self, iteration: int, done: int, total: int) -> None:
        """Called after each block of particles of an iteration."""
        if self._t_work0 is None:
            self._t_work0 = time.perf_counter()
            self._visits_work0 = self.done_visits
        self.done_visits = self._visits_at_iter_start + done
        now = time.perf_counter()
        if now - self._last_draw < 0.2 and done < total:
            return
        eta = self.eta()
        if self.mode == "jsonl":
            self.emit(
                "progress",
                iteration=iteration,
                n_iterations=self.n_iterations,
                done=done,
                total=total,
                elapsed_s=round(self.elapsed(), 2),
                eta_s=None if eta is None else round(eta, 1),
            )
        elif self.mode == "plain":
            if now - self._last_line >= PLAIN_INTERVAL_S and done < total:
                frac = self.done_visits / max(self.total_visits, 1)
                eta_s = "--:--" if eta is None else _fmt_s(eta)
                self.err.write(
                    f"iter {iteration}/{self.n_iterations}: {done}/{total} particles, "
                    f"{100 * frac:.1f}% of the run, elapsed {_fmt_s(self.elapsed())}, "
                    f"ETA {eta_s}\n"
                )
                self.err.flush()
                self._last_line = now
        elif self.mode == "bar":
            frac = self.done_visits / max(self.total_visits, 1)
            width = 30
            fill = int(round(frac * width))
            bar = "#" * fill + "-" * (width - fill)
            eta_s = "--:--" if eta is None else _fmt_s(eta)
            self.err.write(
                f"\riter {iteration}/{self.n_iterations} [{bar}] {100 * frac:5.1f}% "
                f"elapsed {_fmt_s(self.elapsed())} ETA {eta_s}"
            )
            self.err.flush()
        self._last_draw = now

    def iteration(self, info: dict[str, Any]) -> None:
        self._visits_at_iter_start = self.done_visits
        eta = self.eta()
        fields = dict(info)
        fields.update(
            n_iterations=self.n_iterations,
            elapsed_s=round(self.elapsed(), 2),
            eta_s=None if eta is None else round(eta, 1),
            classes_file=_NAMES.classes.name,
            model_file=_NAMES.model.name,
        )
        if self.mode == "jsonl":
            self.emit("iteration", **fields)
        elif self._lines:
            self._clear()
            self.err.write(
                f"iter {info['iteration']:3d}/{self.n_iterations} {info['kind']:6s} "
                f"T={info['temperature']:.2f} changed={info['changed_fraction']:.3f} "
                f"logL={info['mean_loglik']:.1f} ({info['seconds']:.1f} s)\n"
            )
            self._last_draw = 0.0
            self._last_line = time.perf_counter()
            self.err.flush()

"""Class selection for the browser: the automatic suggestion, view coverage, saving.

Everything is delegated to the engine's shared implementation (:mod:`engine.select.selection`,
also behind ``twodclass select``): ``auto_select`` (a decision and a reason per class),
``view_coverage``, ``particle_outliers`` (the per-particle filter) and ``write_selection``
(the selection files). Only when the engine's automatic selection fails (e.g. an unusual
job folder) does the browser fall back to a simple rule: count >= max(20, 1 % of the
particles) and resolution better than 20 Å.

The particle filter is on by default, as in ``twodclass select``. :class:`ParticleFilter`
holds the few columns of ``run_data.star`` it needs and memoises a small
:class:`FilterSummary` per selection, so that the browser can show the particle count after
the filter without keeping every verdict (compute it from a thread: 200,000 particles take
~30 ms).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tui.jobfiles import ClassInfo, JobData

__all__ = [
    "Suggestion",
    "AutoSelection",
    "auto_suggest",
    "simple_rule",
    "coverage_summary",
    "save_selection",
    "filter_thresholds",
    "FilterSummary",
    "ParticleFilter",
    "FILTER_COLUMNS",
]

#: the columns of ``run_data.star`` the particle filter reads
FILTER_COLUMNS = ("rlnClassNumber", "tdcResidualLowRes", "tdcSignalLowRes")


@dataclass(frozen=True)
class Suggestion:
    """The automatic decision for one class and why."""

    keep: bool
    reason: str


@dataclass
class AutoSelection:
    """Decisions for every class; ``table`` is ``engine.select.selection.auto_select``'s output."""

    suggestions: dict[int, Suggestion] = field(default_factory=dict)
    table: Any = None
    source: str = "engine"
    error: str | None = None

    @property
    def keep(self) -> list[int]:
        return sorted(n for n, s in self.suggestions.items() if s.keep)

    def family(self, number: int) -> int | None:
        """The view family of class ``number`` (classes showing the same view), if known."""
        if self.table is None or "family" not in self.table.columns:
            return None
        rows = self.table.loc[self.table["class_number"] == int(number), "family"]
        return int(rows.iloc[0]) if len(rows) else None


def auto_suggest(job: JobData) -> AutoSelection:
    """Run the engine's explained automatic selection (slow-ish: call from a thread)."""
    try:
        from engine.select import auto_select

        table = auto_select(job.engine_job if job.engine_job is not None else job.job_dir)
        sug = {
            int(r.class_number): Suggestion(bool(r.selected), str(r.reason))
            for r in table.itertuples()
        }
        return AutoSelection(sug, table, "engine")
    except Exception as exc:  # noqa: BLE001 - never lose the browser over the suggestion
        return AutoSelection(simple_rule(job.classes), None, "simple rule", str(exc))


def simple_rule(
    classes: list[ClassInfo],
    min_count: int = 20,
    min_fraction: float = 0.01,
    max_res_A: float = 20.0,
) -> dict[int, Suggestion]:
    """Keep classes with count >= max(20, 1% of particles) and resolution better than 20 Å."""
    total = sum(c.count for c in classes)
    need = max(min_count, int(np.ceil(min_fraction * total)))
    out = {}
    for c in classes:
        if c.count < need:
            out[c.number] = Suggestion(False, f"too few particles ({c.count} < {need})")
        elif not c.resolution_A < max_res_A:
            out[c.number] = Suggestion(
                False, f"resolution {c.resolution_A:.1f} Å > {max_res_A:g} Å"
            )
        else:
            out[c.number] = Suggestion(True, "ok")
    return out


def coverage_summary(auto: AutoSelection | None, selected: set[int]) -> tuple[str, list[str]]:
    """``("4 of 5 views kept", [warnings])`` for a selection; empty without the engine table."""
    if auto is None or auto.table is None:
        return "", []
    try:
        from engine.select import view_coverage

        cov = view_coverage(auto.table, sorted(selected))
    except Exception:  # noqa: BLE001
        return "", []
    return cov.summary(), list(cov.warnings)


def filter_thresholds(auto: AutoSelection | None) -> Any:
    """The particle filter's thresholds: the automatic table's, else the defaults.

    Returns an ``engine.select.selection.SelectionThresholds``.
    """
    from engine.select import SelectionThresholds

    th = None if auto is None or auto.table is None else auto.table.attrs.get("thresholds")
    if th:
        try:
            return SelectionThresholds.from_dict(th)
        except Exception:  # noqa: BLE001 - an odd record: fall back to the defaults
            pass
    return SelectionThresholds()


@dataclass(frozen=True)
class FilterSummary:
    """What the particle filter does to one selection: a small digest of a
    ``ParticleVerdict`` (counts only, per reason and per class).

    ``note`` is non-empty when the filter did not run (then nothing is removed).
    """

    n_in_classes: int
    n_kept: int
    removed: dict[str, int] = field(default_factory=dict)
    note: str = ""
    in_class: dict[int, int] = field(default_factory=dict)
    """particles per selected class"""
    by_class: dict[int, dict[str, int]] = field(default_factory=dict)
    """removed particles per class and reason"""

    @property
    def n_removed(self) -> int:
        return self.n_in_classes - self.n_kept

    def reasons_text(self, removed: dict[str, int] | None = None) -> str:
        """``"3 excess low-resolution power, 2 weak signal"`` (reasons with a count only)."""
        rem = self.removed if removed is None else removed
        return ", ".join(f"{n:,} {k}" for k, n in rem.items() if n)

    def text(self) -> str:
        """One line: how many the filter removed and why, or why it did not run."""
        if self.note:
            return f"particle filter did not run: {self.note}"
        reasons = self.reasons_text()
        return (
            f"{self.n_removed:,} of the {self.n_in_classes:,} particles removed by the "
            f"particle filter" + (f" ({reasons})" if reasons else "")
        )

    def for_class(self, number: int) -> tuple[int, int, dict[str, int]]:
        """``(particles of the class, removed, {reason: removed})``."""
        by = self.by_class.get(int(number), {})
        return self.in_class.get(int(number), 0), sum(by.values()), dict(by)

    @classmethod
    def from_verdict(cls, verdict: Any, classes: np.ndarray) -> FilterSummary:
        """Digest an ``engine.select.ParticleVerdict``; ``classes`` is the class number
        of every row it judged."""
        in_cls = np.asarray(verdict.in_classes, bool)
        nums, cnt = np.unique(classes[in_cls], return_counts=True)
        gone = np.flatnonzero(in_cls & ~np.asarray(verdict.keep, bool))
        by_class: dict[int, dict[str, int]] = {}
        for c, r in zip(classes[gone].tolist(), verdict.reason[gone].tolist(), strict=True):
            label = str(r).split(" (", 1)[0]
            d = by_class.setdefault(int(c), {})
            d[label] = d.get(label, 0) + 1
        return cls(
            int(in_cls.sum()),
            int(np.count_nonzero(verdict.keep)),
            {str(k): int(v) for k, v in verdict.removed.items()},
            str(verdict.note),
            {int(k): int(v) for k, v in zip(nums.tolist(), cnt.tolist(), strict=True)},
            by_class,
        )


class ParticleFilter:
    """The particle filter over one job's particles (``engine.select.particle_outliers``).

    Keeps only :data:`FILTER_COLUMNS` of ``run_data.star`` and the last few summaries
    (thread-safe). Built with ``data=None`` and a ``note`` when the particles cannot be read:
    every summary then says so and removes nothing.
    """

    CACHE = 16

    def __init__(self, data: Any = None, note: str = "") -> None:
        self.note = note
        self._data = None
        self._classes = np.zeros(0, np.int64)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, FilterSummary] = OrderedDict()
        if data is not None:
            cols = [c for c in data.columns if str(c).lstrip("_") in FILTER_COLUMNS]
            slim = data[cols].copy()
            slim.columns = [str(c).lstrip("_") for c in cols]
            if "rlnClassNumber" not in slim.columns:
                self.note = "no rlnClassNumber column in the particle file: nothing removed"
            else:
                slim["rlnClassNumber"] = slim["rlnClassNumber"].astype(np.int64)
                self._classes = slim["rlnClassNumber"].to_numpy()
                self._data = slim
        elif not note:
            self.note = "no particle file (run_data.star): nothing removed"

    @staticmethod
    def _key(class_ids: Iterable[int], thresholds: Any) -> tuple:
        return (
            frozenset(int(c) for c in class_ids),
            float(thresholds.max_residual_z),
            float(thresholds.min_signal_z),
        )

    def cached(self, class_ids: Iterable[int], thresholds: Any) -> FilterSummary | None:
        """The summary if it is known already (cheap: call from the UI thread)."""
        key = self._key(class_ids, thresholds)
        with self._lock:
            s = self._cache.get(key)
            if s is not None:
                self._cache.move_to_end(key)
            return s

    def summary(self, class_ids: Iterable[int], thresholds: Any) -> FilterSummary:
        """Run the filter for the selection ``class_ids`` (tens of ms: call from a thread)."""
        ids = sorted({int(c) for c in class_ids})
        got = self.cached(ids, thresholds)
        if got is not None:
            return got
        if self._data is None:
            s = FilterSummary(0, 0, {}, self.note)
        else:
            try:
                from engine.select import particle_outliers

                verdict = particle_outliers(self._data, ids, thresholds)
                s = FilterSummary.from_verdict(verdict, self._classes)
            except Exception as exc:  # noqa: BLE001 - never lose the browser over it
                s = FilterSummary(0, 0, {}, f"failed ({exc}): nothing removed")
        key = self._key(ids, thresholds)
        with self._lock:
            self._cache[key] = s
            while len(self._cache) > self.CACHE:
                self._cache.popitem(last=False)
        return s


def save_selection(
    job: JobData,
    class_ids: list[int],
    out_dir: Path | None = None,
    auto: AutoSelection | None = None,
    particle_filter: bool = True,
) -> dict[str, Any]:
    """Write the selection files (``engine.select.write_selection``) and summarise.

    When the selection equals the automatic suggestion, its thresholds and resolution limit
    are recorded too (``selection.json`` ``mode: auto``); reasons are recorded in any case.
    With ``particle_filter`` (the default, as ``twodclass select``) the particles the filter
    removes (thresholds: :func:`filter_thresholds`) go to ``particles_removed.star``
    instead of ``particles_selected.star``.
    """
    from engine.errors import InputError
    from engine.select import (
        SelectionThresholds,
        load_selection,
        view_coverage,
        write_selection,
    )

    ids = sorted(int(c) for c in class_ids)
    kwargs: dict[str, Any] = {}
    if auto is not None and auto.suggestions:
        kwargs["reasons"] = {c: auto.suggestions[c].reason for c in ids if c in auto.suggestions}
        if auto.table is not None:
            kwargs["coverage"] = view_coverage(auto.table, ids)
            if ids == auto.keep:
                th = auto.table.attrs.get("thresholds")
                kwargs["thresholds"] = SelectionThresholds.from_dict(th) if th else None
                kwargs["resolution_limit_A"] = auto.table.attrs.get("max_res_A")
    source = (
        job.engine_job
        if job.engine_job is not None and getattr(job.engine_job, "data", None) is not None
        else job.job_dir
    )
    if particle_filter:
        kwargs["particle_filter"] = filter_thresholds(auto)
    paths = write_selection(source, ids, out_dir, **kwargs)
    counts = {c.number: c.count for c in job.classes}
    res: dict[str, Any] = {
        "out_dir": Path(paths["json"]).parent,
        "n_classes": len(ids),
        "n_particles": int(sum(counts.get(c, 0) for c in ids)),
        "paths": paths,
        "particle_filter": None,
    }
    try:
        info = load_selection(Path(paths["json"]).parent)
    except InputError:
        return res
    if info is None:
        return res
    if isinstance(info.get("n_particles"), int):
        res["n_particles"] = info["n_particles"]
    res["particle_filter"] = info.get("particle_filter")
    return res

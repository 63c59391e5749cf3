"""Class selection for the browser: the automatic suggestion, view coverage, saving.

Everything is delegated to the engine's shared implementation (:mod:`engine.selection`,
also behind ``twodclass select``): ``auto_select`` (a decision and a reason per class),
``view_coverage`` and ``write_selection`` (the four selection files). Only when the
engine's automatic selection fails (e.g. an unusual job folder) does the browser fall back
to a simple rule: count >= max(20, 1 % of the particles) and resolution better than 20 Å.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tui.jobfiles import ClassInfo, JobData

__all__ = ["Suggestion", "AutoSelection", "auto_suggest", "simple_rule", "coverage_summary",
           "save_selection"]


@dataclass(frozen=True)
class Suggestion:
    """The automatic decision for one class and why."""

    keep: bool
    reason: str


@dataclass
class AutoSelection:
    """Decisions for every class; ``table`` is ``engine.selection.auto_select``'s output."""

    suggestions: dict[int, Suggestion] = field(default_factory=dict)
    table: Any = None
    source: str = "engine"
    error: str | None = None

    @property
    def keep(self) -> list[int]:
        return sorted(n for n, s in self.suggestions.items() if s.keep)


def auto_suggest(job: JobData) -> AutoSelection:
    """Run the engine's explained automatic selection (slow-ish: call from a thread)."""
    try:
        from engine.selection import auto_select

        table = auto_select(job.engine_job if job.engine_job is not None else job.job_dir)
        sug = {int(r.class_number): Suggestion(bool(r.selected), str(r.reason))
               for r in table.itertuples()}
        return AutoSelection(sug, table, "engine")
    except Exception as exc:  # noqa: BLE001 - never lose the browser over the suggestion
        return AutoSelection(simple_rule(job.classes), None, "simple rule", str(exc))


def simple_rule(classes: list[ClassInfo], min_count: int = 20,
                min_fraction: float = 0.01, max_res_A: float = 20.0) -> dict[int, Suggestion]:
    """Keep classes with count >= max(20, 1% of particles) and resolution better than 20 Å."""
    total = sum(c.count for c in classes)
    need = max(min_count, int(np.ceil(min_fraction * total)))
    out = {}
    for c in classes:
        if c.count < need:
            out[c.number] = Suggestion(False, f"too few particles ({c.count} < {need})")
        elif not c.resolution_A < max_res_A:
            out[c.number] = Suggestion(False, f"resolution {c.resolution_A:.1f} Å "
                                              f"> {max_res_A:g} Å")
        else:
            out[c.number] = Suggestion(True, "ok")
    return out


def coverage_summary(auto: AutoSelection | None, selected: set[int]) -> tuple[str, list[str]]:
    """``("4 of 5 views kept", [warnings])`` for a selection; empty without the engine table."""
    if auto is None or auto.table is None:
        return "", []
    try:
        from engine.selection import view_coverage

        cov = view_coverage(auto.table, sorted(selected))
    except Exception:  # noqa: BLE001
        return "", []
    return cov.summary(), list(cov.warnings)


def save_selection(job: JobData, class_ids: list[int], out_dir: Path | None = None,
                   auto: AutoSelection | None = None) -> dict[str, Any]:
    """Write the selection files (``engine.selection.write_selection``) and summarise.

    When the selection equals the automatic suggestion, its thresholds and resolution limit
    are recorded too (``selection.json`` ``mode: auto``); reasons are recorded in any case.
    """
    from engine.selection import SelectionThresholds, view_coverage, write_selection

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
    source = job.engine_job if job.engine_job is not None and \
        getattr(job.engine_job, "data", None) is not None else job.job_dir
    paths = write_selection(source, ids, out_dir, **kwargs)
    counts = {c.number: c.count for c in job.classes}
    return {"out_dir": Path(paths["json"]).parent, "n_classes": len(ids),
            "n_particles": int(sum(counts.get(c, 0) for c in ids)), "paths": paths}

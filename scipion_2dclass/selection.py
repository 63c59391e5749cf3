"""Class selection by criteria, and the bridge to the engine's automatic selection.

Pure Python (no Scipion objects): :func:`decide` takes one :class:`ClassSummary` per class and
returns one :class:`Decision` (keep or reject, with reasons). :func:`auto_decisions` calls
``engine.select.selection.auto_select(job_dir)`` when the classes come from a twodclass job
folder and gives its answer as ``{class number: (keep, reason)}``.
:func:`particle_filter` applies the engine's per-particle filter
(``engine.select.particle_outliers``) to the selected classes of a job and names the
removed particles by their Scipion ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import TwodclassError
from engine.io.jobfolder import JobFiles

__all__ = [
    "FILTER_FIELDS",
    "ClassSummary",
    "Decision",
    "FilterOutcome",
    "auto_decisions",
    "decide",
    "find_job_dir",
    "parse_ids",
    "particle_filter",
    "saved_selection",
    "saved_filter_thresholds",
]

#: the fields of ``engine.select.selection.SelectionThresholds`` that drive the particle filter
FILTER_FIELDS = ("max_residual_z", "min_signal_z")


@dataclass(frozen=True)
class ClassSummary:
    class_id: int
    size: int
    resolution_A: float | None = None


@dataclass
class Decision:
    class_id: int
    keep: bool
    reasons: list[str] = field(default_factory=list)

    def describe(self) -> str:
        verdict = "kept" if self.keep else "rejected"
        return f"class {self.class_id}: {verdict}" + (
            f" ({'; '.join(self.reasons)})" if self.reasons else ""
        )


def parse_ids(text: str | None) -> set[int]:
    """``'1 3-5, 8'`` -> ``{1, 3, 4, 5, 8}``; empty -> empty set."""
    out: set[int] = set()
    for tok in (text or "").replace(",", " ").split():
        if "-" in tok.strip("-"):
            a, b = tok.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(tok))
    return out


def decide(
    classes: Iterable[ClassSummary],
    *,
    min_particles: int = 0,
    max_resolution_A: float = 0.0,
    keep_ids: Iterable[int] = (),
    reject_ids: Iterable[int] = (),
    only_listed: bool = False,
    auto: Mapping[int, tuple[bool, str]] | None = None,
    saved: Iterable[int] | None = None,
) -> list[Decision]:
    """Decide every class. Explicit ids win, then a selection saved in the terminal browser
    (``saved``: kept exactly), then the criteria: a class passes when it has at least
    ``min_particles`` (0 = off), a resolution better than or equal to ``max_resolution_A``
    (0 = off) and is kept by the automatic selection (if given)."""
    keep_ids, reject_ids = set(keep_ids), set(reject_ids)
    saved = set(saved) if saved is not None else None
    out = []
    for c in classes:
        if c.class_id in reject_ids:
            out.append(Decision(c.class_id, False, ["rejected by id"]))
            continue
        if c.class_id in keep_ids:
            out.append(Decision(c.class_id, True, ["kept by id"]))
            continue
        if saved is not None:
            out.append(
                Decision(
                    c.class_id,
                    c.class_id in saved,
                    [
                        "selected in the terminal browser"
                        if c.class_id in saved
                        else "not selected in the terminal browser"
                    ],
                )
            )
            continue
        if only_listed:
            out.append(Decision(c.class_id, False, ["not in the list of classes to keep"]))
            continue
        reasons = []
        if min_particles > 0 and c.size < min_particles:
            reasons.append(f"{c.size} particles < minimum {min_particles}")
        if max_resolution_A > 0:
            if c.resolution_A is None or c.resolution_A <= 0:
                reasons.append("no resolution estimate")
            elif c.resolution_A > max_resolution_A:
                reasons.append(
                    f"resolution {c.resolution_A:.1f} Å worse than {max_resolution_A:g} Å"
                )
        if auto is not None and c.class_id in auto:
            ok, why = auto[c.class_id]
            if not ok:
                reasons.append(f"automatic: {why}" if why else "automatic selection")
        out.append(Decision(c.class_id, not reasons, reasons))
    return out


# ---------------------------------------------------------------------- automatic
def find_job_dir(classes_file: str | None) -> str | None:
    """The twodclass job folder holding a class-average stack, if it is one."""
    if not classes_file:
        return None
    d = os.path.dirname(os.path.abspath(classes_file))
    files = JobFiles(d)
    if files.model.exists() and files.data.exists():
        return d
    return None


def auto_decisions(job_dir: str | None) -> tuple[dict[int, tuple[bool, str]] | None, str]:
    """``(decisions, note)``: the engine's automatic selection of a job
    (``{class number: (keep, reason)}``), or ``None`` and why."""
    if job_dir is None:
        return None, "the classes do not come from a twodclass job folder"
    from engine.select import auto_select

    table = auto_select(job_dir)
    decisions = {
        int(k): (bool(keep), str(why))
        for k, keep, why in zip(
            table["class_number"], table["selected"], table["reason"], strict=True
        )
    }
    return decisions, f"automatic selection of {job_dir}"


def saved_selection(job_dir: str | None) -> tuple[set[int] | None, str]:
    """``(class ids, note)`` saved by ``twodclass browse`` (``selection.json``), or None."""
    if job_dir is None:
        return None, "the classes do not come from a twodclass job folder"
    try:
        from engine.select import load_selection
    except ImportError as exc:
        return None, f"engine.select.selection is not available ({exc})"
    info = load_selection(job_dir)
    if info is None:
        return None, (
            f"no selection saved in {job_dir}: open the terminal class browser "
            f"(viewer of the classification), select classes and save them (s)"
        )
    return set(info["class_ids"]), f"selection saved in the terminal browser ({job_dir})"


def saved_filter_thresholds(job_dir: str | None) -> Any:
    """The particle filter of the selection saved by ``twodclass browse``: an
    ``engine.select.selection.SelectionThresholds`` with its thresholds, or None when it was saved
    with the filter off (or before the filter existed, or nothing is saved)."""
    if job_dir is None:
        return None
    from engine.select import SelectionThresholds, load_selection

    info = load_selection(job_dir)
    pf = None if info is None else info.get("particle_filter")
    if not isinstance(pf, dict):
        return None
    return SelectionThresholds(**{n: float(pf[n]) for n in FILTER_FIELDS if n in pf})


# ---------------------------------------------------------------------- particle filter
@dataclass
class FilterOutcome:
    """The particle filter's answer for the selected classes of a job.

    ``removed``: Scipion particle id -> why it was removed; ``summary``: one line (how many
    were removed and why, or why the filter did not run: ``note``); ``info``: the engine's
    ``ParticleVerdict.to_dict()`` plus the thresholds (for the record, small).
    """

    applied: bool
    summary: str
    note: str = ""
    removed: dict[int, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return dict(self.info.get("removed", {}))


def _not_run(note: str, info: Mapping[str, Any]) -> FilterOutcome:
    return FilterOutcome(
        False, f"particle filter: {note}", note, info={**info, "applied": False, "note": note}
    )


def particle_filter(
    job_dir: str | None, class_ids: Iterable[int], thresholds: Any, enabled_ids: Any
) -> FilterOutcome:
    """Outlier particles of the classes ``class_ids`` of a twodclass job, by Scipion id.

    ``thresholds``: an ``engine.select.selection.SelectionThresholds`` (its :data:`FILTER_FIELDS`
    matter), or None for "switched off". ``enabled_ids``: the enabled input particles' ids
    in increasing order, or a function returning them; used to map the rows of
    ``run_data.star`` to particles only when the rows carry no ``_tdcScipionId``
    (:func:`scipion_2dclass.convert.row_scipion_ids`). Never raises for a job it cannot
    use: nothing is removed and ``note`` says why.
    """
    from engine.select import FILTER_OFF, particle_outliers

    from .convert import read_job, row_scipion_ids

    if thresholds is None:
        return FilterOutcome(False, FILTER_OFF, "off", info={"applied": False, "note": "off"})
    limits = {name: float(getattr(thresholds, name)) for name in FILTER_FIELDS}
    if job_dir is None:
        return _not_run(
            "the classes do not come from a twodclass job folder: nothing removed", limits
        )

    try:
        data = read_job(job_dir).data
    except (OSError, ValueError, TwodclassError) as exc:
        return _not_run(f"cannot read the particles of {job_dir} ({exc}): nothing removed", limits)
    verdict = particle_outliers(data, [int(c) for c in class_ids], thresholds)
    info = verdict.to_dict()  # with the thresholds it applied
    if verdict.note:
        return _not_run(verdict.note, info)
    ids = row_scipion_ids(data, enabled_ids)
    if ids is None:
        return _not_run(
            f"the {len(data)} rows of {JobFiles(job_dir).data.name} do not match the input "
            f"particles of the classes: nothing removed",
            limits,
        )
    gone = verdict.in_classes & ~verdict.keep
    removed = {int(i): str(r) for i, r in zip(ids[gone], verdict.reason[gone], strict=True)}
    return FilterOutcome(True, verdict.summary(), "", removed, info)

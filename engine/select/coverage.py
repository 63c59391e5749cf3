"""Which view families a selection keeps (:func:`view_coverage`): a selection that drops
the last class of a view loses that view, and says so."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ViewCoverage", "view_coverage"]


@dataclass
class ViewCoverage:
    """Which view families a selection keeps.

    Attributes
    ----------
    n_families : int
        View families with at least one particle-like class.
    kept : list[int]
        Those with at least one selected class.
    dropped : list[int]
        Those without (the view is lost).
    warnings : list[str]
        One line per dropped family, naming its classes and particles.
    """

    n_families: int
    kept: list[int]
    dropped: list[int]
    warnings: list[str]

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    def summary(self) -> str:
        return f"{self.n_kept} of {self.n_families} views kept"


def view_coverage(
    families: pd.DataFrame | Mapping[int, int], selected: Iterable[int] | np.ndarray | pd.Series
) -> ViewCoverage:
    """Report how many distinct views a selection keeps, and warn about lost ones.

    Parameters
    ----------
    families : DataFrame or mapping
        :func:`auto_select`'s table (``class_number``, ``family``, optional
        ``particle_like`` and ``count``; only families with a particle-like class count),
        a statistics table (``tdcClassNumber``, ``tdcViewFamily``, optional
        ``tdcParticleCount``; every family counts), or ``{class_number: family}``.
    selected : iterable of int or bool array
        Selected class numbers, or a boolean mask aligned with the table rows.
    """
    if isinstance(families, pd.DataFrame):
        tab = families.reset_index(drop=True)
        if "class_number" not in tab.columns:  # a class_statistics / data_model_classes table
            tab = tab.rename(columns=lambda c: str(c).lstrip("_"))
            tab = tab.rename(
                columns={
                    "tdcClassNumber": "class_number",
                    "tdcViewFamily": "family",
                    "tdcParticleCount": "count",
                }
            )
        numbers = tab["class_number"].to_numpy(dtype=np.int64)
        fam = tab["family"].to_numpy(dtype=np.int64)
        like = (
            tab["particle_like"].to_numpy(bool)
            if "particle_like" in tab.columns
            else np.ones(len(tab), bool)
        )
        cnt = (
            tab["count"].to_numpy(dtype=np.int64)
            if "count" in tab.columns
            else np.zeros(len(tab), np.int64)
        )
    else:
        numbers = np.array(list(families.keys()), dtype=np.int64)
        fam = np.array(list(families.values()), dtype=np.int64)
        like = np.ones(len(numbers), bool)
        cnt = np.zeros(len(numbers), np.int64)
    sel_arr = np.asarray(list(selected) if not isinstance(selected, np.ndarray) else selected)
    if sel_arr.dtype == bool:
        if sel_arr.size != numbers.size:
            raise ValueError("boolean selection must have one entry per class")
        sel = set(numbers[sel_arr].tolist())
    else:
        sel = {int(c) for c in sel_arr.tolist()}
    relevant = sorted(set(fam[like].tolist()))
    kept, dropped, warns = [], [], []
    for f in relevant:
        members = np.flatnonzero(fam == f)
        if any(int(numbers[m]) in sel for m in members):
            kept.append(f)
            continue
        dropped.append(f)
        names = ", ".join(str(int(numbers[m])) for m in members if like[m])
        n = int(cnt[members].sum())
        plural = "es" if "," in names else ""
        part = f", {n} particles" if n else ""
        warns.append(
            f"view family {f} (class{plural} {names}{part}) has no selected class: "
            "this view would be lost"
        )
    return ViewCoverage(len(relevant), kept, dropped, warns)

"""Human labels with units for the per-class statistics of ``run_model.star``.

One table, used by the class detail and the report: ``column -> (label, unit, format,
one-line meaning)``. Columns not listed are shown with their name split into words.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["STAT_LABELS", "label_of", "format_stat", "stat_lines"]

# column: (label, unit, format spec, meaning)
STAT_LABELS: dict[str, tuple[str, str, str, str]] = {
    "rlnEstimatedResolution": ("Resolution", "Å", ".1f", "where the class's SSNR drops below 1"),
    "rlnClassDistribution": ("Share of particles", "%", ".1f", "soft class weight"),
    "tdcEffectiveSampleSize": (
        "Effective particles",
        "",
        ",.0f",
        "weighted count behind the average",
    ),
    "tdcMeanMaxProb": ("Mean assignment certainty", "", ".2f", "mean best-class probability, 0-1"),
    "rlnAccuracyRotations": ("In-plane angle step", "°", ".1f", "half the rotation sampling"),
    "rlnAccuracyTranslationsAngst": ("Shift step", "Å", ".1f", "half the shift sampling"),
    "tdcCentreOffsetAngst": ("Centre offset", "Å", ".1f", "density centre from the box centre"),
    "tdcEdgeSignalFraction": ("Signal at the mask edge", "%", ".0f", "0-10 % centred, 30-50 % cut"),
    "tdcContrast": ("Contrast (SNR)", "", ".2f", "low-pass vs high-frequency rest; noise ≈ 0.3"),
    "tdcStraightEdge": ("Straight edge (carbon)", "", ".2f", "1 = a straight edge, 0 = round"),
    "tdcRingScore": ("Ring-likeness (ice)", "", ".2f", "1 = a featureless ring or blob"),
    "tdcMaxSimilarity": (
        "Similarity to nearest class",
        "",
        ".2f",
        "rotation-invariant correlation",
    ),
    "tdcNearestClass": ("Nearest class", "", "d", "the most similar other class"),
    "tdcViewFamily": ("View family", "", "d", "classes showing the same view share it"),
}
_PERCENT = {"rlnClassDistribution", "tdcEdgeSignalFraction"}
SKIP = {"tdcClassNumber", "tdcParticleCount", "rlnReferenceImage"}


def label_of(column: str) -> tuple[str, str]:
    """``(label, unit)`` of a column (``tdcFooBarAngst`` -> ``("Foo bar", "Å")``)."""
    if column in STAT_LABELS:
        label, unit, _, _ = STAT_LABELS[column]
        return label, unit
    name = re.sub(r"^(tdc|rln)", "", column)
    unit = ""
    if name.endswith("Angst"):
        name, unit = name[: -len("Angst")], "Å"
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()
    return (words[:1].upper() + words[1:]) or column, unit


def format_stat(column: str, value: Any) -> str:
    """The value with its unit, e.g. ``12.3 Å``, ``8 %``; ``–`` for a missing number."""
    _, unit = label_of(column)
    spec = STAT_LABELS.get(column, ("", "", ".3g", ""))[2]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "–"
    if column in _PERCENT:
        value = 100.0 * value
    if spec == "d":
        text = f"{int(value)}"
    else:
        text = format(value, spec)
    if unit == "°":
        return f"{text}°"
    return f"{text} {unit}" if unit else text


def stat_lines(stats: dict[str, Any], width: int = 28) -> list[tuple[str, str, str]]:
    """``(label, value with unit, meaning)`` for every known statistic in ``stats``, in
    the table's order, then the unknown ones."""
    out = []
    for col in STAT_LABELS:
        if col in stats and col != "rlnEstimatedResolution":
            out.append((STAT_LABELS[col][0], format_stat(col, stats[col]), STAT_LABELS[col][3]))
    for col, v in stats.items():
        if col in STAT_LABELS or col in SKIP or not isinstance(v, (int, float)):
            continue
        if col.startswith("tdcRef"):  # the reference-map scores have lines of their own
            continue
        out.append((label_of(col)[0], format_stat(col, v), ""))
    return out

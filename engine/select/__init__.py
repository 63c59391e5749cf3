"""Class selection: per-class statistics, automatic decisions, the particle filter, the files.

The public API of selection, used by the CLI (``twodclass select``), the terminal browser and
the Scipion select protocol:

- :mod:`engine.select.class_stats`      per-class image statistics and view families
- :mod:`engine.select.selection`        thresholds, :func:`auto_select`
- :mod:`engine.select.coverage`         :func:`view_coverage` (views a selection keeps)
- :mod:`engine.select.particle_filter`  :func:`particle_outliers` (junk inside good classes)
- :mod:`engine.select.files`            :func:`write_selection`, :func:`load_selection`
- :mod:`engine.select.reference_job`    :func:`score_job` / :func:`score_images` (classes
  against a 3D map, :mod:`engine.select.reference`), :func:`store_reference_scores`,
  :func:`load_reference_scores`, :func:`reference_summary`
"""

from engine.select.coverage import ViewCoverage, view_coverage
from engine.select.files import SELECTION_FILES, load_selection, parse_class_list, write_selection
from engine.select.particle_filter import (
    EXCESS,
    FILTER_OFF,
    MIN_FILTER_POPULATION,
    WEAK,
    ParticleVerdict,
    particle_outliers,
)
from engine.select.reference import ReferenceScores, ReferenceSettings
from engine.select.reference_job import (
    load_reference_scores,
    reference_summary,
    score_images,
    score_job,
    store_reference_scores,
)
from engine.select.selection import SelectionThresholds, auto_select

__all__ = [
    "EXCESS",
    "FILTER_OFF",
    "MIN_FILTER_POPULATION",
    "SELECTION_FILES",
    "WEAK",
    "ParticleVerdict",
    "ReferenceScores",
    "ReferenceSettings",
    "SelectionThresholds",
    "ViewCoverage",
    "auto_select",
    "load_selection",
    "parse_class_list",
    "particle_outliers",
    "load_reference_scores",
    "reference_summary",
    "score_images",
    "score_job",
    "store_reference_scores",
    "view_coverage",
    "write_selection",
]

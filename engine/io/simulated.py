"""Write a planned simulation (:func:`engine.simulate.plan_simulation`) to a folder.

A thin wrapper over :func:`engine.simulate.simulate` for callers holding a
:class:`engine.simulate.SimSpec`; the folder gets ``particles.star``, ``particles.mrcs``
and ``truth.star``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["STAR_NAME", "STACK_NAME", "TRUTH_NAME", "write_simulation"]

STAR_NAME = "particles.star"
STACK_NAME = "particles.mrcs"
TRUTH_NAME = "truth.star"


def write_simulation(sim: object, out_dir: str | os.PathLike[str], float16: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Simulate ``sim`` (a :class:`engine.simulate.PlannedSimulation`) into ``out_dir``;
    returns the path of ``particles.star``."""
    from engine.simulate import PlannedSimulation, simulate

    if not isinstance(sim, PlannedSimulation):
        raise TypeError("write_simulation needs engine.simulate.plan_simulation(...)")
    res = simulate(out_dir, map_path=sim.volume, map_apix_A=sim.volume_apix_A,
                   float16=float16, progress=progress, **sim.spec.kwargs())  # type: ignore[arg-type]
    return res.particles_star

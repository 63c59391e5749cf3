"""Viewing directions for reference-based class scoring: point groups, direction grids, the
asymmetric unit, symmetry-aware angular distances and view clustering.

Directions are unit vectors ``(x, y, z)`` in the map's frame (the volume is indexed
``[z, y, x]``). RELION's angles give the direction ``d(rot, tilt) = (sin tilt cos rot,
sin tilt sin rot, cos tilt)``: the third row of ``A(rot, tilt, psi)``, the axis the map is
projected along. A symmetry operator ``g`` of the map (``V(g x) = V(x)``) makes the
projections along ``d`` and ``g d`` identical up to an in-plane rotation, so a search over
directions only needs one asymmetric unit, and two directions show the same view when
``min_g angle(d1, g d2)`` is small.

Point groups follow RELION's (and Xmipp's) convention: ``Cn`` is the n-fold axis along z;
``Dn`` adds the two-fold axis along x (for D2: two-folds along x, y and z).
"""

from __future__ import annotations

import re

import numpy as np

from engine.errors import ParameterError

__all__ = [
    "symmetry_operators",
    "normalise_symmetry",
    "sphere_directions",
    "asymmetric_unit",
    "canonical_directions",
    "canonical_operator",
    "matrix_to_angles",
    "directions_to_angles",
    "angles_to_directions",
    "angular_distance_deg",
    "neighbours",
    "cluster_directions",
]

# a generic unit vector: the asymmetric unit is the Dirichlet cell of the group around it
_CENTRE = np.array([0.3, 0.2, 0.9])
_CENTRE = _CENTRE / np.linalg.norm(_CENTRE)


def normalise_symmetry(symmetry: str) -> str:
    """``"c1"``, ``" D2 "`` -> ``"C1"``, ``"D2"``; anything else than Cn / Dn is an error."""
    s = str(symmetry).strip().upper()
    m = re.fullmatch(r"([CD])(\d+)", s)
    if not m or int(m.group(2)) < 1 or int(m.group(2)) > 60:
        raise ParameterError(
            f"symmetry {symmetry!r} not understood: give C1, Cn or Dn (n = 1..60), e.g. D2"
        )
    return f"{m.group(1)}{int(m.group(2))}"


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def symmetry_operators(symmetry: str) -> np.ndarray:
    """The rotations of point group ``Cn`` or ``Dn``: ``(n_ops, 3, 3)`` float64 (identity
    first), acting on ``(x, y, z)`` column vectors."""
    s = normalise_symmetry(symmetry)
    n = int(s[1:])
    cyc = [_rot_z(2.0 * np.pi * k / n) for k in range(n)]
    if s[0] == "C":
        return np.stack(cyc)
    flip_x = np.diag([1.0, -1.0, -1.0])  # two-fold about x
    return np.stack(cyc + [flip_x @ r for r in cyc])


def sphere_directions(spacing_deg: float) -> np.ndarray:
    """Near-uniform directions on the whole sphere (Fibonacci lattice), neighbours about
    ``spacing_deg`` apart: ``(n, 3)`` float64 unit vectors."""
    s = np.deg2rad(float(spacing_deg))
    n = max(12, int(np.ceil(4.0 * np.pi / (s * s))))
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    rho = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = np.mod(i * np.pi * (3.0 - np.sqrt(5.0)), 2.0 * np.pi)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


def _mates(dirs: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """``(n_ops, n, 3)``: every symmetry mate ``g d`` of every direction."""
    return np.einsum("gij,nj->gni", ops, dirs)


def asymmetric_unit(dirs: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the directions that lie in the asymmetric unit (the Dirichlet cell of
    the group around a fixed generic direction: ``d . u >= (g d) . u`` for every ``g``)."""
    proj = _mates(np.asarray(dirs, dtype=np.float64), ops) @ _CENTRE  # (g, n)
    return proj[0] >= proj.max(axis=0) - 1e-12


def canonical_operator(dirs: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """``(n,)`` index of the operator ``g`` that moves each direction into the asymmetric
    unit."""
    d = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
    return np.argmax(_mates(d, ops) @ _CENTRE, axis=0)


def canonical_directions(dirs: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """Each direction's symmetry mate inside the asymmetric unit: ``(n, 3)``."""
    d = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
    return _mates(d, ops)[canonical_operator(d, ops), np.arange(d.shape[0])]


def matrix_to_angles(mats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RELION's ``Euler_matrix2angles``: ``(rot, tilt, psi)`` degrees of ``(n, 3, 3)``
    rotation matrices (the inverse of :func:`engine.core.projection.euler_matrix`; at tilt 0
    or 180 the whole in-plane angle goes to psi)."""
    a = np.asarray(mats, dtype=np.float64).reshape(-1, 3, 3)
    tilt = np.arccos(np.clip(a[:, 2, 2], -1.0, 1.0))
    sb = np.sin(tilt)
    ok = sb > 1e-6
    rot = np.where(ok, np.arctan2(a[:, 2, 1], a[:, 2, 0]), 0.0)
    psi = np.where(
        ok,
        np.arctan2(a[:, 1, 2], -a[:, 0, 2]),
        np.where(
            a[:, 2, 2] > 0,
            np.arctan2(a[:, 0, 1], a[:, 0, 0]),
            np.arctan2(a[:, 0, 1], -a[:, 0, 0]),
        ),
    )
    return np.rad2deg(rot), np.rad2deg(tilt), np.rad2deg(psi)


def directions_to_angles(dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rot, tilt)`` in degrees (RELION) of unit vectors ``(n, 3)``."""
    d = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    tilt = np.rad2deg(np.arccos(np.clip(d[:, 2], -1.0, 1.0)))
    rot = np.rad2deg(np.arctan2(d[:, 1], d[:, 0]))
    return rot, tilt


def angles_to_directions(rot_deg: np.ndarray, tilt_deg: np.ndarray) -> np.ndarray:
    """Unit vectors ``(n, 3)`` of RELION ``(rot, tilt)`` in degrees."""
    r = np.deg2rad(np.atleast_1d(np.asarray(rot_deg, dtype=np.float64)))
    t = np.deg2rad(np.atleast_1d(np.asarray(tilt_deg, dtype=np.float64)))
    return np.stack([np.sin(t) * np.cos(r), np.sin(t) * np.sin(r), np.cos(t)], axis=-1)


def angular_distance_deg(a: np.ndarray, b: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """Symmetry-aware angle between directions: ``min_g angle(a_i, g b_j)``, ``(n_a, n_b)``
    degrees."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 3)
    cos = np.einsum("ni,gmi->gnm", a, _mates(b, ops)).max(axis=0)
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def neighbours(grid: np.ndarray, centres: np.ndarray, radius_deg: float) -> np.ndarray:
    """Indices of the ``grid`` directions within ``radius_deg`` of any of ``centres`` (no
    symmetry: the plain angle), sorted."""
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    cos = grid @ c.T  # (n, m)
    return np.flatnonzero(cos.max(axis=1) >= np.cos(np.deg2rad(radius_deg)))


def cluster_directions(
    dirs: np.ndarray, ops: np.ndarray, radius_deg: float, weights: np.ndarray | None = None
) -> np.ndarray:
    """Greedy clustering of directions into views: in order of decreasing weight, each
    direction joins the first view whose first member lies within ``radius_deg``
    (symmetry-aware), else it starts a new view.

    Returns ``(n,)`` int64 view numbers 1..V, view 1 the heaviest.
    """
    d = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
    n = d.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    dist = angular_distance_deg(d, d, ops)
    order = np.argsort(-w, kind="stable")
    label = np.zeros(n, dtype=np.int64)
    seeds: list[int] = []
    for i in order:
        for v, s in enumerate(seeds):
            if dist[i, s] <= radius_deg:
                label[i] = v + 1
                break
        else:
            seeds.append(int(i))
            label[i] = len(seeds)
    # renumber by total weight
    tot = np.bincount(label, weights=w, minlength=len(seeds) + 1)[1:]
    rank = np.empty(len(seeds), dtype=np.int64)
    rank[np.argsort(-tot, kind="stable")] = np.arange(1, len(seeds) + 1)
    return rank[label - 1]

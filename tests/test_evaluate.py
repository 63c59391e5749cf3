"""engine.sim.evaluate: orientation coherence of classes against known 3D orientations."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.core.projection import euler_matrix
from engine.sim.evaluate import (
    class_frame_rotations,
    direction_clusters,
    evaluate_arrays,
    mean_rotation,
    oracle_coherence,
    rotation_angles_deg,
    weighted_median,
)
from engine.sim.plan import direction_angles, viewing_directions


def _truth(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return pd.DataFrame(
        {
            "rlnAngleRot": np.rad2deg(np.arctan2(d[:, 1], d[:, 0])),
            "rlnAngleTilt": np.rad2deg(np.arccos(d[:, 2])),
            "rlnAnglePsi": rng.uniform(0.0, 360.0, n),
            "rlnOriginXAngst": 0.0,
            "rlnOriginYAngst": 0.0,
            "tdcViewId": np.zeros(n, np.int64),
        }
    )


def test_rotation_helpers():
    R = euler_matrix([10.0, 12.0, 14.0], [40.0, 40.0, 40.0], [0.0, 0.0, 0.0])
    Q = mean_rotation(R)
    np.testing.assert_allclose(Q @ Q.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(Q, R[1], atol=2e-3)
    assert rotation_angles_deg(R[:1], R[0])[0] < 1e-4
    one = euler_matrix([0.0], [0.0], [30.0])
    assert abs(rotation_angles_deg(one, np.eye(3))[0] - 30.0) < 1e-6
    # the class frame: composing with the assigned psi is the same as A(rot, tilt, psi_t - psi_e)
    Rc = class_frame_rotations(
        np.array([20.0]), np.array([50.0]), np.array([70.0]), np.array([25.0])
    )
    np.testing.assert_allclose(Rc[0], euler_matrix([20.0], [50.0], [45.0])[0], atol=1e-12)
    assert weighted_median(np.array([1.0, 5.0, 9.0]), np.array([1.0, 1.0, 5.0])) == 9.0


def test_coherence_of_pure_mixed_and_misaligned_classes():
    t = _truth(3000)
    ora_coh, ora_spread = oracle_coherence(t, 30)
    assert 10.0 < ora_coh < 18.0 and abs(ora_coh - ora_spread) < 0.5
    # group by viewing direction, aligned in-plane perfectly (psi_est = psi_true): near the
    # oracle; the same groups with random in-plane angles: incoherent; random groups: worse
    d = np.stack(
        [
            np.sin(np.deg2rad(t.rlnAngleTilt)) * np.cos(np.deg2rad(t.rlnAngleRot)),
            np.sin(np.deg2rad(t.rlnAngleTilt)) * np.sin(np.deg2rad(t.rlnAngleRot)),
            np.cos(np.deg2rad(t.rlnAngleTilt)),
        ],
        axis=1,
    )
    cls = np.argmax(d @ d[:30].T, axis=1) + 1
    z = np.zeros(len(t))
    psi = t.rlnAnglePsi.to_numpy()
    pure = evaluate_arrays(cls, psi, z, z, t)
    assert pure.coherence_deg < ora_coh + 12.0
    assert abs(pure.direction_spread_deg - ora_spread) < 8.0
    rng = np.random.default_rng(1)
    spun = evaluate_arrays(cls, rng.uniform(0, 360, len(t)), z, z, t)
    assert spun.coherence_deg > 60.0
    assert abs(spun.direction_spread_deg - pure.direction_spread_deg) < 1e-6
    mixed = evaluate_arrays(rng.integers(1, 31, len(t)), psi, z, z, t)
    assert mixed.direction_spread_deg > 60.0 and mixed.coherence_deg > 60.0


def test_axis_spread_counts_mirror_views_as_one():
    """Classes that each hold one direction and its opposite (mirror projections): the
    direction spread is large, the axis spread (d = -d) stays that of the pure classes."""
    t = _truth(3000)
    d = np.stack(
        [
            np.sin(np.deg2rad(t.rlnAngleTilt)) * np.cos(np.deg2rad(t.rlnAngleRot)),
            np.sin(np.deg2rad(t.rlnAngleTilt)) * np.sin(np.deg2rad(t.rlnAngleRot)),
            np.cos(np.deg2rad(t.rlnAngleTilt)),
        ],
        axis=1,
    )
    z = np.zeros(len(t))
    psi = t.rlnAnglePsi.to_numpy()
    pure = evaluate_arrays(np.argmax(d @ d[:30].T, axis=1) + 1, psi, z, z, t)
    mirrored = evaluate_arrays(np.argmax(np.abs(d @ d[:15].T), axis=1) + 1, psi, z, z, t)
    assert pure.axis_spread_deg <= pure.direction_spread_deg + 1e-9
    assert mirrored.direction_spread_deg > 60.0
    assert mirrored.axis_spread_deg < pure.direction_spread_deg + 5.0


def test_direction_clusters_tile_the_sphere() -> None:
    # 2,000 uniformly random directions in 20 clusters: each direction belongs to its nearest
    # centre, each centre is its members' mean direction, and the caps are small (a cap of
    # 1/20 of the sphere has a radius of 26 deg, its members lie 17 deg from its centre on
    # average; a random grouping would give 90 deg)
    t = _truth(2000, seed=3)
    d = viewing_directions(t["rlnAngleRot"].to_numpy(), t["rlnAngleTilt"].to_numpy())
    lab, centres = direction_clusters(d, 20)
    assert np.allclose(np.linalg.norm(centres, axis=1), 1.0)
    near = np.argmax(d @ centres.T, axis=1)
    assert np.mean(near == lab) > 0.99
    ang = np.rad2deg(np.arccos(np.clip(np.sum(d * centres[lab], axis=1), -1.0, 1.0)))
    assert 14.0 < ang.mean() < 20.0
    assert np.bincount(lab, minlength=20).min() >= 40
    rot, tilt = direction_angles(centres)  # and back to the same directions
    assert np.allclose(viewing_directions(rot, tilt), centres, atol=1e-9)

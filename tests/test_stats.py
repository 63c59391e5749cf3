"""Per-class statistics on hand-made class averages: one per junk kind, plus good views."""

from __future__ import annotations

import numpy as np
import pytest

from engine.select.class_stats import (
    STAT_COLUMNS,
    class_similarity,
    class_statistics,
    similarity_matrix,
    view_families,
)

B = 64
APIX = 3.0
DIAM = 150.0  # Å: r_in = 25 px, default outer 180 Å: r_out = 30 px

# three asymmetric "proteins": Gaussians (x, y, sigma) in pixels
VIEWS = {
    0: [(0, 0, 5), (8, 3, 3.5), (-6, 7, 3), (3, -9, 4), (-9, -4, 2.5)],
    1: [(-10, 0, 3.5), (-3, 0, 4), (4, 0, 4), (11, 2, 3), (6, -7, 2.5)],
    2: [(0, 0, 6), (0, 10, 3), (9, -6, 3), (-9, -6, 3), (4, 4, 2)],
}


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:B, 0:B].astype(np.float64) - B // 2
    return x, y


def gauss(x0: float, y0: float, s: float) -> np.ndarray:
    x, y = _grid()
    return np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * s * s))


def particle(
    view: int, shift: tuple[float, float] = (0, 0), rot_deg: float = 0.0, mirror: bool = False
) -> np.ndarray:
    a = np.deg2rad(rot_deg)
    out = np.zeros((B, B))
    for x0, y0, s in VIEWS[view]:
        if mirror:
            x0 = -x0
        xr = np.cos(a) * x0 - np.sin(a) * y0 + shift[0]
        yr = np.sin(a) * x0 + np.cos(a) * y0 + shift[1]
        out += gauss(xr, yr, s)
    return out


def carbon(angle_deg: float = 30.0, d_px: float = 4.0) -> np.ndarray:
    x, y = _grid()
    a = np.deg2rad(angle_deg)
    return 0.8 * np.tanh((np.cos(a) * x + np.sin(a) * y - d_px) / 1.5)


def ice_ring(radius_px: float = 12.0, width_px: float = 3.0) -> np.ndarray:
    x, y = _grid()
    return np.exp(-((np.hypot(x, y) - radius_px) ** 2) / (2 * width_px**2))


def soft_mask(r_in: float = 25.0, r_out: float = 30.0) -> np.ndarray:
    x, y = _grid()
    r = np.hypot(x, y)
    edge = 0.5 + 0.5 * np.cos(np.pi * np.clip((r - r_in) / (r_out - r_in), 0, 1))
    return np.where(r < r_in, 1.0, edge)


def finish(images: list[np.ndarray], noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """Add noise and apply the run's soft mask, as the engine's class averages look."""
    rng = np.random.default_rng(seed)
    m = soft_mask()
    return np.array([(im + rng.normal(0, noise, (B, B))) * m for im in images], np.float32)


#: name -> image of the standard test set (order = class numbers 1..)
KINDS = {
    "view0": particle(0),
    "view0_rotated": particle(0, rot_deg=70),
    "view1": particle(1),
    "view2": particle(2),
    "offcentre": particle(0, shift=(14, 3)),
    "carbon": carbon(),
    "carbon_particle": carbon(10, 0) + 0.7 * particle(2),
    "ice_ring": 2 * ice_ring(),
    "ice_blob": 2 * gauss(0, 0, 10),
    "noise": np.zeros((B, B)),
}


def standard_set() -> tuple[list[str], np.ndarray]:
    names = list(KINDS)
    return names, finish([KINDS[n] for n in names])


@pytest.fixture(scope="module")
def table():
    names, imgs = standard_set()
    df = class_statistics(imgs, APIX, DIAM, None, counts=np.full(len(names), 100))
    df.index = names
    return df


def test_columns_and_order(table):
    assert list(table.columns) == ["tdcClassNumber", *STAT_COLUMNS]
    assert table["tdcClassNumber"].tolist() == list(range(1, len(KINDS) + 1))


def test_good_particles_pass(table):
    good = table.loc[["view0", "view0_rotated", "view1", "view2"]]
    assert (good["tdcEdgeSignalFraction"] < 0.05).all()
    assert (good["tdcCentreOffsetAngst"] < 12).all()
    assert (good["tdcStraightEdge"] < 0.45).all()
    assert (good["tdcRingScore"] < 0.9).all()
    assert (good["tdcContrast"] > 3).all()


def test_offcentre_particle(table):
    # moved by 14.3 px = 43 Å; the density centre follows
    assert table.loc["offcentre", "tdcCentreOffsetAngst"] == pytest.approx(41, abs=5)
    assert table.loc["offcentre", "tdcEdgeSignalFraction"] > 0.25


def test_cut_particle_edge_signal():
    imgs = finish([particle(1, shift=(0, -20)), particle(1)])
    df = class_statistics(imgs, APIX, DIAM)
    assert df["tdcEdgeSignalFraction"].iloc[0] > 0.4
    assert df["tdcEdgeSignalFraction"].iloc[1] < 0.05


def test_carbon_edge(table):
    assert table.loc["carbon", "tdcStraightEdge"] > 0.9
    assert table.loc["carbon_particle", "tdcStraightEdge"] > 0.7
    assert table.loc["carbon", "tdcEdgeSignalFraction"] > 0.45


def test_ice(table):
    assert table.loc["ice_ring", "tdcRingScore"] > 0.988  # the default ice limit is 0.985
    assert table.loc["ice_blob", "tdcRingScore"] > 0.988
    assert table.loc["ice_ring", "tdcStraightEdge"] < 0.05


def test_noise(table):
    assert table.loc["noise", "tdcContrast"] < 0.7
    assert table.loc["noise", "tdcRingScore"] < 0.2


def test_similarity_rotation_mirror_invariant(table):
    assert table.loc["view0", "tdcNearestClass"] == 2  # view0_rotated
    assert table.loc["view0", "tdcMaxSimilarity"] > 0.9
    assert table.loc["view2", "tdcMaxSimilarity"] < 0.6
    imgs = finish([particle(1), particle(1, rot_deg=123, mirror=True), particle(0)], seed=3)
    sim = class_similarity(imgs, APIX, DIAM)
    assert sim[0, 1] > 0.9
    assert sim[0, 2] < 0.6
    np.testing.assert_allclose(sim, sim.T, atol=1e-9)


def test_families(table):
    fam = table["tdcViewFamily"]
    assert fam["view0"] == fam["view0_rotated"]
    assert len({fam["view0"], fam["view1"], fam["view2"]}) == 3


def _naive_similarity(polar: np.ndarray) -> np.ndarray:
    """Slow twin of similarity_matrix: explicit rotations (np.roll) and mirrors."""
    k, n_r, n_psi = polar.shape
    w = np.arange(1, n_r + 1, dtype=np.float64)[:, None]
    out = np.zeros((k, k))
    for i in range(k):
        a = polar[i] - (polar[i] * w).sum() / (w.sum() * n_psi)
        for j in range(k):
            best = -np.inf
            for img in (polar[j], polar[j][:, (-np.arange(n_psi)) % n_psi]):
                b = img - (img * w).sum() / (w.sum() * n_psi)
                for s in range(n_psi):
                    bs = np.roll(b, s, axis=1)
                    cc = (a * bs * w).sum() / np.sqrt((a * a * w).sum() * (bs * bs * w).sum())
                    best = max(best, cc)
            out[i, j] = best
    return out


def test_similarity_matrix_matches_naive():
    rng = np.random.default_rng(5)
    polar = rng.normal(size=(4, 6, 16))
    polar[1] = np.roll(polar[0], 5, axis=1)[:, (-np.arange(16)) % 16]  # rotated mirror of 0
    fast, _ = similarity_matrix(polar)
    slow = _naive_similarity(polar)
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    assert fast[0, 1] == pytest.approx(1.0)


def test_view_families_single_linkage_and_order():
    sim = np.eye(5)
    sim[0, 1] = sim[1, 0] = 0.8
    sim[1, 2] = sim[2, 1] = 0.9  # 0-1-2 chain; 3, 4 alone
    sim[3, 4] = sim[4, 3] = 0.5
    fam = view_families(sim, 0.75, counts=np.array([1, 1, 1, 50, 2]))
    assert fam.tolist() == [2, 2, 2, 1, 3]
    fam = view_families(sim, 0.75, member=np.array([True, False, True, True, True]))
    assert len(set(fam.tolist())) == 5  # class 1 cannot link 0 and 2


def test_real_relion_like_scale_is_fast():
    rng = np.random.default_rng(0)
    imgs = finish([particle(i % 3, rot_deg=17 * i) for i in range(40)], seed=1)
    imgs += rng.normal(0, 0.01, imgs.shape).astype(np.float32)
    df = class_statistics(imgs, APIX, DIAM)
    assert df["tdcViewFamily"].nunique() == 3


def test_statistics_for_engine_state_follow_output_order():
    from types import SimpleNamespace

    from engine.select.class_stats import class_statistics_for_state

    refs = finish([KINDS["carbon"], KINDS["view0"], KINDS["ice_ring"]])
    state = SimpleNamespace(
        refs=refs,
        cls=np.array([1, 1, 1, 0, 2, 2]),
        stats=SimpleNamespace(weight=np.array([1.0, 3.0, 2.0])),
    )
    params = SimpleNamespace(n_classes=3)
    data = SimpleNamespace(apix_small_A=APIX)
    geo = SimpleNamespace(diameter_A=DIAM, diameter_outer_A=180.0)
    df = class_statistics_for_state(state, params, data, geo)
    assert list(df.columns) == list(STAT_COLUMNS)
    # output order: by count (view0 3, ice 2, carbon 1)
    assert df["tdcStraightEdge"].iloc[2] > 0.9
    assert df["tdcRingScore"].iloc[1] > 0.988
    assert df["tdcRingScore"].iloc[0] < 0.9

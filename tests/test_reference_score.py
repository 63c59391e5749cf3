"""Reference-based class scoring (engine.select.reference and its faces).

Every number asserted here comes from data the tests make: projections of the simulator's
asymmetric phantom (and a D2-symmetrised copy of it), and simulated class averages of known
kind (engine.select.reference_calibration). The calibration on the real beta-galactosidase
map is in benchmarks/reference_score.py.
"""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from engine.core.projection import VolumeProjector, euler_matrix
from engine.select import reference_grid as grid
from engine.select import reference_polar as pol
from engine.select.reference import (
    NO_STRUCTURE_MAX,
    SINGLE_VIEW_MIN,
    ReferenceSettings,
    score_classes,
)
from engine.sim.phantom import phantom_volume

APIX = 4.0


def _angle(a: np.ndarray, b: np.ndarray, sym: str = "C1") -> np.ndarray:
    """Symmetry-aware angle (degrees) between paired (rot, tilt) directions."""
    da = grid.angles_to_directions(*a)
    db = grid.angles_to_directions(*b)
    return np.diag(grid.angular_distance_deg(da, db, grid.symmetry_operators(sym)))


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    return phantom_volume(32)


# ------------------------------------------------------------------ directions and symmetry
@pytest.mark.parametrize("sym,n_ops", [("C1", 1), ("c4", 4), ("D2", 4), ("D7", 14)])
def test_asymmetric_unit_is_one_nth_of_the_sphere(sym: str, n_ops: int) -> None:
    ops = grid.symmetry_operators(sym)
    assert ops.shape == (n_ops, 3, 3)
    assert np.allclose(np.einsum("gij,gkj->gik", ops, ops), np.eye(3), atol=1e-12)
    dirs = grid.sphere_directions(4.0)
    inside = grid.asymmetric_unit(dirs, ops)
    assert inside.mean() == pytest.approx(1.0 / n_ops, rel=0.1)
    # every direction has exactly one mate in the unit, at zero symmetry-aware distance
    canon = grid.canonical_directions(dirs, ops)
    assert grid.asymmetric_unit(canon, ops).all()
    assert np.diag(grid.angular_distance_deg(dirs, canon, ops)).max() < 1e-5


def test_bad_symmetry_is_a_clear_error() -> None:
    from engine.errors import ParameterError

    with pytest.raises(ParameterError, match="C1, Cn or Dn"):
        grid.symmetry_operators("O")


def test_matrix_to_angles_inverts_relion_matrix() -> None:
    rng = np.random.default_rng(0)
    rot, tilt, psi = rng.uniform(-180, 180, 50), rng.uniform(1, 179, 50), rng.uniform(-180, 180, 50)
    r2, t2, p2 = grid.matrix_to_angles(euler_matrix(rot, tilt, psi))
    assert np.allclose(euler_matrix(r2, t2, p2), euler_matrix(rot, tilt, psi), atol=1e-9)
    assert np.allclose(t2, tilt)


def test_cluster_directions_merges_close_and_symmetric_views() -> None:
    ops = grid.symmetry_operators("D2")
    d = grid.angles_to_directions(
        np.array([10.0, 14.0, 170.0, 100.0]), np.array([40.0, 45.0, 140.0, 90.0])
    )  # 3rd = the first turned by the two-fold about y: the same view
    label = grid.cluster_directions(d, ops, 15.0, weights=np.array([5.0, 1.0, 1.0, 2.0]))
    assert label[0] == label[1] == label[2] == 1
    assert label[3] == 2


# ------------------------------------------------------------------ the fast kernel vs naive
def _naive_best(cls_pol: np.ndarray, proj_pol: np.ndarray, radii: np.ndarray, n_psi: int):
    """Ring-by-ring correlation over every rotation by brute force on the polar samples
    (rings' means removed, rings weighted by r |C_r|^2)."""
    n_ang = cls_pol.shape[-1]
    c = cls_pol - cls_pol.mean(axis=-1, keepdims=True)
    p = proj_pol - proj_pol.mean(axis=-1, keepdims=True)
    cn = np.sqrt((np.abs(c) ** 2).sum(axis=-1))
    pn = np.sqrt((np.abs(p) ** 2).sum(axis=-1))
    w = radii * cn**2
    best = -np.inf
    for j in range(n_psi):
        shift = j * n_ang // n_psi  # class = projection turned by +psi_j
        rho = (c * np.conj(np.roll(p, shift, axis=-1))).real.sum(axis=-1) / (cn * pn)
        best = max(best, float((w * rho).sum() / w.sum()))
    return best


def test_best_rotations_match_the_naive_search() -> None:
    rng = np.random.default_rng(1)
    b = 24
    band = pol.make_band(b, 5.0, 200.0, 15.0, 128)
    mask = np.ones((b, b), np.float32)
    yy, xx = np.mgrid[0:b, 0:b] - b // 2
    env = np.exp(-(xx**2 + yy**2) / 30.0)
    cls = (rng.normal(size=(3, b, b)) * env).astype(np.float32)
    proj = (rng.normal(size=(4, b, b)) * env).astype(np.float32)
    cs = pol.angular_spectra(cls, mask, band)
    ps = pol.angular_spectra(proj, mask, band)
    score, _ = pol.best_rotations(
        pol.projection_factors(ps, band.radii), pol.class_factors(cs, band.radii), band.n_psi
    )
    cpol = pol._polar(cls, mask, band)
    ppol = pol._polar(proj, mask, band)
    for i in range(4):
        for k in range(3):
            want = _naive_best(cpol[k], ppol[i], band.radii, band.n_psi)
            assert score[i, k] == pytest.approx(want, abs=2e-3)


# ------------------------------------------------------------------ poses, handedness, resampling
def test_exact_projections_give_their_pose(phantom: np.ndarray) -> None:
    vp = VolumeProjector(phantom)
    rot, tilt = np.array([30.0, 200.0, 100.0]), np.array([70.0, 130.0, 25.0])
    psi = np.array([40.0, -120.0, 10.0])
    cls = vp.project(rot, tilt, psi, np.array([1.0, -1.0, 0.0]), np.array([0.0, 0.5, 1.0]))
    r = score_classes(cls, APIX, phantom, APIX, "C1")
    assert (r.structure > 0.97).all() and (r.correlation > 0.97).all()
    assert _angle((rot, tilt), (r.rot_deg, r.tilt_deg)).max() < 3.0
    assert np.abs((r.psi_deg - psi + 180) % 360 - 180).max() < 3.0
    assert list(r.verdict) == ["single"] * 3
    for k in range(3):  # the stored projection is posed like the class
        a, p = cls[k] - cls[k].mean(), r.projections[k] - r.projections[k].mean()
        assert (a * p).sum() / np.sqrt((a * a).sum() * (p * p).sum()) > 0.95
    # never mirrored: the mirror image matches the opposite direction, not the same one
    mir = score_classes(cls[:, :, ::-1].copy(), APIX, phantom, APIX, "C1")
    anti = grid.angles_to_directions(r.rot_deg, r.tilt_deg) * -1
    got = grid.angles_to_directions(mir.rot_deg, mir.tilt_deg)
    c1 = grid.symmetry_operators("C1")
    assert np.diag(grid.angular_distance_deg(got, anti, c1)).max() < 5.0
    assert _angle((rot, tilt), (mir.rot_deg, mir.tilt_deg)).min() > 60.0


def test_map_of_other_box_and_pixel_size_is_resampled(phantom: np.ndarray) -> None:
    vp = VolumeProjector(phantom)
    rot, tilt = np.array([60.0, 250.0]), np.array([50.0, 110.0])
    cls = vp.project(rot, tilt, np.array([20.0, 90.0]))
    fine = phantom_volume(48)  # the same particle on a 48 box at 2/3 of the pixel size
    r = score_classes(cls, APIX, fine, APIX * 32 / 48, "C1")
    assert (r.structure > 0.95).all()
    assert _angle((rot, tilt), (r.rot_deg, r.tilt_deg)).max() < 4.0


# ------------------------------------------------------------------ calibration: the ranking
@pytest.fixture(scope="module")
def calibration(phantom: np.ndarray):
    from engine.select.reference_calibration import calibration_classes

    cs = calibration_classes(
        phantom, APIX, box=32, apix_A=APIX, n_per_class=(80,), n_views=4, snr=0.05, seed=3
    )
    r = score_classes(cs.images, APIX, phantom, APIX, "C1")
    return cs, r


def test_single_view_ranks_above_mixture_blob_and_noise(calibration) -> None:
    cs, r = calibration
    s = {k: r.structure[cs.kind == k] for k in ("single", "mixture", "blob", "noise")}
    assert len(s["single"]) == 4 and len(s["mixture"]) >= 3
    assert s["single"].min() > s["mixture"].max() + 0.05
    assert s["single"].min() >= 0.90
    assert s["mixture"].max() <= 0.85
    assert max(s["blob"].max(), s["noise"].max()) <= 0.40 < s["mixture"].min()
    # with the calibrated thresholds: single views are single, blobs and noise have none
    assert (r.verdict[cs.kind == "single"] == "single").all()
    assert (r.verdict[cs.kind == "mixture"] == "blurred").all()
    assert set(r.verdict[np.isin(cs.kind, ["blob", "noise"])]) == {"none"}
    # the single views are found in their true direction
    one = cs.kind == "single"
    err = _angle((cs.rot_deg[one], cs.tilt_deg[one]), (r.rot_deg[one], r.tilt_deg[one]))
    assert err.max() < 5.0
    assert NO_STRUCTURE_MAX < SINGLE_VIEW_MIN


# ------------------------------------------------------------------ symmetry
def _d2_symmetrised(v: np.ndarray) -> np.ndarray:
    """Sum of the map turned by the four D2 operators (two-folds about x, y, z)."""
    n = v.shape[0]
    idx = (2 * (n // 2) - np.arange(n)) % n
    flip_z = v[:, idx][:, :, idx]  # (x, y) -> (-x, -y)
    flip_x = v[idx][:, idx, :]  # (y, z) -> (-y, -z)
    flip_y = v[idx][:, :, idx]  # (x, z) -> (-x, -z)
    return (v + flip_z + flip_x + flip_y).astype(np.float32)


def test_d2_map_scores_symmetry_mates_alike(phantom: np.ndarray) -> None:
    vol = _d2_symmetrised(phantom)
    ops = grid.symmetry_operators("D2")
    d0 = grid.angles_to_directions(np.array([35.0]), np.array([65.0]))[0]
    mates = np.einsum("gij,j->gi", ops, d0)  # the same view from the 4 mates
    rot, tilt = grid.directions_to_angles(mates)
    psi = np.array([0.0, 70.0, 150.0, -100.0])
    cls = VolumeProjector(vol).project(rot, tilt, psi)
    rng = np.random.default_rng(2)
    cls = cls + rng.normal(0, 0.3 * cls.std(), cls.shape).astype(np.float32)
    r = score_classes(cls, APIX, vol, APIX, "D2")
    assert r.structure.max() - r.structure.min() < 0.01
    assert r.structure.min() > 0.85
    # one direction reported (in the asymmetric unit) for all four, one view
    got = grid.angles_to_directions(r.rot_deg, r.tilt_deg)
    assert np.degrees(np.arccos(np.clip(got @ got.T, -1, 1))).max() < 4.0
    assert grid.asymmetric_unit(got, ops).all()
    assert set(r.view) == {1}
    # without the symmetry the same classes still score alike, in four directions
    r1 = score_classes(cls, APIX, vol, APIX, "C1")
    assert np.abs(r1.structure - r.structure).max() < 0.02
    assert r.n_directions["coarse"] < 0.3 * r1.n_directions["coarse"]


# ------------------------------------------------------------------ the CLI and the files
def _write_map(path, vol: np.ndarray, apix: float) -> None:
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(vol.astype(np.float32))
        m.voxel_size = apix


@pytest.fixture()
def scored_job(tmp_path, phantom):
    """A finished job whose classes are 3 views of the phantom, a mixture, a blob, noise."""
    from tests.helpers_job import make_finished_job

    job = make_finished_job(tmp_path, n_classes=6, n_particles=300, box=32, apix=APIX)
    rng = np.random.default_rng(4)
    vp = VolumeProjector(phantom)
    views = vp.project(np.array([0.0, 120.0, 240.0]), np.array([40.0, 90.0, 140.0]))
    yy, xx = np.mgrid[0:32, 0:32] - 16
    blob = np.exp(-(xx**2 + yy**2) / 50.0) * views[0].max()
    cls = np.concatenate(
        [views, (0.5 * (views[0] + views[1][:, ::-1]))[None], blob[None], np.zeros((1, 32, 32))]
    )
    cls = cls + rng.normal(0, 0.1 * views.std(), cls.shape)
    with mrcfile.new(job / "run_classes.mrcs", overwrite=True) as m:
        m.set_data(cls.astype(np.float32))
        m.voxel_size = APIX
    ref = tmp_path / "map.mrc"
    _write_map(ref, phantom_volume(48), APIX * 32 / 48)  # another box and pixel size
    return job, ref


def test_cli_select_reference_stores_scores_and_selects(scored_job, capsys) -> None:
    from engine.cli import main

    job, ref = scored_job
    rc = main(
        ["select", str(job), "--reference", str(ref), "--min-ref-structure", "0.85",
         "--no-particle-filter", "--min-particles", "0", "--max-edge-signal", "1",
         "--max-ice", "1", "--min-contrast", "0", "--max-res-A", "100"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "reference score:" in out.out and "single-view classes" in out.out
    model = starfile.read(job / "run_model.star", always_dict=True)
    cl = model["model_classes"]
    assert list(cl["tdcRefVerdict"][:3]) == ["single"] * 3
    assert (cl["tdcRefStructure"][:3] > 0.9).all()
    assert cl["tdcRefVerdict"][4] == "none" and cl["tdcRefVerdict"][5] == "none"
    assert cl["tdcRefStructure"][3] < 0.85  # the mixture
    assert model["model_general"]["tdcReferenceSymmetry"] == "C1"
    with mrcfile.open(job / "reference_projections.mrcs") as m:
        assert m.data.shape == (6, 32, 32)
    info = json.loads((job / "selection.json").read_text())
    assert info["class_ids"] == [1, 2, 3]
    assert info["reference"]["symmetry"] == "C1"
    assert info["reference"]["n_views"] == 3
    assert info["reference"]["single_share"] == pytest.approx(
        sum(info["counts"].values()) / 300, abs=1e-3
    )
    assert set(info["reference"]["classes"]) == {"1", "2", "3"}
    assert "not a single view of the reference" in info["reasons"].get("4", "") or (
        4 not in info["class_ids"]
    )
    sel = starfile.read(job / "classes_selected.star", always_dict=True)["model_classes"]
    assert "tdcRefStructure" in sel.columns
    # a stored score is used by a later selection without --reference
    rc = main(
        ["select", str(job), "--dry-run", "--min-ref-structure", "0.95", "--no-particle-filter"]
    )
    assert rc == 0


def test_min_ref_structure_without_scores_says_what_to_do(tmp_path) -> None:
    from engine.errors import ParameterError
    from engine.select import SelectionThresholds, auto_select
    from tests.helpers_job import make_finished_job

    job = make_finished_job(tmp_path)
    with pytest.raises(ParameterError, match="--reference MAP"):
        auto_select(job, SelectionThresholds(min_ref_structure=0.8))


def test_reference_summary_counts_particles_and_views() -> None:
    from engine.select.reference_job import reference_summary

    t = pd.DataFrame(
        {
            "tdcRefVerdict": ["single", "single", "blurred", "none", "single"],
            "tdcRefView": [1, 1, 0, 0, 2],
            "tdcRefRot": [0.0, 2.0, 0.0, 0.0, 90.0],
            "tdcRefTilt": [10.0, 12.0, 0.0, 0.0, 90.0],
        }
    )
    s = reference_summary(t, np.array([50, 30, 10, 5, 5]))
    assert s["single_share"] == pytest.approx(0.85)
    assert (s["n_views"], s["n_blurred"], s["n_none"]) == (2, 1, 1)
    assert s["views"][0]["classes"] == [1, 2] and s["views"][0]["particles"] == 80


def test_settings_default_band_and_weighting() -> None:
    st = ReferenceSettings()
    assert (st.band_low_A, st.band_high_A, st.weighting) == (200.0, 12.0, "class")


# ------------------------------------------------------------------ the terminal browser
def test_class_detail_shows_the_class_beside_its_best_projection(scored_job, monkeypatch):
    import asyncio

    from engine.io.jobfolder import load_job
    from engine.select import score_job, store_reference_scores
    from tests.helpers_tui import browser_ready
    from tui.app import TwodclassApp
    from tui.screen_detail import ClassDetailScreen

    monkeypatch.setenv("TWODCLASS_HALFBLOCK", "1")
    job_dir, ref = scored_job
    job = load_job(job_dir, read_data=False)
    store_reference_scores(job, score_job(job, ref, "C1"), ref)

    async def run() -> None:
        app = TwodclassApp("browse", job_dir=job_dir)
        async with app.run_test(size=(140, 40)) as pilot:
            await browser_ready(pilot, app)
            await pilot.press("enter")
            await pilot.pause()
            detail = app.screen
            assert isinstance(detail, ClassDetailScreen) and detail.number == 1
            images = detail.query(".detail-big")
            assert len(images) == 2  # the class and its best projection
            proj = images[1].image
            cls = job.classes[0]
            assert np.corrcoef(proj.ravel(), cls.ravel())[0, 1] > 0.8
            text = str(detail.query_one("#detail-stats").render())
            assert "Reference map" in text and "single view" in text and "tilt" in text
            await pilot.press("escape")

    asyncio.run(run())

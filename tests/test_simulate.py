"""engine.sim.simulate: the ground truth matches what was written, CTF, junk, files, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cli import main
from engine.core.ctf import ctf_image
from engine.core.pose import align_to_class, class_to_particle
from engine.core.projection import VolumeProjector
from engine.errors import ParameterError
from engine.io.mrc import open_stack
from engine.io.particles import read_particles
from engine.io.star import read_star
from engine.sim.phantom import GaussianProjector, phantom_volume
from engine.sim.plan import fibonacci_views
from engine.sim.render import ctf_half_plane
from engine.sim.simulate import simulate, simulate_arrays
from tests.helpers_data import corr, project_real_space

BOX, APIX = 48, 4.0


@pytest.fixture(scope="module")
def sim():
    return simulate_arrays(
        n_particles=24,
        box=BOX,
        apix_A=APIX,
        n_views=4,
        snr=0.1,
        junk_fraction=0.0,
        max_shift_A=10.0,
        seed=3,
        return_clean=True,
    )


def test_projectors_match_slow_reference():
    vol = phantom_volume(BOX)
    gp, vp = GaussianProjector(BOX), VolumeProjector(vol)
    for rot, tilt, psi, ox, oy in [(30.0, 60.0, 0.0, 0.0, 0.0), (120.0, 100.0, 40.0, 2.5, -1.5)]:
        ref = class_to_particle(project_real_space(vol, rot, tilt), psi, ox, oy)
        got = [p.project([rot], [tilt], [psi], [ox], [oy])[0] for p in (gp, vp)]

        def rel(a, b):
            return np.linalg.norm(a - b) / np.linalg.norm(b)

        for g in got:  # the reference interpolates twice (3D, then 2D): the least exact
            assert corr(g, ref) > 0.995 and rel(g, ref) < 0.08
        assert corr(got[0], got[1]) > 0.999  # analytic vs Fourier slice
        assert rel(got[1], got[0]) < 0.05


def test_truth_reprojects_to_the_clean_images(sim):
    vol = phantom_volume(BOX)
    t = sim.truth
    for i in range(0, 24, 6):
        p0 = project_real_space(vol, t.rlnAngleRot[i], t.rlnAngleTilt[i])
        placed = class_to_particle(
            p0, t.rlnAnglePsi[i], t.rlnOriginXAngst[i] / APIX, t.rlnOriginYAngst[i] / APIX
        )
        assert corr(placed, sim.clean[i]) > 0.995
        # ... which is RELION's full projection A(rot, tilt, psi), moved by -origin
        full = class_to_particle(
            project_real_space(vol, t.rlnAngleRot[i], t.rlnAngleTilt[i], t.rlnAnglePsi[i]),
            0.0,
            t.rlnOriginXAngst[i] / APIX,
            t.rlnOriginYAngst[i] / APIX,
        )
        assert corr(full, sim.clean[i]) > 0.995
        # aligning the particle with its true pose recovers the projection
        aligned = align_to_class(
            sim.clean[i], t.rlnAnglePsi[i], t.rlnOriginXAngst[i] / APIX, t.rlnOriginYAngst[i] / APIX
        )
        c_aligned, c_raw = corr(aligned, p0), corr(sim.clean[i], p0)
        assert c_aligned > 0.99 and (1 - c_aligned) < 0.1 * (1 - c_raw)


def test_views_shifts_and_noise_level(sim):
    t = sim.truth
    assert set(t.tdcViewId) <= {0, 1, 2, 3} and (t.tdcJunkKind == "").all()
    # every particle lies within ~2 deg jitter (3 sigma ~ 10 deg) of its view direction
    views = np.deg2rad(fibonacci_views(4))

    def d(r, tl):
        return np.stack([np.sin(tl) * np.cos(r), np.sin(tl) * np.sin(r), np.cos(tl)], -1)

    dirs = d(np.deg2rad(t.rlnAngleRot), np.deg2rad(t.rlnAngleTilt))
    ang = np.rad2deg(np.arccos(np.clip(np.sum(dirs * d(*views[t.tdcViewId].T), -1), -1, 1)))
    assert ang.max() < 10.0
    assert np.hypot(t.rlnOriginXAngst, t.rlnOriginYAngst).max() <= 10.0
    # background normalised, noise std 1, SNR (CTF'd signal inside the particle) as asked
    y, x = np.mgrid[0:BOX, 0:BOX] - BOX // 2
    inside = np.hypot(x, y) <= 0.3 * BOX * 1.2
    assert abs(sim.images[:, ~inside].mean()) < 0.05
    assert sim.images[:, ~inside].std() == pytest.approx(1.0, abs=0.05)
    signal = np.fft.irfft2(
        np.fft.rfft2(sim.clean) * ctf_half_plane(sim.ctf, BOX, APIX), s=(BOX, BOX)
    )
    noise = sim.images - signal
    snr = signal[:, inside].var(axis=1).mean() / noise.var()
    assert 0.07 < snr < 0.14  # asked 0.1 (mask radius differs a little)
    # protein bright: the particle centre is brighter than the background
    assert sim.images[:, BOX // 2 - 3 : BOX // 2 + 3, BOX // 2 - 3 : BOX // 2 + 3].mean() > 0.1


def test_ctf_applied_is_the_ctf_written(tmp_path):
    kw = dict(n_particles=6, box=BOX, apix_A=APIX, snr=1e6, junk_fraction=0.0, seed=5)
    d = simulate_arrays(return_clean=True, **kw)
    res = simulate(tmp_path, **kw)
    ps = read_particles(res.particles_star)
    np.testing.assert_allclose(ps.ctf.defocus_u_A, d.ctf.defocus_u_A, atol=1e-5)
    np.testing.assert_allclose(ps.ctf.defocus_v_A, d.ctf.defocus_v_A, atol=1e-5)
    np.testing.assert_allclose(ps.ctf.defocus_angle_deg, d.ctf.defocus_angle_deg, atol=1e-5)
    assert ps.ctf.voltage_kV[0] == 300.0 and ps.ctf.cs_mm[0] == 2.7
    assert ps.apix_A == APIX and ps.box == BOX
    ctf_file = ctf_image(ps.ctf, BOX, APIX)  # engine.core.ctf from the written values
    np.testing.assert_allclose(ctf_half_plane(d.ctf, BOX, APIX), ctf_file, atol=1e-5)
    fi, fc = np.fft.rfft2(ps.read_images(np.arange(6))), np.fft.rfft2(d.clean)
    k = np.abs(fc) > 0.05 * np.abs(fc).max()
    k[:, 0, 0] = False  # the mean was removed by the normalisation
    ratio = (fi[k] / fc[k]).real
    np.testing.assert_allclose(ratio, ctf_file[k], atol=0.02)
    assert np.mean(np.abs(ctf_file[k])) > 0.2


def test_files_layout_junk_and_float16(tmp_path):
    res = simulate(
        tmp_path,
        n_particles=600,
        box=32,
        apix_A=5.0,
        n_views=5,
        view_weights=[10, 10, 10, 10, 1],
        junk_fraction=0.25,
        seed=1,
        float16=True,
    )
    blocks = read_star(res.particles_star)
    assert list(blocks) == ["optics", "particles"]
    cols = set(blocks["particles"].columns)
    assert not cols & {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst"}
    assert {"rlnDefocusU", "rlnMicrographName", "rlnCoordinateX", "rlnOpticsGroup"} <= cols
    arr, apix = open_stack(res.stack_path)
    assert arr.dtype == np.float16 and arr.shape == (600, 32, 32) and apix == 5.0
    truth = read_star(res.truth_star)["particles"]
    assert truth["rlnImageName"].tolist() == blocks["particles"]["rlnImageName"].tolist()
    junk = truth["tdcJunkKind"] != ""
    assert junk.sum() == 150 and (truth["tdcViewId"][junk] == -1).all()
    assert set(truth["tdcJunkKind"][junk]) == {"noise", "ice", "carbon", "aggregate", "offcentre"}
    counts = np.bincount(truth["tdcViewId"][~junk], minlength=5)
    assert counts[4] < 0.25 * counts[:4].mean()  # the rare view is rare
    # the file holds the same images as the in-memory simulation (float16 rounding)
    mem = simulate_arrays(
        n_particles=600,
        box=32,
        apix_A=5.0,
        n_views=5,
        view_weights=[10, 10, 10, 10, 1],
        junk_fraction=0.25,
        seed=1,
    )
    np.testing.assert_allclose(arr[:50].astype(np.float32), mem.images[:50], atol=0.01)
    off = np.flatnonzero(truth["tdcJunkKind"] == "offcentre")
    r = np.hypot(truth["rlnOriginXAngst"][off], truth["rlnOriginYAngst"][off]) / 5.0
    np.testing.assert_allclose(r, 0.4 * 32, rtol=1e-6)


def test_phantom_views_are_distinct_and_asymmetric():
    gp = GaussianProjector(32)
    v = fibonacci_views(6)
    projs = gp.project(v[:, 0], v[:, 1])
    for i in range(6):
        for a in range(30, 360, 30):  # no in-plane symmetry
            assert corr(projs[i], class_to_particle(projs[i], a, 0, 0)) < 0.95
        for j in range(i + 1, 6):  # no two views alike at any in-plane angle
            best = max(
                corr(projs[i], class_to_particle(projs[j], a, 0, 0)) for a in range(0, 360, 10)
            )
            assert best < 0.8


def test_map_input_and_cli(tmp_path):
    import mrcfile

    vol = phantom_volume(40)
    with mrcfile.new(tmp_path / "map.mrc") as m:
        m.set_data(vol)
        m.voxel_size = 3.0
    rc = main(
        [
            "simulate",
            "-o",
            str(tmp_path / "s"),
            "--particles",
            "20",
            "--box",
            "32",
            "--apix",
            "4",
            "--map",
            str(tmp_path / "map.mrc"),
            "--views",
            "3",
            "-q",
        ]
    )
    assert rc == 0
    ps = read_particles(tmp_path / "s" / "particles.star")
    assert (len(ps), ps.box, ps.apix_A) == (20, 32, 4.0)
    assert main(["simulate", "-o", str(tmp_path / "t"), "--box", "33", "-q"]) == 2
    with pytest.raises(ParameterError, match="snr must be > 0"):
        simulate_arrays(n_particles=5, box=32, snr=0)


def test_elongated_phantom_is_a_rod_seen_from_the_side():
    """The elongated shape: about 2.7 : 1 along x; the projections still match the map."""

    def extent(img, axis):
        prof = np.clip(img, 0, None).sum(axis=axis)
        c = np.cumsum(prof) / prof.sum()
        return np.searchsorted(c, 0.95) - np.searchsorted(c, 0.05)

    gp = GaussianProjector(64, "elongated")
    side = gp.project([0.0], [0.0], [0.0], [0.0], [0.0])[0]  # looking down z: x-y plane
    assert extent(side, 0) > 2.0 * extent(side, 1)  # long along x
    compact = GaussianProjector(64).project([0.0], [0.0], [0.0], [0.0], [0.0])[0]
    assert extent(compact, 0) < 1.5 * extent(compact, 1)
    vol = phantom_volume(64, "elongated")
    assert corr(side, project_real_space(vol, 0.0, 0.0)) > 0.995
    with pytest.raises(ParameterError, match="phantom"):
        simulate_arrays(n_particles=2, box=32, phantom="cube")

"""Fast kernels against their slow twins in tests/naive.py, on random and structured inputs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.ctf import CtfParams, evaluate_ctf
from engine.core.estep import (
    PAD,
    _irfft_rows,
    make_grid,
    particle_spectra,
    reference_spectra,
    score_block,
)
from engine.core.fourier import (
    centred_irfft2,
    centred_rfft2,
    fourier_crop,
    gridding_correction,
    soft_circular_mask,
)
from engine.core.kernels import ctf_polar, polar_sample
from engine.core.mstep import Stats, accumulate
from tests.naive import (
    best_poses_naive,
    loglik_brute,
    mstep_brute,
    nudft,
    polar_points,
    residual_sums_brute,
)

B = 32
APIX = 4.0


def blobs(rng: np.random.Generator, b: int = B) -> np.ndarray:
    y, x = np.mgrid[0:b, 0:b] - b // 2
    img = np.zeros((b, b))
    for _ in range(4):
        cx, cy = rng.uniform(-b / 5, b / 5, 2)
        img += rng.uniform(0.5, 1.5) * np.exp(
            -((x - cx) ** 2 + (y - cy) ** 2) / (2 * rng.uniform(1.0, 2.5) ** 2)
        )
    return (img * soft_circular_mask(b, 0.4 * b, 0.45 * b)).astype(np.float32)


def ctf(n: int, rng: np.random.Generator) -> CtfParams:
    du = rng.uniform(8000, 15000, n)
    return CtfParams(
        du, du + rng.uniform(0, 600, n), rng.uniform(0, 180, n), 300.0, 2.7, 0.1, 0.0, 0.0
    )


def test_polar_sample_matches_exact_dft():
    rng = np.random.default_rng(0)
    img = blobs(rng)[None]
    radii = np.arange(1, B // 2 - 1, dtype=float)
    got = polar_sample(centred_rfft2(img, PAD), PAD, radii, 32)[0]
    kx, ky = polar_points(radii, 32)
    want = nudft(img[0], kx, ky)
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert err < 0.05, err  # bilinear interpolation on a 2x padded transform


def test_centred_transform_round_trip():
    img = blobs(np.random.default_rng(1))[None]
    np.testing.assert_allclose(centred_irfft2(centred_rfft2(img, 1), B), img, atol=1e-5)


def test_fourier_crop_keeps_low_frequencies():
    img = blobs(np.random.default_rng(2), 64)[None]
    small = fourier_crop(img, 32)
    k = np.arange(1, 10, dtype=float)
    a = nudft(img[0], k, 0 * k)
    b = nudft(small[0], k, 0 * k) * 2  # same pixel values, 4x fewer pixels, 1/b scaling
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_ctf_polar_matches_ctf_module():
    rng = np.random.default_rng(3)
    p = ctf(3, rng)
    radii = np.arange(1, 16) / (B * APIX)
    kx, ky = polar_points(radii, 24)
    np.testing.assert_allclose(
        ctf_polar(p.as_matrix(), radii, 24, False), evaluate_ctf(p, kx, ky), atol=1e-5
    )


def test_inverse_dft_product_equals_irfft():
    rng = np.random.default_rng(4)
    S = rng.standard_normal((17, 5, 7)) + 1j * rng.standard_normal((17, 5, 7))
    S = S.astype(np.complex64)
    S[0].imag = 0
    S[-1].imag = 0
    got = _irfft_rows(S, 32)
    want = np.moveaxis(np.fft.irfft(S, n=32, axis=0), 0, -1)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("use_ctf", [False, True])
def test_scores_match_brute_force_likelihood(use_ctf):
    """Polar scores of all rotations and shifts against exact Cartesian likelihoods."""
    rng = np.random.default_rng(6)
    ref = blobs(rng)
    part = blobs(rng) + 0.3 * rng.standard_normal((B, B)).astype(np.float32)
    p = ctf(1, rng) if use_ctf else None
    grid = make_grid(B, APIX, 360 / 64, 1.0, 1.0)  # 64 rotations, 5 shifts
    inv_s2 = rng.uniform(0.5, 2.0, len(grid.radii))
    sc = score_block(
        particle_spectra(part[None], p.as_matrix() if p else None, grid, inv_s2),
        reference_spectra(ref[None], grid),
        grid,
    ).full()[0, 0]  # (T, psi)
    sc = sc[:2, ::2]  # 2 shifts x 32 rotations checked
    brute = np.empty_like(sc)
    for t, tp in enumerate(grid.shifts[:2]):
        for jj in range(grid.n_psi // 2):
            j = 2 * jj
            a = 2 * np.pi * j / grid.n_psi
            tt = np.array(
                [np.cos(a) * tp[0] - np.sin(a) * tp[1], np.sin(a) * tp[0] + np.cos(a) * tp[1]]
            )
            brute[t, jj] = loglik_brute(part, ref, p, APIX, a, tt, inv_s2, grid.radii)
    assert np.corrcoef(sc.ravel(), brute.ravel())[0, 1] > 0.99
    assert np.argmax(sc) == np.argmax(brute)
    # a constant per particle cancels in every posterior; the spread over poses must agree
    spread, brute_spread = np.ptp(sc), np.ptp(brute)
    assert abs(spread - brute_spread) < 0.15 * brute_spread, (spread, brute_spread)


def test_mstep_accumulate_matches_exact_dft():
    rng = np.random.default_rng(7)
    parts = np.stack([blobs(rng) for _ in range(2)])
    p = ctf(2, rng)
    r_max = B // 2 - 1
    sigma2 = rng.uniform(0.5, 2.0, B // 2 + 1)
    st = Stats.zeros(2, B)
    idx = np.array([0, 1, 1])
    cls = np.array([0, 0, 1])
    w = np.array([0.7, 0.4, 1.0])
    psi = np.array([0.3, 2.0, -1.1])
    tx = np.array([0.5, -1.0, 0.0])
    ty = np.array([0.0, 0.7, -1.5])
    accumulate(
        st,
        centred_rfft2(parts, PAD),
        PAD,
        B,
        p.as_matrix(),
        APIX,
        idx,
        cls,
        w,
        psi,
        tx,
        ty,
        sigma2,
        np.zeros((2, B, B // 2 + 1), np.complex64),
        r_max,
    )
    want_num = np.zeros((2, B, B // 2 + 1), complex)
    want_den = np.zeros((2, B, B // 2 + 1))
    for k in range(3):
        n_, d_ = mstep_brute(
            parts[idx[k]],
            p.subset([idx[k]]),
            APIX,
            w[k],
            psi[k],
            np.array([tx[k], ty[k]]),
            1.0 / sigma2,
            r_max,
        )
        want_num[cls[k]] += n_
        want_den[cls[k]] += d_
    np.testing.assert_allclose(st.den, want_den, rtol=1e-4, atol=1e-6)
    err = np.linalg.norm(st.num - want_num) / np.linalg.norm(want_num)
    assert err < 0.05, err  # bilinear interpolation on a 2x padded transform
    np.testing.assert_allclose(st.weight, [1.1, 1.0])


def test_residual_band_sums_match_exact_dft():
    """Per-particle sums of the particle filter's statistics (engine.core.particle_residuals)
    against exact DFTs; a particle that is its posed, CTF-modulated class has no residual."""
    from engine.core.kernels import residual_band_sums
    from engine.core.pose import class_to_particle

    rng = np.random.default_rng(11)
    refs = np.stack([blobs(rng) for _ in range(2)])
    parts = np.stack([blobs(rng) for _ in range(3)])
    p = ctf(3, rng)
    cls = np.array([0, 1, 1])
    psi = np.array([0.4, -2.2, 1.3])
    tx = np.array([0.5, -1.0, 0.0])
    ty = np.array([0.0, 0.7, -1.5])
    sigma2 = rng.uniform(0.5, 2.0, B // 2 + 1)
    ref_half = centred_rfft2(refs, 1)
    r_lo, r_hi = B * APIX / 200.0, B * APIX / 25.0  # the 200-25 Å band it is used on
    grid = gridding_correction(B, PAD)[None]  # as engine.core.particle_residuals does
    got = residual_band_sums(
        centred_rfft2(parts * grid, PAD),
        PAD,
        B,
        p.as_matrix(),
        True,
        APIX,
        cls,
        psi,
        tx,
        ty,
        ref_half,
        sigma2,
        r_lo,
        r_hi,
    )
    for i in range(3):
        want = residual_sums_brute(
            parts[i],
            ref_half[cls[i]],
            p.subset([i]),
            APIX,
            psi[i],
            np.array([tx[i], ty[i]]),
            sigma2,
            r_lo,
            r_hi,
        )
        np.testing.assert_allclose(got[i, [2, 3]], want[[2, 3]], rtol=1e-4)
        np.testing.assert_allclose(
            got[i, [0, 1]], want[[0, 1]], rtol=0.05, atol=0.02 * np.abs(want[:2]).max()
        )
    # the class itself, posed (RELION psi = -internal psi, origin = -shift) without CTF
    part = class_to_particle(refs[0], -np.rad2deg(psi[0]), -tx[0], -ty[0])[None]
    sxx, sxm, smm, _ = residual_band_sums(
        centred_rfft2(part * grid, PAD),
        PAD,
        B,
        np.zeros((1, 8)),
        False,
        APIX,
        cls[:1],
        psi[:1],
        tx[:1],
        ty[:1],
        ref_half,
        sigma2,
        r_lo,
        r_hi,
    )[0]
    assert sxm > 0 and (sxx - sxm**2 / smm) / sxx < 0.02


def test_fast_estep_agrees_with_plain_estep():
    """Same best class and pose as the plain Cartesian E-step on simulated particles."""
    from engine.core.reference_estep import plain_scores
    from engine.sim.simulate import simulate_arrays

    sim = simulate_arrays(
        n_particles=12,
        box=32,
        apix_A=4.0,
        snr=0.5,
        junk_fraction=0.0,
        n_views=3,
        seed=2,
        return_clean=True,
    )
    mask = soft_circular_mask(B, 13, 15)
    imgs = sim.images * mask
    rng = np.random.default_rng(8)
    refs = np.stack([blobs(rng) for _ in range(3)])
    refs[0] = sim.clean[0] * mask  # one reference that really fits
    grid = make_grid(B, 4.0, 360 / 32, 1.0, 1.0)
    inv_s2 = np.full(B // 2 + 1, 1.0)
    fast = score_block(
        particle_spectra(imgs, sim.ctf.as_matrix(), grid, inv_s2[grid.radii.astype(int)]),
        reference_spectra(refs, grid),
        grid,
    ).full()
    plain = plain_scores(imgs, refs, sim.ctf, grid, inv_s2)
    f = fast.reshape(12, 3, -1)
    p = plain.reshape(12, 3, -1)
    # the same class wherever the plain E-step decides clearly (margin > 10 log units)
    pm = np.sort(p.max(axis=2), axis=1)
    clear = pm[:, -1] - pm[:, -2] > 10.0
    assert clear.sum() >= 6
    assert (f.max(axis=2).argmax(axis=1) == p.max(axis=2).argmax(axis=1))[clear].all()
    # in the chosen class, the fast best pose is (near) best for the plain E-step too
    for i in np.nonzero(clear)[0]:
        c = int(p[i].max(axis=1).argmax())
        got = p[i, c, f[i, c].argmax()]
        assert p[i, c].max() - got <= 0.05 * np.ptp(p[i, c]), i
    for i in range(12):
        a = f[i] - f[i].mean()
        b = p[i] - p[i].mean()
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


def test_fused_best_poses_equals_two_step():
    from engine.core.estep import inverse_dft_matrix
    from engine.core.kernels import fused_best_poses

    rng = np.random.default_rng(9)
    M, n, K, T, P = 9, 5, 3, 4, 16
    S = rng.standard_normal((M, n, K * T)) + 1j * rng.standard_normal((M, n, K * T))
    S = S.astype(np.complex64)
    ctf2 = rng.standard_normal((n, K, P)).astype(np.float32)
    xpow = rng.standard_normal(n)
    prior = -rng.uniform(0, 1, (n, T))
    cross = _irfft_rows(S, P).reshape(n, K, T, P)
    want = best_poses_naive(cross, ctf2, xpow, prior, 0.7)
    got = fused_best_poses(S, inverse_dft_matrix(P), ctf2, xpow, prior, 0.7, T)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_move_images_moves_content_by_the_given_pixels():
    from engine.core.fourier import move_images

    img = np.zeros((1, 32, 32), np.float32)
    img[0, 16, 16] = 1.0
    out = move_images(img, np.array([[3.0, -2.0]]))
    y, x = np.unravel_index(np.argmax(out[0]), out[0].shape)
    assert (x, y) == (19, 14)  # x = column, y = row
    back = move_images(out, np.array([[-3.0, 2.0]]))
    np.testing.assert_allclose(back, img, atol=1e-5)


def test_rotate_vectors_turns_class_frame_shifts_into_the_particle_frame():
    """Content at ``v`` from the class centre sits at ``R(-psi) v`` in a particle of RELION
    angle ``psi`` (engine.core.pose.rotate_vectors with the internal angle ``-psi``)."""
    from engine.core.pose import class_to_particle, rotate_vectors

    b = 48
    y, x = np.mgrid[0:b, 0:b] - b // 2
    v = np.array([9.0, -4.0])
    ref = np.exp(-((x - v[0]) ** 2 + (y - v[1]) ** 2) / 2.0)
    for psi in (0.0, 30.0, 90.0, 241.0):
        part = class_to_particle(ref, psi, 0.0, 0.0)
        yy, xx = np.unravel_index(np.argmax(part), part.shape)
        want = rotate_vectors(np.deg2rad(-psi), v)
        assert np.hypot(xx - b // 2 - want[0], yy - b // 2 - want[1]) < 1.0, psi
    many = rotate_vectors(np.array([[0.0], [np.pi / 2]]), np.array([[[1.0, 0.0], [0.0, 2.0]]]))
    np.testing.assert_allclose(many, [[[1, 0], [0, 2]], [[0, 1], [-2, 0]]], atol=1e-12)


def test_members_follow_a_recentred_class():
    """A particle P = class turned by psi and moved by t stays the same image when its class is
    re-centred and its offset follows (engine.core.model.follow_recentred)."""
    from engine.core.fourier import move_images
    from engine.core.model import State, follow_recentred
    from engine.core.mstep import Stats
    from engine.core.pose import class_to_particle

    b = 48
    y, x = np.mgrid[0:b, 0:b] - b // 2
    blob_a = np.exp(-((x - 5) ** 2 + (y - 2) ** 2) / 8.0)
    blob_b = 0.6 * np.exp(-((x + 1) ** 2 + (y + 6) ** 2) / 5.0)
    ref = (blob_a + blob_b).astype(np.float32)
    psi = np.array([0.0, 37.0, 200.0])
    t = np.array([[1.5, -2.0], [-3.0, 0.5], [2.0, 2.0]])
    # P(x) = V(R(-psi)(x - t)); class_to_particle takes RELION's psi and origin = -t
    parts = [class_to_particle(ref, p, -tt[0], -tt[1]) for p, tt in zip(psi, t, strict=True)]
    moved = np.array([[-4.0, 3.0]])
    ref2 = move_images(ref[None], moved)[0]
    st = State(stats=Stats.zeros(1, b), sigma2=np.ones(b // 2 + 1), refs=ref2[None],
               cls=np.zeros(3, np.int32), psi_deg=psi.astype(np.float32),
               shift_px=t.astype(np.float32), maxprob=np.ones(3, np.float32),
               loglik=np.zeros(3, np.float32), nsig=np.ones(3, np.int32))  # fmt: skip
    follow_recentred(st, moved, max_px=20.0)
    m = np.hypot(x, y) < 16
    for i in range(3):
        tt = st.shift_px[i]
        again = class_to_particle(ref2, psi[i], -tt[0], -tt[1])
        assert np.abs(again - parts[i])[m].max() < 0.02, i


def test_moved_spectra_are_the_spectra_of_the_moved_image():
    """engine.core.estep.moved_spectra (a phase ramp on the kept rings) gives the angular
    spectra of the same masked image moved by d, to the interpolation error (1%)."""
    from engine.core.estep import moved_spectra
    from engine.core.fourier import move_images

    b = 48
    rng = np.random.default_rng(0)
    images = np.stack([blobs(rng, b) for _ in range(3)])
    grid = make_grid(b, APIX, 6.0, 2.5, 1.0)
    inv_s2 = np.ones(len(grid.radii))
    d = np.array([[2.0, -1.5], [-3.0, 0.5], [0.7, 3.1]])
    ps = particle_spectra(images, None, grid, inv_s2, keep_rings=True)
    got = moved_spectra(ps, np.arange(3), d, grid)
    want = particle_spectra(move_images(images, d), None, grid, inv_s2)
    scale = np.abs(want.A).max()
    assert np.abs(got.A - want.A).max() < 0.02 * scale
    # the other direction is far off: the sign is checked
    away = particle_spectra(move_images(images, -d), None, grid, inv_s2)
    assert np.abs(got.A - away.A).max() > 0.3 * scale
    np.testing.assert_allclose(got.xpow, ps.xpow)


@pytest.mark.parametrize("force_max", [True, False])
def test_a_particle_stranded_off_centre_is_searched_back_at_the_picked_position(force_max):
    """A particle whose stored offset t0 is 5 px off while it sits at the picked position
    (one wrong alignment left it there) is found again at the picked position when the
    origin window is searched too (engine.core.model.search_blocks, same masked pixels);
    a particle that really sits at t0 keeps t0, and one whose window reaches the picked
    position is searched around t0 only. Without the origin window the first stays within
    the window around t0."""
    from engine.core.estep import moved_spectra
    from engine.core.fourier import move_images
    from engine.core.model import origin_window, search_blocks

    b = 48
    rng = np.random.default_rng(3)
    refs = np.stack([blobs(rng, b), blobs(rng, b)])
    grid = make_grid(b, APIX, 360 / 64, 2.5, 1.0)
    mask = soft_circular_mask(b, 0.45 * b, 0.48 * b)
    t0 = np.array([[5.0, 0.0], [5.0, 0.0], [0.0, 1.0]])
    # particle 0: class 1 at the picked position; 1: class 1 moved by t0; 2: class 0 at t0
    parts = np.stack(
        [refs[1], move_images(refs[1][None], t0[1:2])[0], move_images(refs[0][None], t0[2:])[0]]
    )
    parts += 0.05 * rng.standard_normal(parts.shape).astype(np.float32)
    images = move_images(parts, -t0) * mask[None]
    inv_s2 = np.ones(len(grid.radii))
    refspec = reference_spectra(refs * mask[None], grid)
    ps = particle_spectra(images, None, grid, inv_s2, keep_rings=True)
    sc = score_block(ps, refspec, grid)

    home_refs, home_grid = origin_window(refspec, grid)
    assert len(home_grid.shifts) == 5  # the centre and its four neighbours one step away

    def origin(rows):
        moved = moved_spectra(ps, rows, t0[rows], grid)
        return score_block(moved, home_refs, home_grid, sc.ctf2[rows])

    log_pi = np.log([0.5, 0.5])
    psi = np.zeros(3)
    res, n_back = search_blocks(sc, log_pi, t0, psi, 3.0, grid, 1.0, force_max, origin, 2.5)
    assert n_back == 1
    assert list(res.cls) == [1, 1, 0]
    assert np.hypot(*res.shift_px[0]) < 0.5, res.shift_px
    for i in (1, 2):
        assert np.hypot(*(res.shift_px[i] - t0[i])) < 0.5, res.shift_px
    # the M-step moves the t0-centred image: particle 0's pose there is -t0
    li, cc, ww, _, tx, ty = res.pairs
    top = [np.flatnonzero(li == i)[np.argmax(ww[li == i])] for i in (0, 1, 2)]
    np.testing.assert_allclose([tx[top[0]], ty[top[0]]], -t0[0], atol=0.5)
    for i in (1, 2):
        np.testing.assert_allclose([tx[top[i]], ty[top[i]]], [0.0, 0.0], atol=0.5)

    alone, n0 = search_blocks(sc, log_pi, t0, psi, 3.0, grid, 1.0, force_max, None)
    assert n0 == 0
    assert np.hypot(*(alone.shift_px[0] - t0[0])) <= 2.5

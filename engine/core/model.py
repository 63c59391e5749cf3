"""The classification: online EM over random batches, then full passes (cryoSPARC's schedule).

Pure computation on arrays: a :class:`Dataset` of particles already Fourier-cropped to the
small box goes in, a :class:`State` (class sums, noise model, per-particle poses and classes)
comes out. Files, progress display and MPI transport are handed in as callbacks/objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.core.dataset import Dataset
from engine.core.estep import (
    PAD,
    PolarGrid,
    ReferenceSpectra,
    Scores,
    inverse_dft_matrix,
    make_grid,
    moved_spectra,
    particle_spectra,
    score_block,
)
from engine.core.fourier import (
    centred_rfft2,
    move_images,
    radial_average,
    shell_index,
    soft_circular_mask,
)
from engine.core.kernels import fused_best_poses
from engine.core.mstep import (
    Stats,
    accumulate,
    initial_stats_from_images,
    recentre,
    reseed_dead,
    resolution_A,
    wiener_averages,
)
from engine.core.parallel import (
    StageClock,
    map_ordered,
    process_threads,
    reference_spectra_parallel,
)
from engine.core.pose import rotate_vectors
from engine.core.schedule import (
    batch_indices,
    n_iterations,
    online_updates,
    recentre_update,
    step_size,
    temperature,
    update_step,
)
from engine.params import ClassifyParams

__all__ = [
    "Dataset",
    "State",
    "Geometry",
    "geometry_for",
    "classify",
    "n_iterations",
    "online_updates",
    "temperature",
    "step_size",
]

MIN_PAIR_WEIGHT = 1e-3  # posterior below which a class is pruned from a particle's M-step
MAX_POSES = 32  # poses per particle kept by full marginalisation
MAX_CLASSES = 12  # classes per particle kept for the M-step (force max), by posterior
AUTO_ALIGN_T = 0.25  # automatic alignment T (README, 'Why lower T for alignment')
AUTO_ALIGN_T_MIN_CLASSES = 20  # ... from this many classes on, with CTF correction


@dataclass
class Geometry:
    """Derived sampling: masks and the polar/offset grid on the small box."""

    grid: PolarGrid
    mask: np.ndarray  # (b, b) soft mask applied to particles and references
    diameter_A: float
    diameter_outer_A: float
    offset_sigma_px: float
    offset_range_px: float  # radius of the searched offset window
    max_offset_px: float  # cap on a particle's accumulated offset: 15% of the inner diameter


def geometry_for(p: ClassifyParams, data: Dataset) -> Geometry:
    b, a = data.b, data.apix_small_A
    d_in, d_out = p.mask_diameters_A(data.box, data.apix_A)
    mask = soft_circular_mask(b, 0.5 * d_in / a, 0.5 * d_out / a)
    rng_px = (p.offset_range_A / a) if p.offset_range_A is not None else 2.5
    step_px = (p.offset_step_A / a) if p.offset_step_A else 1.0
    grid = make_grid(b, a, p.psi_step_deg, rng_px, step_px, p.min_res_align_A)
    sig = (p.offset_sigma_A / a) if p.offset_sigma_A else 0.1 * b
    return Geometry(
        grid=grid,
        mask=mask,
        diameter_A=d_in,
        diameter_outer_A=d_out,
        offset_sigma_px=sig,
        offset_range_px=rng_px,
        max_offset_px=max(rng_px, 0.15 * d_in / a),
    )


@dataclass
class State:
    """Everything an interrupted run needs to continue (see engine.checkpoint)."""

    stats: Stats
    sigma2: np.ndarray  # (n_shells,) noise power per shell
    refs: np.ndarray  # (K, b, b) float32 current class averages (masked)
    cls: np.ndarray  # (N,) int32 best class, -1 = not yet visited
    psi_deg: np.ndarray  # (N,) float32 rlnAnglePsi (RELION's sign, engine.core.pose)
    shift_px: np.ndarray  # (N, 2) float32 particle shift t (small px): P = V(R(-psi)(x-t))
    maxprob: np.ndarray  # (N,) float32
    loglik: np.ndarray  # (N,) float32
    nsig: np.ndarray  # (N,) int32 significant classes/poses
    iteration: int = 0  # iterations completed
    history: list[dict[str, Any]] = field(default_factory=list)
    resolution_A: np.ndarray | None = None  # (K,)
    ssnr: np.ndarray | None = None  # (K, n_shells)
    ess: np.ndarray | None = None  # (K,) effective sample size of the last full pass


def _block_size(K: int, T: int, n_psi: int) -> int:
    """Particles per block: about 20 MB of pose spectra each, small enough for many blocks in
    flight and for every thread to have blocks to the end of an online batch (fixed: the
    result does not depend on the thread count)."""
    return int(np.clip(5.0e6 // max(K * T * n_psi, 1), 8, 512))


def _masked_block(data: Dataset, idx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return data.images_of(idx) * mask[None]


class Reducer:
    """Combines sums across processes; the single-process version does nothing."""

    rank = 0
    size = 1

    def sum_stats(self, st: Stats) -> Stats:
        return st

    def sum_array(self, a: np.ndarray) -> np.ndarray:
        return a

    def gather_particles(self, values: np.ndarray, owned: np.ndarray) -> np.ndarray:
        return values


def gather_state(red: Reducer, state: State, data: Dataset) -> None:
    """Give every process the per-particle results of all processes (MPI; no-op otherwise)."""
    if red.size <= 1:
        return
    owned = np.arange(data.n) % data.size == data.rank
    state.cls = red.gather_particles(state.cls + 1, owned) - 1
    for name in ("psi_deg", "shift_px", "maxprob", "loglik", "nsig"):
        setattr(state, name, red.gather_particles(getattr(state, name), owned))


def initial_noise(
    data: Dataset, geo: Geometry, rng: np.random.Generator, reducer: Reducer
) -> np.ndarray:
    """Noise power per shell from the spectra of a random subset (mostly noise at low SNR)."""
    b = data.b
    idx = data.owned(np.sort(rng.choice(data.n, size=min(data.n, 500), replace=False)))
    F = centred_rfft2(_masked_block(data, idx, geo.mask), 1)
    s2 = radial_average((np.abs(F) ** 2).sum(axis=0), shell_index(b), b // 2 + 1)
    tot = reducer.sum_array(np.concatenate([s2, [float(len(idx))]]))
    s2 = tot[:-1] / max(tot[-1], 1.0)
    s2[s2 <= 0] = s2[s2 > 0].min() if np.any(s2 > 0) else 1.0
    return s2


def initial_state(
    p: ClassifyParams, data: Dataset, geo: Geometry, reducer: Reducer | None = None
) -> State:
    """Noise model from the data; references from random subsets averaged without alignment."""
    red = reducer or Reducer()
    rng = np.random.default_rng([p.seed, 17])
    K, b, N = p.n_classes, data.b, data.n
    sigma2 = initial_noise(data, geo, rng, red)
    m = min(N, max(K, min(N, K * 20)))
    idx = np.sort(rng.choice(N, size=m, replace=False))
    cls = rng.permutation(np.arange(m) % K)
    own = idx % data.size == data.rank
    idx, cls = idx[own], cls[own]
    ctfm = data.ctfm[idx] if (data.ctfm is not None and p.ctf) else None
    st = initial_stats_from_images(
        _masked_block(data, idx, geo.mask),
        ctfm,
        cls,
        K,
        b,
        data.apix_small_A,
        sigma2,
        geo.grid.r_max,
        PAD,
    )
    st = red.sum_stats(st)
    refs, _, _ = wiener_averages(st, alignment_t(p), geo.mask, geo.grid.r_max)
    return State(
        stats=st,
        sigma2=sigma2,
        refs=refs,
        cls=np.full(N, -1, np.int32),
        psi_deg=np.zeros(N, np.float32),
        shift_px=np.zeros((N, 2), np.float32),
        maxprob=np.zeros(N, np.float32),
        loglik=np.zeros(N, np.float32),
        nsig=np.zeros(N, np.int32),
    )


def alignment_t(p: ClassifyParams) -> float:
    """T of the references the particles are aligned to (``--align-tau2-fudge``; automatic:
    0.25 with CTF correction and at least 20 classes, else ``--tau2-fudge``)."""
    if p.align_tau2_fudge is not None:
        return float(p.align_tau2_fudge)
    if p.ctf and p.n_classes >= AUTO_ALIGN_T_MIN_CLASSES:
        return AUTO_ALIGN_T
    return float(p.tau2_fudge)


def cap_offsets(t: np.ndarray, max_px: float) -> np.ndarray:
    """Particle offsets ``(n, 2)`` shortened to at most ``max_px``."""
    r = np.hypot(t[:, 0], t[:, 1])
    return t * np.minimum(1.0, max_px / np.maximum(r, 1e-12))[:, None]


def offset_prior(
    t0: np.ndarray, psi_deg: np.ndarray, shifts: np.ndarray, sigma_px: float
) -> np.ndarray:
    """Log Gaussian prior ``(n, T)`` of each particle's *total* offset ``t0 + R(psi) t'`` for
    every searched class-frame shift ``t'`` (RELION's prior, centred on the picked position, so
    offsets that accumulate over the iterations cannot walk away). ``psi`` is the particle's
    last in-plane angle (RELION's sign; 0 before its first visit), standing in for the one
    the search will find."""
    a = -np.deg2rad(np.asarray(psi_deg, dtype=np.float64))[:, None]
    t = t0[:, None, :] + rotate_vectors(a, shifts[None, :, :])
    return -0.5 * (t * t).sum(axis=2) / sigma_px**2


def offset_sigma(state: State, geo: Geometry, red: Reducer, learn: bool = True) -> float:
    """Width (small px) of the offset prior: ``geo.offset_sigma_px`` when the user set it
    (``learn`` False), else RELION's estimate from the particles' current offsets,
    ``sqrt(mean |t|^2 / 2)``, between 1 px and ``geo.offset_sigma_px`` (which it is until
    the first visit)."""
    if not learn:
        return geo.offset_sigma_px
    seen = state.cls >= 0
    sums = red.sum_array(
        np.array([float((state.shift_px[seen].astype(np.float64) ** 2).sum()), float(seen.sum())])
    )
    if sums[1] <= 0:
        return geo.offset_sigma_px
    return float(np.clip(np.sqrt(sums[0] / (2.0 * sums[1])), 1.0, geo.offset_sigma_px))


def follow_recentred(state: State, moved: np.ndarray, max_px: float) -> None:
    """Keep the members of re-centred classes on them: class ``c``'s content moved by
    ``moved[c]`` (class frame, small px), so a member's offset ``t`` (``P = V(R(-psi)(x - t))``)
    becomes ``t - R(psi) moved[c]`` (internal psi = -rlnAnglePsi)."""
    mine = np.flatnonzero(state.cls >= 0)
    d = moved[state.cls[mine]]
    if not np.any(d):
        return
    a = -np.deg2rad(state.psi_deg[mine].astype(np.float64))
    t = state.shift_px[mine].astype(np.float64) - rotate_vectors(a, d)
    state.shift_px[mine] = cap_offsets(t, max_px)


def _refine_parabola(s_m: np.ndarray, s_0: np.ndarray, s_p: np.ndarray) -> np.ndarray:
    den = s_m - 2.0 * s_0 + s_p
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(den < 0, 0.5 * (s_m - s_p) / den, 0.0)
    return np.clip(d, -0.5, 0.5)


@dataclass
class BlockResult:
    """Per-particle outcome of one block and the particle-class pairs for the M-step."""

    cls: np.ndarray
    psi_deg: np.ndarray
    shift_px: np.ndarray
    maxprob: np.ndarray
    loglik: np.ndarray
    nsig: np.ndarray
    pairs: tuple[np.ndarray, ...]  # (local idx, class, weight, psi_rad, tx, ty)
    shift_index: np.ndarray  # (n,) the best pose's row of the searched shifts
    pair_shift_index: np.ndarray  # the same for every pair


def best_poses(sc: Scores, logprior_t: np.ndarray, A: float) -> tuple[np.ndarray, ...]:
    """:func:`fused_best_poses` of a block: per ``(n, K)`` the best score, its shift and
    rotation indices, the scores one rotation either side, and the log-likelihood."""
    n = sc.ctf2.shape[0]
    T = sc.n_shifts
    return fused_best_poses(
        sc.S,
        inverse_dft_matrix(sc.n_psi),
        sc.ctf2,
        sc.xpow,
        np.ascontiguousarray(np.broadcast_to(logprior_t, (n, T)), dtype=np.float64),
        1.0 / A,
        T,
    )


def assign_block(
    sc: Scores,
    log_pi: np.ndarray,
    logprior_t: np.ndarray,
    grid: PolarGrid,
    A: float,
    force_max: bool,
    clock: StageClock | None = None,
    best: tuple[np.ndarray, ...] | None = None,
) -> BlockResult:
    """Posteriors from the pose scores of a block at temperature A (``clock``: the pose
    search is charged to "poses"; the caller charges the rest). With ``force_max``,
    ``best`` may give :func:`best_poses` already searched (then ``grid.shifts`` is the table
    its shift indices point into)."""
    n, K, npsi = sc.ctf2.shape
    T = sc.n_shifts
    step = 2.0 * np.pi / npsi
    shifts = grid.shifts
    ar = np.arange(n)
    if force_max:
        if best is None:
            best = best_poses(sc, logprior_t, A)
        sbest, ti, j, s_minus, s_plus, lbest = best
        if clock is not None:
            clock.lap("poses")
        psi = (j + _refine_parabola(s_minus, sbest, s_plus)) * step  # (n, K) rad
        lp = log_pi[None, :] + sbest
        lp -= lp.max(axis=1, keepdims=True)
        g = np.exp(lp)
        g /= g.sum(axis=1, keepdims=True)
        c_best = g.argmax(axis=1)
        keep = g >= MIN_PAIR_WEIGHT
        if K > MAX_CLASSES:
            kth = -np.partition(-g, MAX_CLASSES - 1, axis=1)[:, MAX_CLASSES - 1 : MAX_CLASSES]
            keep &= g >= kth
        g = np.where(keep, g, 0.0)
        g /= g.sum(axis=1, keepdims=True)
        ii, cc = np.nonzero(keep)
        ps = psi[ii, cc]
        t = rotate_vectors(ps, shifts[ti[ii, cc]])
        pairs = (ii, cc, g[ii, cc], ps, t[:, 0], t[:, 1])
        pair_ti = ti[ii, cc]
        bt = ti[ar, c_best]
        bpsi = psi[ar, c_best]
        btp = shifts[bt]
        maxprob = g[ar, c_best]
        loglik = lbest[ar, c_best]
        nsig = keep.sum(axis=1)
    else:
        L = sc.full()
        if clock is not None:
            clock.lap("poses")
        S = L / A + np.broadcast_to(logprior_t, (n, T))[:, None, :, None]
        lw = (log_pi[None, :, None, None] + S).reshape(n, -1)
        lw -= lw.max(axis=1, keepdims=True)
        w = np.exp(lw)
        w /= w.sum(axis=1, keepdims=True)
        order = np.argsort(-w, axis=1)[:, :MAX_POSES]
        wo = np.take_along_axis(w, order, axis=1)
        cum = np.cumsum(wo, axis=1)
        keep = (cum - wo < 0.99) & (wo >= MIN_PAIR_WEIGHT * wo[:, :1])
        wo = np.where(keep, wo, 0.0)
        wo /= wo.sum(axis=1, keepdims=True)
        cc, ti, j = np.unravel_index(order, (K, T, npsi))
        ii = np.repeat(ar[:, None], order.shape[1], axis=1)
        ps = j * step
        t = rotate_vectors(ps, shifts[ti])
        k = keep
        pairs = (ii[k], cc[k], wo[k], ps[k], t[..., 0][k], t[..., 1][k])
        pair_ti = ti[k]
        cls_post = w.reshape(n, K, -1).sum(axis=2)
        c_best = cls_post.argmax(axis=1)
        within = w.reshape(n, K, -1)[ar, c_best].argmax(axis=1)
        bt, bj = np.divmod(within, npsi)
        bpsi = bj * step
        btp = shifts[bt]
        maxprob = w.max(axis=1)
        loglik = L.reshape(n, K, -1)[ar, c_best, within]
        nsig = keep.sum(axis=1)
    shift = rotate_vectors(bpsi, btp)
    # internal angle: particle = class rotated by +psi; RELION's rlnAnglePsi is its negative
    return BlockResult(
        cls=c_best.astype(np.int32),
        psi_deg=(-np.rad2deg(bpsi)) % 360.0,
        shift_px=shift,
        maxprob=maxprob,
        loglik=loglik,
        nsig=nsig,
        pairs=pairs,
        shift_index=bt,
        pair_shift_index=pair_ti,
    )


def _two_windows(sc: Scores, rows: np.ndarray, other: Scores) -> Scores:
    """Particles ``rows`` of ``sc`` scored over two shift windows (``sc``'s shifts, then
    ``other``'s), from the same masked pixels (so ``ctf2`` and ``xpow`` are ``sc``'s)."""
    M = sc.S.shape[0]
    n, K = len(rows), sc.ctf2.shape[1]
    T, T0 = sc.n_shifts, other.n_shifts
    S = np.concatenate([sc.S[:, rows].reshape(M, n, K, T), other.S.reshape(M, n, K, T0)], axis=3)
    return Scores(
        S=S.reshape(M, n, K * (T + T0)),
        ctf2=sc.ctf2[rows],
        xpow=sc.xpow[rows],
        n_shifts=T + T0,
        n_psi=sc.n_psi,
    )


def _merge_results(n: int, parts: list[tuple[np.ndarray, BlockResult]]) -> BlockResult:
    """One block's result from the results of disjoint sets of its particles (``rows``)."""
    first = parts[0][1]
    out = {}
    for name in ("cls", "psi_deg", "shift_px", "maxprob", "loglik", "nsig", "shift_index"):
        a = getattr(first, name)
        out[name] = np.zeros((n,) + a.shape[1:], dtype=a.dtype)
        for rows, r in parts:
            out[name][rows] = getattr(r, name)
    pairs = tuple(
        np.concatenate([rows[r.pairs[0]] if i == 0 else r.pairs[i] for rows, r in parts])
        for i in range(6)
    )
    psi = np.concatenate([r.pair_shift_index for _, r in parts])
    return BlockResult(pairs=pairs, pair_shift_index=psi, **out)


def origin_window(refspec: ReferenceSpectra, grid: PolarGrid) -> tuple[ReferenceSpectra, PolarGrid]:
    """The references and grid of the window searched around the picked position for the
    particles whose own window does not reach it (``--search-origin``): the shifts of
    ``grid`` within one search step of the centre (the grid lists them nearest first)."""
    r = np.hypot(grid.shifts[:, 0], grid.shifts[:, 1])
    step = r[r > 1e-9].min() if np.any(r > 1e-9) else 0.0
    T, T0 = len(r), int(np.sum(r <= step + 1e-9))
    M, R, KT = refspec.W.shape
    W = refspec.W.reshape(M, R, KT // T, T)[..., :T0].reshape(M, R, -1)
    return replace(refspec, W=np.ascontiguousarray(W)), replace(grid, shifts=grid.shifts[:T0])


def search_blocks(
    sc: Scores,
    log_pi: np.ndarray,
    t0: np.ndarray,
    psi_deg: np.ndarray,
    sigma_t: float,
    grid: PolarGrid,
    A: float,
    force_max: bool,
    origin: Callable[[np.ndarray], Scores] | None = None,
    reach: float | None = None,
    clock: StageClock | None = None,
) -> tuple[BlockResult, int]:
    """Poses of a block whose particles were centred on their offsets ``t0`` (small px):
    the window around ``t0``, and, with ``origin``, also the window around the picked
    position for the particles further than ``reach`` (default: the largest searched shift)
    from it (``origin(rows)``: their scores with the same masked pixels moved back to the
    picked position). The prior and the posterior span both windows. Returns the result
    with total offsets and M-step shifts relative to ``t0``, and how many particles took a
    pose of the origin window."""
    n, T = len(t0), grid.shifts.shape[0]
    prior = offset_prior(t0, psi_deg, grid.shifts, sigma_t)
    far = np.zeros(n, dtype=bool)
    if origin is not None:
        if reach is None:
            reach = float(np.hypot(grid.shifts[:, 0], grid.shifts[:, 1]).max()) if T else 0.0
        far = np.hypot(t0[:, 0], t0[:, 1]) > reach + 1e-6
    if origin is None or not far.any():
        res = assign_block(sc, log_pi, prior, grid, A, force_max, clock)
        res.shift_px = t0 + res.shift_px
        return res, 0
    rows = np.flatnonzero(far)
    sc0 = origin(rows)
    if clock is not None:
        clock.lap("origin")
    home = grid.shifts[: sc0.n_shifts]  # the origin window: the nearest shifts of the grid
    prior0 = offset_prior(np.zeros((len(rows), 2)), psi_deg[rows], home, sigma_t)
    grid2 = replace(grid, shifts=np.concatenate([grid.shifts, home]))
    if force_max:  # the better of the two windows per (particle, class)
        best = list(best_poses(sc, prior, A))  # fresh arrays: updated in place
        b0 = best_poses(sc0, prior0, A)
        take = b0[0] > best[0][rows]
        best[1][rows] = np.where(take, b0[1] + T, best[1][rows])
        for x, x0 in zip(best[:1] + best[2:], b0[:1] + b0[2:], strict=True):
            x[rows] = np.where(take, x0, x[rows])
        res = assign_block(sc, log_pi, prior, grid2, A, True, clock, tuple(best))
        _relative_to_t0(res, t0, T)
        return res, int((res.shift_index >= T).sum())
    both = _two_windows(sc, rows, sc0)
    r = assign_block(both, log_pi, np.hstack([prior[rows], prior0]), grid2, A, False, clock)
    _relative_to_t0(r, t0[rows], T)
    parts = [(rows, r)]
    near = np.flatnonzero(~far)
    if len(near):
        rn = assign_block(_rows(sc, near), log_pi, prior[near], grid, A, False, clock)
        rn.shift_px = t0[near] + rn.shift_px
        parts.append((near, rn))
    return _merge_results(n, parts), int((r.shift_index >= T).sum())


def _relative_to_t0(res: BlockResult, t0: np.ndarray, T: int) -> None:
    """Poses searched over two windows (shift index below ``T``: around ``t0``; from ``T``:
    around the picked position): offsets from the picked position, and M-step shifts
    relative to ``t0`` (the pixels the M-step is given are centred on ``t0``)."""
    back = res.shift_index >= T
    res.shift_px = np.where(back[:, None], res.shift_px, t0 + res.shift_px)
    li, cc, ww, pr, tx, ty = res.pairs
    pb = res.pair_shift_index >= T
    res.pairs = (li, cc, ww, pr, tx - pb * t0[li, 0], ty - pb * t0[li, 1])


def _rows(sc: Scores, rows: np.ndarray) -> Scores:
    """The scores of some particles of a block."""
    return Scores(
        S=np.ascontiguousarray(sc.S[:, rows]),
        ctf2=sc.ctf2[rows],
        xpow=sc.xpow[rows],
        n_shifts=sc.n_shifts,
        n_psi=sc.n_psi,
    )


def run_iteration(
    p: ClassifyParams,
    data: Dataset,
    geo: Geometry,
    state: State,
    it: int,
    reducer: Reducer | None = None,
    on_block: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """One E+M iteration (online batch or full pass); updates ``state`` in place.

    Blocks of particles run on several threads (:func:`engine.core.parallel.map_ordered`);
    each block's M-step goes to its own sums, added to the batch in block order, so the
    result does not depend on the number of threads.
    """
    red = reducer or Reducer()
    t0 = time.perf_counter()
    clock = StageClock()
    threads = process_threads(p)
    grid = geo.grid
    K, b = p.n_classes, data.b
    online = it <= online_updates(p, data.n)
    A = temperature(p, it, data.n)
    idx_all = batch_indices(p, data.n, it) if online else np.arange(data.n)
    idx_mine = data.owned(idx_all)
    inv_s2 = 1.0 / np.maximum(state.sigma2[np.rint(grid.radii).astype(int)], 1e-30)
    refspec = reference_spectra_parallel(state.refs, grid, threads)
    use_origin = p.local_offsets and p.search_origin
    home = origin_window(refspec, grid) if use_origin else None
    w = state.stats.weight
    log_pi = np.log(np.maximum(w / w.sum(), 1e-12)) if w.sum() > 0 else np.zeros(K) - np.log(K)
    sigma_t = offset_sigma(state, geo, red, learn=p.local_offsets and p.offset_sigma_A is None)
    batch = Stats.zeros(K, b)
    nb = _block_size(K, len(grid.shifts), grid.n_psi)
    changed = 0.0
    revisited = 0.0
    ll_sum = 0.0
    done = 0
    back = 0
    w1 = np.zeros(K)
    w2 = np.zeros(K)
    clock.lap("references")

    def work(idx: np.ndarray) -> tuple[np.ndarray, BlockResult, Stats, StageClock, int]:
        bc = StageClock()
        ctfm = data.ctfm[idx] if (data.ctfm is not None and p.ctf) else None
        if p.local_offsets:  # search around the current offset
            t0 = state.shift_px[idx].astype(np.float64)
        else:  # around the box centre
            t0 = np.zeros((len(idx), 2))
        images = data.images_of(idx)
        if np.any(t0):  # centre the particles on their offsets first
            images = move_images(images, -t0)
        images *= geo.mask[None]
        bc.lap("read")
        ps = particle_spectra(images, ctfm, grid, inv_s2, p.ctf_intact_first_peak, use_origin)
        bc.lap("transforms")
        sc = score_block(ps, refspec, grid)
        bc.lap("products")

        ctf2 = sc.ctf2

        def origin(rows: np.ndarray) -> Scores:  # the same masked pixels, not re-centred
            assert home is not None
            moved = moved_spectra(ps, rows, t0[rows], grid)
            return score_block(moved, home[0], home[1], ctf2[rows])

        res, n_back = search_blocks(
            sc,
            log_pi,
            t0,
            state.psi_deg[idx],
            sigma_t,
            grid,
            A,
            p.force_max,
            origin if use_origin else None,
            geo.offset_range_px,
            bc,
        )
        res.shift_px = cap_offsets(res.shift_px, geo.max_offset_px)
        del sc
        bc.lap("posteriors")
        part = Stats.zeros(K, b)
        li, cc, ww, pr, tx, ty = res.pairs
        accumulate(
            part,
            ps.Fpad,
            PAD,
            b,
            ctfm,
            data.apix_small_A,
            li,
            cc,
            ww,
            pr,
            tx,
            ty,
            state.sigma2,
            refspec.half,
            grid.r_max,
            p.ctf_intact_first_peak,
        )
        bc.lap("mstep")
        return idx, res, part, bc, n_back

    def commit(_: int, out: tuple[np.ndarray, BlockResult, Stats, StageClock, int]) -> None:
        nonlocal changed, revisited, ll_sum, done, w1, w2, back
        idx, res, part, bc, n_back = out
        back += n_back
        clock.add(bc)
        clock.restart()
        prev = state.cls[idx]
        seen = prev >= 0
        revisited += seen.sum()
        changed += (prev[seen] != res.cls[seen]).sum()
        ll_sum += float(res.loglik.sum())
        state.cls[idx] = res.cls
        state.psi_deg[idx] = res.psi_deg
        state.shift_px[idx] = res.shift_px
        state.maxprob[idx] = res.maxprob
        state.loglik[idx] = res.loglik
        state.nsig[idx] = res.nsig
        cc, ww = res.pairs[1], res.pairs[2]
        w1 += np.bincount(cc, weights=ww, minlength=K)
        w2 += np.bincount(cc, weights=ww * ww, minlength=K)
        batch.add(part)
        done += len(idx)
        if on_block is not None:
            on_block(done, len(idx_mine))
        clock.lap("commit")

    blocks = [idx_mine[s : s + nb] for s in range(0, len(idx_mine), nb)]
    map_ordered(work, blocks, threads, commit)
    clock.restart()
    batch = red.sum_stats(batch)
    scal = red.sum_array(
        np.concatenate([[changed, revisited, ll_sum, float(len(idx_mine)), back], w1, w2])
    )
    if not online:
        w1, w2 = scal[5 : 5 + K], scal[5 + K :]
        state.ess = np.where(w2 > 0, w1**2 / np.maximum(w2, 1e-300), 0.0)
    if online:
        state.stats = state.stats.mix(batch, update_step(p, data.n, it))
    else:
        state.stats = batch
    st = state.stats
    nw = st.noise_w.sum(axis=0)
    s2 = np.where(nw > 0, st.noise.sum(axis=0) / np.maximum(nw, 1e-30), state.sigma2)
    state.sigma2 = np.where(s2 > 0, s2, state.sigma2)
    last = it == n_iterations(p, data.n)
    reseeded: list[int] = []
    if online and p.reseed_dead:
        reseeded = reseed_dead(st, np.random.default_rng([p.seed, 31, it]), 0.1 / K)
    # the references of the next iteration at the alignment T; the last iteration's are
    # the class averages written, at the user's T (the SSNR does not depend on T)
    tau2_fudge = p.tau2_fudge if last else alignment_t(p)
    refs, _, ssnr = wiener_averages(st, tau2_fudge, geo.mask, grid.r_max)
    if recentre_update(p, data.n, it):
        max_px = max(2.0, 0.1 * b)
        moved = recentre(st, refs, geo.mask, max_px)
        if np.any(moved):
            refs, _, ssnr = wiener_averages(st, tau2_fudge, geo.mask, grid.r_max)
            if p.local_offsets or last:  # the written offsets follow the written averages
                follow_recentred(state, moved, geo.max_offset_px)
    state.refs = refs
    state.ssnr = ssnr
    state.resolution_A = resolution_A(ssnr, b, data.apix_small_A, grid.r_max)
    state.iteration = it
    clock.lap("update")
    info = {
        "iteration": it,
        "kind": "online" if online else "full",
        "temperature": A,
        "n_particles": int(scal[3]),
        "changed_fraction": float(scal[0] / scal[1]) if scal[1] > 0 else 1.0,
        "mean_loglik": float(scal[2] / max(scal[3], 1.0)),
        "reseeded": len(reseeded),
        "back_to_origin": int(scal[4]),
        "seconds": time.perf_counter() - t0,
        "threads": threads,
        "stages": clock.as_dict(),
    }
    state.history.append(info)
    return info


def classify(
    p: ClassifyParams,
    data: Dataset,
    state: State | None = None,
    reducer: Reducer | None = None,
    on_iteration: Callable[[State, dict[str, Any]], None] | None = None,
    on_block: Callable[[int, int, int], None] | None = None,
) -> State:
    """Run (or continue) the whole schedule and return the final state."""
    geo = geometry_for(p, data)
    if state is None:
        state = initial_state(p, data, geo, reducer)
    for it in range(state.iteration + 1, n_iterations(p, data.n) + 1):
        cb = (lambda d, t, it=it: on_block(it, d, t)) if on_block else None
        info = run_iteration(p, data, geo, state, it, reducer, cb)
        if on_iteration is not None:
            on_iteration(state, info)
    return state


def class_counts(state: State, K: int) -> np.ndarray:
    ok = state.cls >= 0
    return np.bincount(state.cls[ok], minlength=K)

"""Why classes of random views mix views: noise, a missed pose, or a poorer optimum?

Usage::

    python benchmarks/view_mixing.py [--shape compact|elongated] [--seed 0] [--passes 6]
        [--snr 0.05] [--particles 5000] [--variant "key=value ..."] [--out DIR]

On ``benchmarks/quality.py``'s simulated data (the same settings and folder, simulated there
when missing), with ``twodclass run``'s defaults (K = 50, ``--diameter 110``; ``--variant``
changes ``ClassifyParams`` fields as in quality.py):

1. *The run*: the online iterations, then the final full pass; its orientation coherence
   (as in quality.py) and the share of *mirror members*: good particles of a good class
   whose true direction is more than 90 degrees from the class's axis (the principal axis
   of its members' directions, on the side of the majority).
2. *Are mirror members a missed pose?* Each mirror member's best log-likelihood (the
   engine's search around its offset, the references and noise model its final pass used)
   against the class nearest its true direction, minus that against its own class. Negative:
   the likelihood itself prefers the mirror class; the search did not miss anything.
3. *Is there a better optimum?* Every good class's reference replaced by the noise-free
   projection at the centre of a spherical k-means cluster of the good particles' true
   directions (junk classes kept), then ``--passes`` full passes; the run's online state
   gets the same passes. After each: coherence, junk in junk classes and the mean
   best log-likelihood of all particles (each state's class averages at the alignment T,
   the run's noise model). A start that keeps a lower coherence at an equal or higher
   likelihood is a better optimum of the same model that the schedule does not reach.

Repeat with ``--snr 1`` to see how much of the mixing the noise causes.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import _parse_variant, simulate_set  # noqa: E402

from engine.core import model as M  # noqa: E402
from engine.core.estep import particle_spectra, score_block  # noqa: E402
from engine.core.fourier import fourier_crop, move_images  # noqa: E402
from engine.core.mstep import wiener_averages  # noqa: E402
from engine.core.parallel import reference_spectra_parallel  # noqa: E402
from engine.io.particles import read_particles  # noqa: E402
from engine.io.star import read_star  # noqa: E402
from engine.params import ClassifyParams  # noqa: E402
from engine.run.preprocess import prepare_dataset  # noqa: E402
from engine.sim.evaluate import direction_clusters, evaluate_arrays  # noqa: E402
from engine.sim.phantom import GaussianProjector  # noqa: E402
from engine.sim.plan import direction_angles, viewing_directions  # noqa: E402

BLOCK = 256


def best_class_scores(data, geo, state, refs, sigma2, p: ClassifyParams) -> np.ndarray:
    """``(N, K)`` best log-likelihood per class over the engine's pose search around each
    particle's offset (no offset prior)."""
    grid = geo.grid
    inv_s2 = 1.0 / np.maximum(sigma2[np.rint(grid.radii).astype(int)], 1e-30)
    refspec = reference_spectra_parallel(refs, grid, M.process_threads(p))
    out = np.empty((data.n, refs.shape[0]))
    no_prior = np.zeros(len(grid.shifts))
    for s in range(0, data.n, BLOCK):
        idx = np.arange(s, min(s + BLOCK, data.n))
        images = move_images(data.images_of(idx), -state.shift_px[idx].astype(np.float64))
        ctfm = data.ctfm[idx] if (data.ctfm is not None and p.ctf) else None
        ps = particle_spectra(images * geo.mask[None], ctfm, grid, inv_s2, p.ctf_intact_first_peak)
        out[idx] = M.best_poses(score_block(ps, refspec, grid), no_prior, 1.0)[5]
    return out


class Study:
    def __init__(self, a: argparse.Namespace) -> None:
        sim = simulate_set(Path(a.out), a.shape, a.particles, a.snr, None, a.data_seed)
        self.shape = a.shape
        self.p = ClassifyParams(
            n_classes=a.classes,
            diameter_A=a.diameter,
            seed=a.seed,
            threads=a.threads,
            **_parse_variant(a.variant),
        )
        self.data = prepare_dataset(read_particles(sim / "particles.star"), self.p)
        self.geo = M.geometry_for(self.p, self.data)
        t = read_star(sim / "truth.star")["particles"].rename(columns=lambda c: c.lstrip("_"))
        self.truth = t
        self.d = viewing_directions(
            t["rlnAngleRot"].to_numpy(float), t["rlnAngleTilt"].to_numpy(float)
        )
        self.good = t["tdcViewId"].to_numpy(np.int64) >= 0

    def evaluate(self, st: M.State) -> tuple[float, float]:
        a = self.data.apix_small_A
        e = evaluate_arrays(
            st.cls + 1,
            st.psi_deg.astype(float),
            -st.shift_px[:, 0] * a,
            -st.shift_px[:, 1] * a,
            self.truth,
        )
        return e.coherence_deg, e.junk_in_junk

    def class_axes(self, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per class: the principal axis of its good members' directions, on the majority's
        side ``(K, 3)``, and whether the class is good (mostly good particles)."""
        K = self.p.n_classes
        axes = np.zeros((K, 3))
        is_good = np.zeros(K, bool)
        for c in range(K):
            m = (cls == c) & self.good
            if m.sum() < 5 or m.sum() <= 0.5 * (cls == c).sum():
                continue
            v = self.d[m]
            ax = np.linalg.eigh(v.T @ v)[1][:, -1]
            axes[c] = ax if (v @ ax > 0).sum() >= (v @ ax < 0).sum() else -ax
            is_good[c] = True
        return axes, is_good

    def truth_references(self, like: M.State) -> np.ndarray:
        """``like``'s references with each good class's replaced by the noise-free projection
        at the centre of a cluster of true directions, at the good classes' mean norm."""
        _, is_good = self.class_axes(like.cls)
        goodc = np.flatnonzero(is_good)
        _, centres = direction_clusters(self.d[self.good], len(goodc))
        rot, tilt = direction_angles(centres)
        box = self.data.box
        zeros = np.zeros(len(goodc))
        f = GaussianProjector(box, self.shape).slices(rot, tilt, zeros, zeros, zeros)
        img = np.fft.irfft2(f, s=(box, box)).astype(np.float32)
        proj = fourier_crop(img, self.data.b) * self.geo.mask[None]
        norm = lambda x: np.linalg.norm(x.reshape(len(x), -1), axis=1)  # noqa: E731
        refs = like.refs.copy()
        refs[goodc] = proj * float(np.median(norm(like.refs[goodc])) / np.median(norm(proj)))
        return refs

    def mean_loglik(self, st: M.State, sigma2: np.ndarray) -> float:
        geo = self.geo
        refs, _, _ = wiener_averages(st.stats, M.alignment_t(self.p), geo.mask, geo.grid.r_max)
        scores = best_class_scores(self.data, geo, st, refs, sigma2, self.p)
        return float(scores.max(axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=("compact", "elongated"), default="compact")
    ap.add_argument("--particles", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--diameter", type=float, default=110.0, help="mask diameter (Å)")
    ap.add_argument("--snr", type=float, default=0.05)
    ap.add_argument("--data-seed", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="classification seed")
    ap.add_argument("--passes", type=int, default=6, help="full passes from each start")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--variant", default="", help='settings, e.g. "half_batches=false"')
    ap.add_argument("--out", default="/tmp/twodclass-quality")
    a = ap.parse_args(argv)

    s = Study(a)
    p, data, geo = s.p, s.data, s.geo
    t0 = time.perf_counter()
    online = M.classify(replace(p, full_passes=0), data)
    final = copy.deepcopy(online)
    u = M.online_updates(p, data.n)
    M.run_iteration(p, data, geo, final, u + 1)
    secs = time.perf_counter() - t0
    what = a.variant or "defaults"
    print(f"{a.shape} particle, SNR {a.snr:g}, seed {a.seed}, {what}: run {secs:.0f} s")

    coh, junk = s.evaluate(final)
    axes, is_good = s.class_axes(final.cls)
    members = s.good & is_good[final.cls]
    mirror = members & (np.einsum("ij,ij->i", s.d, axes[final.cls]) < 0)
    print(
        f"  run: coherence {coh:.1f} deg, junk in junk {100 * junk:.1f}%, "
        f"mirror members {mirror.sum()} of {members.sum()} "
        f"({100 * mirror.sum() / max(members.sum(), 1):.1f}%)"
    )

    L = best_class_scores(data, geo, online, online.refs, online.sigma2, p)
    goodc = np.flatnonzero(is_good)
    nearest = goodc[np.argmax(s.d @ axes[goodc].T, axis=1)]
    rows = np.flatnonzero(mirror)
    diff = L[rows, nearest[rows]] - L[rows, final.cls[rows]]
    q = np.percentile(diff, [10, 50, 90])
    print(
        f"  mirror members, log-likelihood of the class nearest their direction minus their own: "
        f"10/50/90% {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f}, higher in {100 * (diff > 0).mean():.1f}%"
    )

    starts = {"the run's online state": online, "truth references": copy.deepcopy(online)}
    starts["truth references"].refs = s.truth_references(final)
    pp = replace(p, full_passes=a.passes)
    print(f"  {'full pass':>9s}" + "".join(f" | {k:^34s}" for k in starts))
    print(f"  {'':>9s}" + " | coherence   junk   mean best log-lik" * len(starts))
    for k in range(1, a.passes + 1):
        cells = []
        for st in starts.values():
            M.run_iteration(pp, data, geo, st, u + k)
            c, j = s.evaluate(st)
            cells.append(f"{c:8.1f}° {100 * j:6.1f}%   {s.mean_loglik(st, final.sigma2):12.2f}")
        print(f"  {k:>9d}" + "".join(f" | {c:^34s}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed of the engine against two yardsticks measured in the same run.

Usage::

    python benchmarks/speed.py --particles 20000 [--classes 50] [--threads 2] [--data DIR]

Simulates N particles (box 128 at 1.5 Å, CTF, 15% junk; reused from ``--data`` when present),
then measures:

- **floor**: reading the stack and Fourier-cropping every particle once (the part no
  classification can avoid);
- **engine**: ``twodclass run``'s classification with the default schedule (K = 50, 20 online
  iterations of 100 x K particles, one full pass), as particle visits per second;
- **bare search**: the same number of visits (timed on up to ``--bare-visits`` of them and
  scaled) through a bare batched polar search on the same grid (polar rings, one complex
  matrix product over rings per angular frequency, a batched inverse FFT over the angle; no
  CTF, no M-step, no bookkeeping);
- **plain**: the plain Cartesian E-step (:mod:`engine.core.reference_estep`) on a few
  particles, per visit.

Prints a table row with wall times, visits per second, peak memory and the ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def bare_search(data, geo, refs, visits: int, block: int = 256) -> float:
    """Seconds for ``visits`` particle visits of the bare polar search."""
    import numpy as np

    from engine.core.estep import PAD, reference_spectra
    from engine.core.fourier import centred_rfft2
    from engine.core.kernels import polar_sample

    grid = geo.grid
    rs = reference_spectra(refs, grid)
    W = rs.W  # (M, R, K*T)
    t0 = time.perf_counter()
    done = 0
    i0 = 0
    while done < visits:
        nb = min(block, visits - done)
        idx = (np.arange(i0, i0 + nb)) % data.n
        i0 += nb
        imgs = data.images_of(np.sort(idx)) * geo.mask
        P = polar_sample(centred_rfft2(imgs, PAD), PAD, grid.radii, grid.n_psi)
        A = np.fft.fft(P, axis=-1)[..., : grid.n_m].transpose(2, 0, 1).astype(np.complex64)
        S = np.matmul(A, W)  # (M, nb, K*T)
        cross = np.fft.irfft(S, n=grid.n_psi, axis=0)
        cross.max(axis=0)
        done += nb
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--data", default=None, help="folder for (or with) the simulated set")
    ap.add_argument("--plain-particles", type=int, default=2)
    ap.add_argument(
        "--bare-visits",
        type=int,
        default=20000,
        help="visits timed for the bare search, scaled to the engine's visits",
    )
    a = ap.parse_args(argv)
    if a.threads:
        os.environ["NUMBA_NUM_THREADS"] = str(a.threads)
        os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)
    import numpy as np

    from engine.core.model import classify, geometry_for, initial_state
    from engine.core.reference_estep import plain_scores
    from engine.io.particles import read_particles
    from engine.params import ClassifyParams
    from engine.run.preprocess import prepare_dataset
    from engine.sim.simulate import simulate

    folder = Path(a.data) if a.data else Path(tempfile.mkdtemp(prefix="twodclass-speed-"))
    star = folder / "particles.star"
    if not star.exists():
        t = time.perf_counter()
        simulate(
            folder,
            n_particles=a.particles,
            box=128,
            apix_A=1.5,
            snr=0.05,
            junk_fraction=0.15,
            seed=1,
            float16=True,
        )
        print(f"simulated {a.particles} particles in {time.perf_counter() - t:.1f} s -> {folder}")
    p = ClassifyParams(n_classes=a.classes, threads=a.threads)
    pset = read_particles(star)
    t = time.perf_counter()
    data = prepare_dataset(pset, p)
    floor = time.perf_counter() - t
    geo = geometry_for(p, data)
    # compile the kernels outside the timings (a real run does it once, behind a notice)
    warm = ClassifyParams(
        n_classes=a.classes, online_iters=1, batch_per_class=2, full_passes=0, threads=a.threads
    )
    classify(warm, data)
    t = time.perf_counter()
    state = classify(p, data)
    engine_s = time.perf_counter() - t
    visits = sum(h["n_particles"] for h in state.history)
    sample = min(visits, a.bare_visits)  # the bare search's rate does not depend on N
    bare_s = bare_search(data, geo, state.refs, sample) * visits / sample
    # plain E-step on a few particles (per visit)
    init = initial_state(p, data, geo)
    k = a.plain_particles
    imgs = data.images_of(np.arange(k)) * geo.mask
    ctf = pset.ctf.subset(np.arange(k)) if pset.ctf is not None else None
    t = time.perf_counter()
    plain_scores(imgs, init.refs, ctf, geo.grid, 1.0 / init.sigma2)
    plain_per_visit = (time.perf_counter() - t) / k
    per_visit = engine_s / visits
    print(
        f"N={data.n} box {pset.box}->{data.b} px, K={p.n_classes}, "
        f"{geo.grid.n_psi} rotations x {len(geo.grid.shifts)} shifts, "
        f"threads={p.threads or 'all'}"
    )
    print(
        "| N | engine s | visits | visits/s | floor s | engine/floor | bare s | engine/bare "
        "| plain ms/visit | plain/engine | peak GB |"
    )
    print(
        f"| {data.n} | {engine_s:.1f} | {visits} | {visits / engine_s:.0f} | {floor:.1f} | "
        f"{engine_s / floor:.1f} | {bare_s:.1f} | {engine_s / bare_s:.2f} | "
        f"{1e3 * plain_per_visit:.0f} | {plain_per_visit / per_visit:.0f} | "
        f"{_peak_gb():.2f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

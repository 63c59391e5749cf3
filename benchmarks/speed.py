"""Speed of the engine against two yardsticks measured in the same run.

Usage::

    python benchmarks/speed.py --particles 20000 [--classes 50] [--threads 2] [--data DIR]
    python benchmarks/speed.py --particles 5000 --threads-sweep 1,2,4 [--repeats 3]

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

``--threads-sweep 1,2,...`` instead runs reading/cropping, the classification and the
per-particle statistics at each thread count in one process, interleaved (1, 2, ..., 1, 2,
...) ``--repeats`` times, and prints per thread count the best wall time, speed-up and
parallel efficiency against the first count, the process CPU time, the cores it got (CPU /
wall of the best run: below the thread count when other work shares the machine), the cores
the other processes kept busy meanwhile (/proc/stat) and the load average beside them, and
the time per stage: the block stages summed over threads (CPU seconds) and the serial
stages of the calling thread (wall seconds), so the serial remainder is visible.
``--wait-quiet S`` waits (up to S seconds) before each run for the rest of a shared machine
to go quiet.
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


BLOCK_STAGES = ("read", "transforms", "products", "poses", "posteriors", "mstep")
SERIAL_STAGES = ("references", "commit", "update")


def _stage_sums(history: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for h in history:
        for k, v in h.get("stages", {}).items():
            d = out.setdefault(k, {"wall": 0.0, "cpu": 0.0})
            d["wall"] += v["wall"]
            d["cpu"] += v["cpu"]
    return out


def _busy_cores_clock() -> tuple[float, float, float] | None:
    """(wall s, busy CPU s of the whole machine, CPU s of this process), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = (sum(v) - v[3] - v[4]) / hz  # all but idle and iowait
    return time.perf_counter(), busy, time.process_time()


def _others_cores(a, b) -> float:
    """Cores the rest of the machine kept busy between two :func:`_busy_cores_clock`."""
    if a is None or b is None:
        return float("nan")
    return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / max(b[0] - a[0], 1e-9))


def wait_for_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (up to ``limit_s``) until the rest of the machine uses < ``threshold`` cores over
    5 s; returns what it used in the last 5 s."""
    t_end = time.perf_counter() + limit_s
    while True:
        a = _busy_cores_clock()
        time.sleep(5.0)
        used = _others_cores(a, _busy_cores_clock())
        if not used >= threshold or time.perf_counter() >= t_end:
            return used


def threads_sweep(pset, p0, counts: list[int], repeats: int, wait_quiet_s: float = 0.0) -> None:
    """Reading, classification and statistics at each thread count, interleaved."""
    import dataclasses

    import numpy as np

    from engine.core.model import classify, geometry_for
    from engine.core.particle_residuals import residual_statistics
    from engine.run.preprocess import prepare_dataset

    runs: dict[int, list[dict]] = {n: [] for n in counts}
    for r in range(repeats):
        for n in counts:
            p = dataclasses.replace(p0, threads=n)
            if wait_quiet_s > 0:
                wait_for_quiet(wait_quiet_s)
            clock0 = _busy_cores_clock()
            load0 = os.getloadavg()[0]
            t = time.perf_counter()
            data = prepare_dataset(pset, p)
            read_s = time.perf_counter() - t
            geo = geometry_for(p, data)
            t, c = time.perf_counter(), time.process_time()
            state = classify(p, data)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            t = time.perf_counter()
            residual_statistics(data, geo, state, p.ctf, n)
            stats_s = time.perf_counter() - t
            load1 = os.getloadavg()[0]
            others = _others_cores(clock0, _busy_cores_clock())
            visits = sum(h["n_particles"] for h in state.history)
            row = dict(
                wall=wall,
                cpu=cpu,
                read=read_s,
                stats=stats_s,
                visits=visits,
                load=(load0, load1),
                others=others,
            )
            row["stages"] = _stage_sums(state.history)
            row["cls"] = state.cls.copy()
            runs[n].append(row)
            print(
                f"repeat {r + 1} threads {n}: classify {wall:.1f} s wall, {cpu:.1f} s CPU, "
                f"{1e3 * wall / visits:.3f} ms/visit; read {read_s:.1f} s, statistics "
                f"{stats_s:.1f} s; load average {load0:.2f} -> {load1:.2f}, other processes "
                f"used {others:.2f} cores",
                flush=True,
            )
    ref = runs[counts[0]]
    same = all(np.array_equal(x["cls"], ref[0]["cls"]) for n in counts for x in runs[n])
    b1 = min(x["wall"] for x in ref)
    print(f"\nsame classes at every thread count: {same}")
    print(
        "| threads | best wall s | median wall s | speed-up | efficiency | CPU s | "
        "cores used | others' cores | ms/visit | read s | statistics s | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in counts:
        rs = runs[n]
        best = min(x["wall"] for x in rs)
        med = float(np.median([x["wall"] for x in rs]))
        cpu = float(np.median([x["cpu"] for x in rs]))
        loads = [v for x in rs for v in x["load"]]
        sp = b1 / best * counts[0]
        used = min(rs, key=lambda x: x["wall"])
        print(
            f"| {n} | {best:.1f} | {med:.1f} | {sp:.2f} | {sp / n:.2f} | {cpu:.1f} | "
            f"{used['cpu'] / used['wall']:.2f} | {used['others']:.2f} | "
            f"{1e3 * best / rs[0]['visits']:.3f} | {min(x['read'] for x in rs):.1f} | "
            f"{min(x['stats'] for x in rs):.1f} | {min(loads):.1f}-{max(loads):.1f} |"
        )
    print(
        "\nper stage (median over repeats): block stages CPU s summed over threads; "
        "serial stages wall s on the calling thread"
    )
    print("| stage | " + " | ".join(f"{n} threads" for n in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for k in BLOCK_STAGES + SERIAL_STAGES:
        kind = "cpu" if k in BLOCK_STAGES else "wall"
        vals = [
            float(np.median([x["stages"].get(k, {}).get(kind, 0.0) for x in runs[n]]))
            for n in counts
        ]
        print(f"| {k} ({kind}) | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    for label, f in (
        (
            "block CPU / threads",
            lambda x, n: sum(x["stages"].get(k, {}).get("cpu", 0.0) for k in BLOCK_STAGES) / n,
        ),
        (
            "serial wall",
            lambda x, n: sum(x["stages"].get(k, {}).get("wall", 0.0) for k in SERIAL_STAGES),
        ),
    ):
        vals = [float(np.median([f(x, n) for x in runs[n]])) for n in counts]
        print(f"| {label} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    print(f"peak memory {_peak_gb():.2f} GB")


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
    ap.add_argument(
        "--threads-sweep",
        default=None,
        help="comma-separated thread counts (e.g. 1,2,4): speed-up per thread count",
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs per thread count (sweep)")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="sweep: before each run wait up to this many seconds for the rest of the "
        "machine to use under 0.25 cores (shared machines)",
    )
    ap.add_argument("--online-iters", type=int, default=None, help="override (sweep)")
    ap.add_argument("--full-passes", type=int, default=None, help="override (sweep)")
    a = ap.parse_args(argv)
    if a.threads and not a.threads_sweep:
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
    if a.threads_sweep:
        counts = [int(x) for x in a.threads_sweep.split(",")]
        if a.online_iters is not None:
            p.online_iters = a.online_iters
        if a.full_passes is not None:
            p.full_passes = a.full_passes
        data = prepare_dataset(pset, p)
        warm = ClassifyParams(n_classes=a.classes, online_iters=1, batch_per_class=2, full_passes=0)
        classify(warm, data)  # compile the kernels outside the timings
        print(
            f"N={data.n} box {pset.box}->{data.b} px, K={p.n_classes}, {p.online_iters} online "
            f"iterations of {p.batch_per_class * p.n_classes}, {p.full_passes} full passes; "
            f"cores available {len(os.sched_getaffinity(0))}; load average {os.getloadavg()}",
            flush=True,
        )
        threads_sweep(pset, p, counts, a.repeats, a.wait_quiet)
        return 0
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

"""Threads inside one process: several blocks in flight must give the same classes, poses
and class averages as one thread (block results combine in block order), reading and the
reference transforms must not depend on the thread count either, and the default thread
count must follow what the process may use (affinity, SLURM, cgroup quota)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import engine.core.model as model
from engine.core.estep import reference_spectra
from engine.core.fourier import fourier_crop
from engine.core.model import Dataset, classify
from engine.core.parallel import map_ordered, reference_spectra_parallel, worker_count
from engine.io.particles import read_particles
from engine.params import ClassifyParams, available_cpus, resolve_threads
from engine.run.preprocess import prepare_dataset
from engine.sim.simulate import simulate, simulate_arrays

STATE_ARRAYS = ("cls", "psi_deg", "shift_px", "maxprob", "loglik", "nsig", "refs", "sigma2")


@pytest.fixture(scope="module")
def small():
    sim = simulate_arrays(n_particles=400, box=64, apix_A=3.0, snr=0.1, n_views=4, seed=7)
    return fourier_crop(sim.images, 32), sim.ctf.as_matrix()


def _run(small, threads: int, force_max: bool = True) -> model.State:
    imgs, ctfm = small
    data = Dataset(images=imgs, ctfm=ctfm, box=64, apix_A=3.0, b=32)
    p = ClassifyParams(
        n_classes=6,
        online_iters=3,
        batch_per_class=40,
        full_passes=1,
        threads=threads,
        seed=5,
        force_max=force_max,
    )
    return classify(p, data)


@pytest.mark.parametrize("force_max", [True, False])
def test_same_classes_and_poses_at_1_and_2_threads(small, monkeypatch, force_max):
    # small blocks: many blocks in flight, finishing out of order
    monkeypatch.setattr(model, "_block_size", lambda K, T, n_psi: 23)
    one = _run(small, 1, force_max)
    two = _run(small, 2, force_max)
    if worker_count(2, 2) == 2:  # numba's threading layer runs kernels from several threads
        assert two.history[-1]["threads"] == 2
    assert np.all(one.cls >= 0)
    for name in STATE_ARRAYS:
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    for f1, f2 in zip(one.stats.fields(), two.stats.fields(), strict=True):
        assert np.array_equal(f1, f2)
    stages = two.history[-1]["stages"]
    for k in ("read", "transforms", "products", "poses", "posteriors", "mstep", "update"):
        assert stages[k]["wall"] >= 0.0, k


def test_particle_statistics_do_not_depend_on_threads(small, monkeypatch):
    import engine.core.particle_residuals as pr

    imgs, ctfm = small
    data = Dataset(images=imgs, ctfm=ctfm, box=64, apix_A=3.0, b=32)
    p = ClassifyParams(n_classes=6, online_iters=2, batch_per_class=40, full_passes=1, seed=5)
    state = classify(p, data)
    geo = model.geometry_for(p, data)
    monkeypatch.setattr(pr, "BLOCK", 29)
    one = pr.residual_statistics(data, geo, state, True, 1)
    two = pr.residual_statistics(data, geo, state, True, 2)
    for k in pr.PARTICLE_COLUMNS:
        assert np.all(one[k] != 0)
        assert np.array_equal(one[k], two[k]), k


def test_reference_transforms_in_parallel_equal_one_call(small):
    imgs, _ = small
    refs = (imgs[:11] * geometry_mask(imgs.shape[-1])).astype(np.float32)
    grid = model.make_grid(32, 6.0, 5.0, 2.5, 1.0)
    one = reference_spectra(refs, grid)
    par = reference_spectra_parallel(refs, grid, 2)
    for name in ("W", "U", "half"):
        assert np.array_equal(getattr(one, name), getattr(par, name)), name


def geometry_mask(b: int) -> np.ndarray:
    from engine.core.fourier import soft_circular_mask

    return soft_circular_mask(b, 0.4 * b, 0.45 * b)


def test_reading_and_cropping_do_not_depend_on_threads(tmp_path, monkeypatch):
    import engine.run.preprocess as pre

    sim = simulate(tmp_path, n_particles=70, box=64, apix_A=3.0, snr=0.1, seed=2)
    pset = read_particles(sim.particles_star)
    monkeypatch.setattr(pre, "READ_BLOCK", 16)
    a = prepare_dataset(pset, ClassifyParams(max_res_A=8.0, threads=1))
    b = prepare_dataset(pset, ClassifyParams(max_res_A=8.0, threads=2))
    assert a.images.shape == (70, 48, 48)
    assert np.array_equal(a.images, b.images)


def test_memory_mapped_cache_holds_the_same_images_and_leaves_no_resident_pages(
    tmp_path, monkeypatch
):
    sim = simulate(tmp_path / "sim", n_particles=300, box=64, apix_A=3.0, snr=0.1, seed=4)
    pset = read_particles(sim.particles_star)
    p = ClassifyParams(max_res_A=6.0, threads=2)
    ram = prepare_dataset(pset, p)
    monkeypatch.setenv("TWODCLASS_CACHE_GB", "0.0001")
    mapped = prepare_dataset(pset, p, tmp_path / "cache")
    assert isinstance(mapped.images, np.memmap) and mapped.after_read is not None
    assert np.array_equal(mapped.images_of(np.arange(300)), ram.images.astype(np.float16))
    rows = np.arange(0, 300, 7)
    assert np.array_equal(mapped.images_of(rows), ram.images[rows].astype(np.float16))
    rss_kB = _mapped_rss_kB(str(mapped.images.filename))
    if rss_kB is not None:  # the pages of the cache file are out of this process's memory
        assert rss_kB <= 8
    # the run's check for blank images reads every cached image and drops its pages too
    from engine.core.model import Reducer
    from engine.run.job import _check_blank

    class _Quiet:
        def warn(self, message: str) -> None:
            raise AssertionError(message)

    _check_blank(pset, mapped, Reducer(), _Quiet())
    rss_kB = _mapped_rss_kB(str(mapped.images.filename))
    if rss_kB is not None:
        assert rss_kB <= 8


def _mapped_rss_kB(path: str) -> int | None:
    """Resident kB of this process's mappings of ``path`` (None without /proc/self/smaps)."""
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return None
    total, inside = 0, False
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
            inside = line.endswith(path)
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


def test_map_ordered_commits_in_order_and_raises():
    order: list[int] = []

    def slow_first(i: int) -> int:
        time.sleep(0.05 if i % 3 == 0 else 0.0)
        return i * i

    map_ordered(slow_first, list(range(10)), 3, lambda i, r: order.append((i, r)))
    assert order == [(i, i * i) for i in range(10)]
    assert map_ordered(slow_first, list(range(5)), 2) == [0, 1, 4, 9, 16]
    assert threading.active_count() >= 1

    def boom(i: int) -> int:
        if i == 4:
            raise ValueError("block 4")
        return i

    seen: list[int] = []
    with pytest.raises(ValueError, match="block 4"):
        map_ordered(boom, list(range(20)), 2, lambda i, r: seen.append(i))
    assert seen == [0, 1, 2, 3]


def test_default_threads_follow_slurm_cgroup_quota_and_mpi(tmp_path):
    import os

    cores = len(os.sched_getaffinity(0))
    empty = tmp_path / "none"
    empty.mkdir()
    assert available_cpus({}, str(empty)) == cores
    assert available_cpus({"SLURM_CPUS_PER_TASK": "1"}, str(empty)) == 1
    assert available_cpus({"SLURM_CPUS_PER_TASK": "junk"}, str(empty)) == cores
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("50000 100000\n")  # half a CPU: rounds up to 1
    assert available_cpus({}, str(v2)) == 1
    (v2 / "cpu.max").write_text("max 100000\n")
    assert available_cpus({}, str(v2)) == cores
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus({}, str(tmp_path / "v1")) == 1
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert available_cpus({}, str(tmp_path / "v1")) == cores
    # MPI processes on one node share the machine (and the quota) when not bound to cores
    total = os.cpu_count() or cores
    local = {"OMPI_COMM_WORLD_LOCAL_SIZE": str(total)}
    assert available_cpus(local, str(empty)) == 1
    assert available_cpus({"MPI_LOCALNRANKS": "1"}, str(empty)) == cores
    assert resolve_threads(3) == 3
    assert resolve_threads(0) == available_cpus()


def test_blocks_run_blas_on_one_thread():
    """Inside map_ordered's blocks BLAS runs on one thread (so N threads keep N cores busy,
    not N times BLAS's own pool), and the process's BLAS setting comes back afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    assert blas_threads(), "numpy has no BLAS that threadpoolctl can see"
    before = blas_threads()
    for threads in (1, 2):
        seen = map_ordered(lambda _: blas_threads(), list(range(4)), threads)
        assert seen is not None
        assert all(n == [1] * len(before) for n in seen), (threads, seen)
    assert blas_threads() == before

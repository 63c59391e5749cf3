"""Several blocks in flight: the engine's threads inside one process.

Every stage of the per-block work (transforms, BLAS products, the numba kernels) releases the
GIL, so one worker thread per core can each take a block of particles through the whole
E-step and M-step while the calling thread commits the finished blocks *in block order*.
Inside a worker BLAS, the FFTs and numba run single-threaded (no oversubscription); block
results combine in the same order whatever the number of threads, so a seed gives the same
result at any thread count.

numba's ``workqueue`` threading layer cannot run kernels from several threads at once; with
it (no OpenMP or TBB runtime) the blocks run one at a time, with numba's own threads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from engine.core import fft as _fft
from engine.core.estep import PolarGrid, ReferenceSpectra, reference_spectra
from engine.params import ClassifyParams, resolve_threads

__all__ = [
    "map_ordered",
    "worker_count",
    "process_threads",
    "blas_single_thread",
    "reference_spectra_parallel",
    "StageClock",
]

T = TypeVar("T")
R = TypeVar("R")


def process_threads(p: ClassifyParams) -> int:
    """Threads of this process: ``p.threads`` (0 = every core it may use), at most numba's."""
    return max(1, min(resolve_threads(p.threads), numba.config.NUMBA_NUM_THREADS))


def _threadsafe_numba() -> bool:
    """True when numba's threading layer allows kernels from several threads at once."""
    numba.get_num_threads()  # starts numba's thread pool, so the layer is known
    try:
        return str(numba.threading_layer()) != "workqueue"
    except ValueError:  # pragma: no cover - no parallel kernel launched yet
        return False


def worker_count(threads: int, n_items: int) -> int:
    """Blocks in flight for ``threads`` threads and ``n_items`` blocks (1: run inline)."""
    if threads <= 1 or n_items <= 1 or not _threadsafe_numba():
        return 1
    return min(threads, n_items)


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """BLAS on one thread in this block (process-wide: BLAS has no per-thread setting)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def _worker_settings(numba_threads: int) -> Iterator[None]:
    """numba and FFT threads of the calling thread (both settings are per thread)."""
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        with _fft.thread_workers(numba_threads):
            yield
    finally:
        numba.set_num_threads(before)


def map_ordered(
    fn: Callable[[T], R],
    items: Sequence[T],
    threads: int,
    commit: Callable[[int, R], None] | None = None,
) -> list[R] | None:
    """Run ``fn`` on every item with up to ``threads`` items in flight.

    ``commit(i, result)`` runs on the calling thread in item order (0, 1, 2, ...) as results
    come in; without ``commit`` the results are returned as a list in item order. At most
    ``2 * threads`` results are held at once. Inside ``fn`` numba and the FFTs use
    ``threads // workers`` threads and BLAS one (so ``threads`` cores are busy, no more).
    An exception in ``fn`` cancels the blocks not yet started and is raised here.
    """
    out: list[R] | None = [] if commit is None else None

    def done(i: int, r: R) -> None:
        if commit is not None:
            commit(i, r)
        else:
            assert out is not None
            out.append(r)

    n = len(items)
    workers = worker_count(threads, n)
    inner = max(1, threads // workers)
    if workers == 1:
        with blas_single_thread(), _worker_settings(max(1, threads)):
            for i, item in enumerate(items):
                done(i, fn(item))
        return out

    def run(item: T) -> R:
        with _worker_settings(inner):
            return fn(item)

    window = 2 * workers
    with blas_single_thread(), ThreadPoolExecutor(workers, "twodclass-block") as pool:
        pending: dict[int, Future[R]] = {}
        nxt = 0
        try:
            for i in range(n):
                while nxt < n and nxt < i + window:
                    pending[nxt] = pool.submit(run, items[nxt])
                    nxt += 1
                done(i, pending.pop(i).result())
        finally:
            for f in pending.values():
                f.cancel()
    return out


class StageClock:
    """Seconds per stage, summed over blocks and threads: wall time and the CPU time of
    the thread that ran the stage (numba's own threads, busy only when one block runs at a
    time with several threads, are not counted).

    One clock per block (no locking); :meth:`add` merges a block's clock into the total.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._mark = (time.perf_counter(), time.thread_time())

    def lap(self, stage: str) -> None:
        """Charge the time since the last lap (or creation) to ``stage``."""
        w, c = time.perf_counter(), time.thread_time()
        self.wall[stage] = self.wall.get(stage, 0.0) + w - self._mark[0]
        self.cpu[stage] = self.cpu.get(stage, 0.0) + c - self._mark[1]
        self._mark = (w, c)

    def restart(self) -> None:
        self._mark = (time.perf_counter(), time.thread_time())

    def add(self, other: StageClock) -> None:
        for mine, theirs in ((self.wall, other.wall), (self.cpu, other.cpu)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0.0) + v

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {
            k: {"wall": round(self.wall[k], 4), "cpu": round(self.cpu[k], 4)} for k in self.wall
        }


REF_CHUNK = 4  # classes per task (fixed, so the result does not depend on the thread count)


def reference_spectra_parallel(refs: np.ndarray, grid: PolarGrid, threads: int) -> ReferenceSpectra:
    """:func:`engine.core.estep.reference_spectra` of groups of :data:`REF_CHUNK` classes on
    ``threads`` threads, joined in class order (the same arrays as one call)."""
    K = refs.shape[0]
    if threads <= 1 or K <= REF_CHUNK:
        return reference_spectra(refs, grid)
    groups = [refs[s : s + REF_CHUNK] for s in range(0, K, REF_CHUNK)]
    parts = map_ordered(lambda r: reference_spectra(r, grid), groups, threads)
    assert parts is not None
    return ReferenceSpectra(
        W=np.concatenate([q.W for q in parts], axis=2),
        U=np.concatenate([q.U for q in parts], axis=2),
        half=np.concatenate([q.half for q in parts], axis=0),
    )

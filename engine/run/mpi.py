"""Several processes (``mpirun -np N twodclass run ...``): particles split, sums all-reduced.

Each process owns particles ``rank, rank + size, ...``; after every E-step the class sums
are added up with one ``Allreduce`` per array, so every process holds the same references.
The same code runs unchanged with one process (no mpi4py needed then).
"""

from __future__ import annotations

import os

import numpy as np

from engine.core.model import Reducer
from engine.core.mstep import Stats

__all__ = ["mpi_reducer", "MPIReducer", "launched_by_mpirun"]

_ENV_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


def launched_by_mpirun() -> bool:
    """True when an MPI launcher started this process with more than one rank."""
    for k in _ENV_SIZE:
        v = os.environ.get(k)
        if v and v.isdigit() and int(v) > 1:
            return True
    return False


class MPIReducer(Reducer):
    """Sums over all processes of ``MPI.COMM_WORLD``."""

    def __init__(self) -> None:
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    def sum_array(self, a: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(a)
        out = np.empty_like(a)
        self.comm.Allreduce(a, out, op=self.MPI.SUM)
        return out

    def sum_stats(self, st: Stats) -> Stats:
        return Stats(*(self.sum_array(f) for f in st.fields()))

    def gather_particles(self, values: np.ndarray, owned: np.ndarray) -> np.ndarray:
        """Combine per-particle arrays where each process filled only its own rows."""
        v = np.where(owned.reshape(owned.shape + (1,) * (values.ndim - 1)), values, 0)
        return self.sum_array(v.astype(values.dtype))


def mpi_reducer() -> Reducer:
    """An :class:`MPIReducer` under mpirun with >1 process, else the single-process one."""
    if not launched_by_mpirun():
        return Reducer()
    try:
        import mpi4py  # noqa: F401
    except ImportError as exc:
        from engine.errors import TwodclassError

        raise TwodclassError(
            "started by mpirun with several processes but mpi4py is not "
            "installed: pip install 'scipion-em-2dclass[mpi]'"
        ) from exc
    red = MPIReducer()
    return red if red.size > 1 else Reducer()

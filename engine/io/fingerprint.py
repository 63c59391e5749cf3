"""What a job's result depends on, in a few bytes: the input's fingerprint and the settings.

A job records its *run key* (:func:`run_key`) in ``job.json`` and in every checkpoint.
``twodclass run --resume`` computes it again from the input on disk and the job's
parameters and continues only when all three agree (:func:`key_differences`): a changed
particle file or stack, or a checkpoint left by another run, stops the resume with one line
instead of mixing two runs.

The particle file (STAR or ``.cs``) is hashed whole. Image stacks are fingerprinted by size
and a sample (the header, the first and the last 64 KiB of data), so the check stays cheap
for thousands of stacks; a stack rewritten with other images of the same size and the same
first and last images is not detected.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from engine.io.particles import ParticleSet
    from engine.params import ClassifyParams

__all__ = ["file_digest", "stack_digest", "input_fingerprint", "run_key", "key_differences"]

_SAMPLE = 65536
#: parameters that do not change the result (may differ on resume)
NOT_IN_KEY = ("threads",)


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a whole file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stack_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a stack's size, its first ``1024 + 64 KiB`` and its last 64 KiB."""
    h = hashlib.sha256()
    size = os.stat(path).st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1024 + _SAMPLE))
        if size > 1024 + 2 * _SAMPLE:
            f.seek(size - _SAMPLE)
            h.update(f.read(_SAMPLE))
        elif size > 1024 + _SAMPLE:
            h.update(f.read())
    return h.hexdigest()


def input_fingerprint(pset: ParticleSet) -> dict[str, Any]:
    """``{"particles": sha256 of the particle file, "stacks": sha256 over the stacks'
    digests in table order, "n_stacks": ...}``."""
    h = hashlib.sha256()
    for p in pset.stack_paths:
        h.update(stack_digest(p).encode())
    return {
        "particles": file_digest(pset.path),
        "stacks": h.hexdigest(),
        "n_stacks": len(pset.stack_paths),
    }


def run_key(params: ClassifyParams, pset: ParticleSet) -> dict[str, Any]:
    """The input fingerprint, the data's shape and every parameter that changes the result."""
    settings = {k: v for k, v in params.to_dict().items() if k not in NOT_IN_KEY}
    return {
        "input": input_fingerprint(pset),
        "data": {"n_particles": len(pset), "box": int(pset.box), "apix_A": float(pset.apix_A)},
        "settings": settings,
    }


def key_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two run keys, in words (empty when they agree)."""
    out = []
    oi, ni = old.get("input", {}), new.get("input", {})
    if oi.get("particles") != ni.get("particles"):
        out.append("the particle file changed")
    if oi.get("stacks") != ni.get("stacks") or oi.get("n_stacks") != ni.get("n_stacks"):
        out.append("the image stacks changed")
    od, nd = old.get("data", {}), new.get("data", {})
    for k in ("n_particles", "box", "apix_A"):
        if od.get(k) != nd.get(k):
            out.append(f"{k} {od.get(k)} -> {nd.get(k)}")
    os_, ns = old.get("settings", {}), new.get("settings", {})
    for k in sorted(set(os_) | set(ns)):
        if os_.get(k) != ns.get(k):
            out.append(f"{k} {os_.get(k)} -> {ns.get(k)}")
    return out

"""Scale run: ``twodclass run`` end to end on a STAR that lists one stack several times.

Usage::

    python benchmarks/scale.py --star DIR/particles.star --copies 10 -o JOB [--threads 2]

Writes ``DIR/particles_x{copies}.star`` (every particle row repeated ``copies`` times, so a
100,000-particle stack stands for 1,000,000 particles; the rows point at the same images),
runs ``twodclass run`` on it as a child process with the default schedule (``--online-iters``
and ``--full-passes`` may be changed), and prints the time per particle visit of the online
iterations and of the full pass (wall, and CPU summed over threads), the reading/cropping
time, the child's CPU time and its peak resident memory (``ru_maxrss``), and the size of the
on-disk particle cache. A job stopped from outside is resumed from its checkpoint
(``--retries``); the wall time then includes the restarts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def repeated_star(star: Path, copies: int) -> Path:
    """A STAR beside ``star`` whose particle rows are ``star``'s, ``copies`` times over."""
    import pandas as pd

    from engine.io.star import read_star, write_star

    out = star.with_name(f"{star.stem}_x{copies}.star")
    if copies == 1:
        return star
    if not out.exists():
        blocks = read_star(star)
        blocks["particles"] = pd.concat([blocks["particles"]] * copies, ignore_index=True)
        write_star(out, blocks)
    return out


def cache_bytes(folder: Path) -> int:
    """Bytes of every file below ``folder`` (a job's on-disk particle cache)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--star", required=True, type=Path)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("-o", "--output", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--online-iters", type=int, default=None)
    ap.add_argument("--full-passes", type=int, default=1)
    ap.add_argument("--resume", action="store_true", help="continue the job in -o")
    ap.add_argument(
        "--retries",
        type=int,
        default=3,
        help="resume the job this many times if it is stopped from outside",
    )
    a = ap.parse_args(argv)
    star = repeated_star(a.star, a.copies)
    n = 0 if not a.resume else json.loads((a.output / "job.json").read_text())["n_particles"]
    exe = Path(sys.executable).parent / "twodclass"
    cmd = [
        os.path.relpath(exe) if exe.is_relative_to(Path.cwd()) else str(exe),
        "run",
        str(star),
        "-o",
        str(a.output),
        "--overwrite",
        "--classes",
        str(a.classes),
        "--full-passes",
        str(a.full_passes),
        "--progress",
        "jsonl",
    ]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    if a.online_iters is not None:
        cmd += ["--online-iters", str(a.online_iters)]
    from engine.io.jobfolder import JobFiles

    t0 = time.perf_counter()
    stage_t: dict[str, float] = {}
    cache = 0
    for attempt in range(1 + a.retries):
        if attempt or a.resume:  # stopped from outside (a shared machine): from the checkpoint
            cmd = [cmd[0], "run", "--resume", str(a.output), "--progress", "jsonl"]
            cmd += ["--threads", str(a.threads)] if a.threads else []
        print(" ".join(cmd), flush=True)
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                now = time.perf_counter() - t0
                if ev.get("event") == "stage":
                    stage_t.setdefault(ev["stage"], now)
                    if ev["stage"] == "classifying":  # the cache is complete; the run removes it
                        cache = max(cache, cache_bytes(JobFiles(a.output).cache))
                elif ev.get("event") == "start":
                    n = ev["n_particles"]
                elif ev.get("event") == "iteration":
                    print(
                        f"iteration {ev['iteration']} {ev['kind']}: {ev['n_particles']} "
                        f"particles in {ev['seconds']:.1f} s "
                        f"({1e3 * ev['seconds'] / ev['n_particles']:.3f} ms/visit), "
                        f"load average {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
        if proc.returncode == 0:
            break
        print(f"twodclass run stopped with status {proc.returncode}", flush=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return 1
    from engine.io.job_writer import load_checkpoint

    # every iteration's time, across restarts, is in the job's history
    history = load_checkpoint(JobFiles(a.output)).history
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)

    def per_visit(kind: str, cpu: bool = False) -> float:
        its = [e for e in history if e["kind"] == kind]
        if cpu:  # CPU seconds of every stage, summed over threads
            secs = sum(v["cpu"] for e in its for v in e.get("stages", {}).values())
        else:
            secs = sum(e["seconds"] for e in its)
        return 1e3 * secs / max(sum(e["n_particles"] for e in its), 1)

    visits = sum(e["n_particles"] for e in history)
    reading = stage_t.get("classifying", wall) - stage_t.get("reading", 0.0)
    print(
        "| N | threads | wall s | reading s | online ms/visit | full-pass ms/visit | "
        "online CPU ms/visit | full-pass CPU ms/visit | CPU ms/visit (all) | peak GB | "
        "disk cache GB |"
    )
    print(
        f"| {n} | {a.threads or 'default'} | {wall:.0f} | {reading:.0f} | "
        f"{per_visit('online'):.3f} | {per_visit('full'):.3f} | "
        f"{per_visit('online', True):.3f} | {per_visit('full', True):.3f} | "
        f"{1e3 * (ru.ru_utime + ru.ru_stime) / max(visits, 1):.3f} | "
        f"{ru.ru_maxrss / 1024**2:.2f} | {cache / 1e9:.2f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

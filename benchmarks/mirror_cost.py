"""How far apart, for the likelihood, are a view and its mirror view, against near views?

Usage::

    python benchmarks/mirror_cost.py [--directions 150] [--snr 0.05] [--max-res 6]

For random viewing directions ``d`` of the built-in phantoms (``quality.py``'s compact and
elongated particles, box 128 at 1.5 Å), the log-likelihood a particle of view ``d`` loses
when it is explained by the noise-free projection of another direction instead of its own,
at the best in-plane rotation (3° steps; no shift, no CTF; white noise of variance 1 and the
signal scaled to ``--snr`` inside the particle, as the simulator does; band-limited to
``--max-res``): ``min over psi of |P(d) - R(psi) P(d')|^2 / 2``. Compared: the opposite
direction ``-d`` (its projection is the mirror image of ``P(d)``, which no in-plane rotation
reaches) and directions 10, 20 and 30° from ``d``. A mirror view that costs no more than a
20-30° neighbour can share a class with ``d`` as legitimately as that neighbour; orientation
coherence (``quality.py``) counts it as 180° away.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.sim.phantom import GaussianProjector  # noqa: E402
from engine.sim.plan import direction_angles  # noqa: E402

BOX, APIX = 128, 1.5


def loss_to(
    proj: GaussianProjector, clean: np.ndarray, other: np.ndarray, band: np.ndarray, scale: float
) -> float:
    """Least log-likelihood loss over in-plane rotations of ``other``'s projection."""
    psis = np.arange(0.0, 360.0, 3.0)
    rot, tilt = direction_angles(other[None])
    z = np.zeros(len(psis))
    q = proj.slices(np.repeat(rot, len(psis)), np.repeat(tilt, len(psis)), psis, z, z) * band
    diff = (clean[None] - q) * scale
    w = np.full(BOX // 2 + 1, 2.0)  # rfft half plane: the other half counted twice
    w[0] = w[-1] = 1.0
    return float((np.abs(diff) ** 2 * w).sum(axis=(1, 2)).min() / (BOX * BOX) / 2.0)


def neighbour(d: np.ndarray, deg: float, rng: np.random.Generator) -> np.ndarray:
    a = np.cross(d, rng.standard_normal(3))
    a /= np.linalg.norm(a)
    return np.cos(np.radians(deg)) * d + np.sin(np.radians(deg)) * a


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--directions", type=int, default=150)
    ap.add_argument("--snr", type=float, default=0.05)
    ap.add_argument("--max-res", type=float, default=6.0, help="band limit (Å)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    ky = np.fft.fftfreq(BOX)[:, None]
    kx = np.fft.rfftfreq(BOX)[None]
    band = np.hypot(kx, ky) <= APIX / a.max_res
    y, x = np.mgrid[0:BOX, 0:BOX] - BOX // 2
    inside = np.hypot(x, y) <= 36
    others = ("mirror (-d)", "10°", "20°", "30°")
    for shape in ("compact", "elongated"):
        rng = np.random.default_rng(a.seed)
        d = rng.standard_normal((a.directions, 3))
        d /= np.linalg.norm(d, axis=1)[:, None]
        proj = GaussianProjector(BOX, shape)
        rot, tilt = direction_angles(d)
        z = np.zeros(len(d))
        clean = proj.slices(rot, tilt, z, z, z) * band
        img = np.fft.irfft2(clean, s=(BOX, BOX))
        scale = float(np.sqrt(a.snr / img[:, inside].var(axis=1).mean()))
        loss = {k: np.empty(len(d)) for k in others}
        for i in range(len(d)):
            loss["mirror (-d)"][i] = loss_to(proj, clean[i], -d[i], band, scale)
            for k in others[1:]:
                far = neighbour(d[i], float(k.rstrip("°")), rng)
                loss[k][i] = loss_to(proj, clean[i], far, band, scale)
        print(f"{shape} particle, {a.directions} directions, SNR {a.snr:g}, {a.max_res:g} Å")
        print(f"  {'explained by':>14s}   median    10%    90%   (log-likelihood lost)")
        for k, v in loss.items():
            p10, p50, p90 = np.percentile(v, [10, 50, 90])
            print(f"  {k:>14s}   {p50:6.1f} {p10:6.1f} {p90:6.1f}")
        m = loss["mirror (-d)"]
        share = ", ".join(f"{k} {100 * (m < loss[k]).mean():.0f}%" for k in others[1:])
        print(f"  mirror costs less than a neighbour at {share} of the directions")
    return 0


if __name__ == "__main__":
    sys.exit(main())

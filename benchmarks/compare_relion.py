"""Compare a twodclass job on the real beta-galactosidase particles with RELION's Class2D.

Usage::

    python benchmarks/compare_relion.py JOBDIR RELION_DIR [--top 20] [--png montage.png]

RELION_DIR holds ``run_it025_classes.mrcs`` and ``run_it025_model.star`` (RELION's own
2D classification of the same particles). For each of RELION's most populated classes the
script finds our best-matching class average: the highest normalised cross-correlation over
in-plane rotations (1 degree) and small shifts, inside the particle mask, after both images
are low-pass filtered to a common resolution. Prints one row per RELION class and the
median; optionally writes a montage (RELION top row, our best matches below).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.fourier import fourier_crop  # noqa: E402
from engine.core.pose import class_to_particle  # noqa: E402
from engine.io.mrc import open_stack  # noqa: E402
from engine.io.star import read_star  # noqa: E402


def _lowpass(imgs: np.ndarray, apix: float, res_A: float) -> np.ndarray:
    b = imgs.shape[-1]
    F = np.fft.rfft2(imgs)
    ky = np.fft.fftfreq(b, apix)[:, None]
    kx = np.fft.rfftfreq(b, apix)[None, :]
    F *= np.exp(-0.5 * (np.hypot(kx, ky) * res_A) ** 2 * 2.0)
    return np.fft.irfft2(F, s=(b, b))


def _norm(imgs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    v = imgs[:, mask]
    v = v - v.mean(axis=1, keepdims=True)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def best_match(
    ref: np.ndarray, ours: np.ndarray, mask: np.ndarray, step_deg: float = 2.0, shift_px: int = 2
) -> tuple[int, float]:
    """Our class with the highest rotation/shift-invariant correlation to ``ref``."""
    cands = []
    for psi in np.arange(0.0, 360.0, step_deg):
        for dx in range(-shift_px, shift_px + 1):
            for dy in range(-shift_px, shift_px + 1):
                cands.append(class_to_particle(ref, psi, dx, dy))
    rv = _norm(np.asarray(cands), mask)  # (n_rot, m)
    ov = _norm(ours, mask)  # (K, m)
    cc = (ov @ rv.T).max(axis=1)
    k = int(np.argmax(cc))
    return k, float(cc[k])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("job")
    ap.add_argument("relion")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--res", type=float, default=15.0, help="common low-pass (Å)")
    ap.add_argument("--png", default=None)
    a = ap.parse_args(argv)
    ours, apix_o = open_stack(Path(a.job) / "run_classes.mrcs")
    ours = np.array(ours, dtype=np.float64)
    rel, apix_r = open_stack(Path(a.relion) / "run_it025_classes.mrcs")
    rel = np.array(rel, dtype=np.float64)
    model = read_star(Path(a.relion) / "run_it025_model.star")["model_classes"]
    if ours.shape[-1] != rel.shape[-1]:
        ours = fourier_crop(ours.astype(np.float32), rel.shape[-1]).astype(np.float64)
    ours = _lowpass(ours, apix_r, a.res)
    rel_l = _lowpass(rel, apix_r, a.res)
    b = rel.shape[-1]
    y, x = np.mgrid[0:b, 0:b] - b // 2
    mask = np.hypot(x, y) < 0.42 * b
    order = np.argsort(-model["rlnClassDistribution"].to_numpy())[: a.top]
    rows = []
    print(f"{'RELION class':>12} {'fraction':>8} {'our best':>8} {'corr':>6}")
    for c in order:
        k, cc = best_match(rel_l[c], ours, mask)
        rows.append((c, k, cc))
        print(f"{c + 1:12d} {model['rlnClassDistribution'].iloc[c]:8.3f} {k + 1:8d} {cc:6.3f}")
    ccs = np.array([r[2] for r in rows])
    print(
        f"median best-match correlation over RELION's top {len(rows)} classes: "
        f"{np.median(ccs):.3f} (min {ccs.min():.3f})"
    )
    if a.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(2, len(rows), figsize=(len(rows) * 1.0, 2.2))
        for j, (c, k, cc) in enumerate(rows):
            ax[0, j].imshow(rel[c], cmap="gray")
            ax[1, j].imshow(ours[k], cmap="gray")
            ax[0, j].set_title(f"R{c + 1}", fontsize=6)
            ax[1, j].set_title(f"{k + 1}: {cc:.2f}", fontsize=6)
            for r in (0, 1):
                ax[r, j].axis("off")
        fig.savefig(a.png, dpi=150, bbox_inches="tight")
    return 0


if __name__ == "__main__":
    sys.exit(main())

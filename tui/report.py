"""``twodclass report JOBDIR -o report.html``: a shareable page of a job's classes.

One self-contained HTML file (opens offline): the class montage in full pixels, sorted by
particle count, each class with its count, share and resolution (and a tick when it is in
the saved selection); the class distribution, the convergence (changed assignments and
log-likelihood per iteration) and each class's resolution as inline SVG; the saved
selection if there is one. Images are PNG data URIs written without Pillow. The file is
written atomically.
"""

from __future__ import annotations

import argparse
import base64
import time
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tui.png import encode_png
from tui.svgplot import svg_bars, svg_lines

__all__ = ["add_parser", "run", "build_report", "write_report"]

SCALE = 2
"""Montage images are shown at this many screen pixels per image pixel (no smoothing)."""

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
.montage { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; padding: 4px; border: 2px solid #ddd; text-align: center; }
figure.selected { border-color: #3a9a4a; background: #eef8ef; }
figure img { image-rendering: pixelated; display: block; }
figcaption { font-size: 12px; line-height: 1.3; }
.meta td { padding: 0 1em 0 0; } .plots svg { max-width: 100%; height: auto; }
"""


def _png_uri(img: np.ndarray) -> str:
    from tui.halfblock import stretch

    grey = np.clip(np.rint(stretch(img) * 255), 0, 255).astype(np.uint8)
    return "data:image/png;base64," + base64.b64encode(encode_png(grey)).decode("ascii")


def build_report(job_dir: Path) -> str:
    """The report of ``job_dir`` as an HTML string."""
    from tui.job_extras import convergence
    from tui.jobfiles import load_job, read_selection

    job = load_job(Path(job_dir))
    selected = set(read_selection(Path(job_dir)) or [])
    infos = sorted(
        range(len(job.classes)), key=lambda i: (-job.classes[i].count, job.classes[i].number)
    )
    total = max(job.n_particles, 1)
    b = int(job.images.shape[-1]) if job.images.size else 0
    figures = []
    for i in infos:
        c = job.classes[i]
        res = f"{c.resolution_A:.1f} Å" if np.isfinite(c.resolution_A) else "–"
        sel = c.number in selected
        figures.append(
            f'<figure class="{"selected" if sel else ""}" id="class-{c.number}">'
            f'<img src="{_png_uri(job.images[i])}" width="{SCALE * b}" height="{SCALE * b}" '
            f'alt="class {c.number}" data-class="{c.number}">'
            f"<figcaption>{'✓ ' if sel else ''}<b>#{c.number}</b> · {c.count:,} "
            f"({100 * c.count / total:.1f} %)<br>{res}</figcaption></figure>"
        )
    numbers = [job.classes[i].number for i in infos]
    counts = np.array([job.classes[i].count for i in infos], float)
    conv = convergence(job.iterations)
    plots = [
        svg_bars(
            counts,
            [str(n) for n in numbers],
            "Particles per class, sorted",
            "class",
            "particles",
            highlight=[n in selected for n in numbers],
        ),
        svg_lines(
            conv["iteration"],
            100 * conv["changed"],
            "Changed assignments per iteration",
            "iteration",
            "% of particles",
            "#3a9a4a",
        ),
        svg_lines(
            conv["iteration"],
            conv["loglik"],
            "Log-likelihood per iteration",
            "iteration",
            "mean per particle",
        ),
        svg_bars(
            np.array([min(job.classes[i].resolution_A, 999.0) for i in infos]),
            [str(n) for n in numbers],
            "Resolution per class (Å, lower is better), same order",
            "class",
            "Å",
            highlight=[n in selected for n in numbers],
        ),
    ]
    status = job.job.get("status", "")
    sel_text = (
        f"{len(selected)} of {len(job.classes)} classes selected "
        f"({sum(job.classes[i].count for i in infos if job.classes[i].number in selected):,} "
        "particles before the particle filter): " + ", ".join(str(n) for n in sorted(selected))
        if selected
        else "No saved selection (twodclass select or the browser's s writes selection.json)."
    )
    meta = [
        ("Job", str(Path(job_dir).resolve())),
        ("Classes", f"{len(job.classes)}"),
        ("Particles", f"{job.n_particles:,}"),
        ("Class image", f"{b} px at {job.apix_A:.2f} Å/px"),
        ("Status", str(status) or "unknown"),
        ("Report written", time.strftime("%Y-%m-%d %H:%M")),
    ]
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in meta)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>twodclass report — {escape(Path(job_dir).name)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>twodclass 2D classes — {escape(Path(job_dir).name)}</h1>",
            f'<table class="meta">{rows}</table>',
            f'<h2>Selection</h2><p id="selection">{escape(sel_text)}</p>',
            f"<h2>Class averages ({len(job.classes)}, by particle count; {SCALE}x, "
            "full pixels)</h2>",
            '<div class="montage">' + "".join(figures) + "</div>",
            '<h2>Plots</h2><div class="plots">' + "\n".join(plots) + "</div>",
            "</body></html>",
        ]
    )


def write_report(job_dir: Path, out: Path) -> Path:
    """Write the report of ``job_dir`` to ``out`` (atomically); returns ``out``."""
    from engine.io.atomic import atomic_write_text

    atomic_write_text(out, build_report(job_dir))
    return out


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="write a shareable HTML page of a job's classes (montage, plots, selection)",
        description="Write one self-contained HTML file (opens offline, no server): every "
        "class average in full pixels sorted by particle count with its count and "
        "resolution, the class distribution, the convergence per iteration, each class's "
        "resolution, and the saved selection if there is one. Print it from a browser "
        "for a PDF.",
    )
    p.add_argument("job_dir", type=Path, metavar="JOBDIR", help="a twodclass job folder")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="the HTML file to write (default: JOBDIR/report.html)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from engine.errors import InputError

    out = args.output or Path(args.job_dir) / "report.html"
    if out.suffix.lower() == ".pdf":
        raise InputError(out, "PDF is not written; write .html and print it from a browser")
    write_report(Path(args.job_dir), out)
    print(f"wrote {out}")
    return 0

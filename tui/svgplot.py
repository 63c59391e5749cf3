"""Small inline SVG plots (bars, lines) for the HTML report: no plotting library, opens
offline in any browser."""

from __future__ import annotations

from html import escape

import numpy as np

__all__ = ["svg_bars", "svg_lines"]

W, H = 720, 260
L, R, T, B = 64, 16, 30, 44


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return [lo]
    step = 10 ** np.floor(np.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + step * 0.5, step)]


def _frame(title: str, xlabel: str, ylabel: str, y0: float, y1: float) -> list[str]:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" font-family="sans-serif" font-size="12" role="img">',
        f"<title>{escape(title)}</title>",
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#444"/>',
        f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#444"/>',
        f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">{escape(xlabel)}</text>',
        f'<text x="14" y="{(T + H - B) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(T + H - B) / 2})">{escape(ylabel)}</text>',
    ]
    for v in _nice_ticks(y0, y1):
        y = _sy(v, y0, y1)
        out.append(f'<line x1="{L - 4}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    return out


def _sy(v: float, y0: float, y1: float) -> float:
    return H - B - (v - y0) / (y1 - y0 or 1.0) * (H - B - T)


def svg_bars(
    values: np.ndarray,
    labels: list[str],
    title: str,
    xlabel: str,
    ylabel: str,
    highlight: list[bool] | None = None,
) -> str:
    """A bar per value (left to right), labelled below (every n-th label when crowded)."""
    v = np.asarray(values, float)
    y1 = float(v.max()) if v.size and v.max() > 0 else 1.0
    out = _frame(title, xlabel, ylabel, 0.0, y1)
    n = max(len(v), 1)
    bw = (W - L - R) / n
    every = max(1, int(np.ceil(n / 30)))
    for i, x in enumerate(v):
        y = _sy(float(x), 0.0, y1)
        colour = "#3a9a4a" if highlight and highlight[i] else "#4a6fb5"
        out.append(
            f'<rect x="{L + i * bw + 0.1 * bw:.1f}" y="{y:.1f}" width="{0.8 * bw:.1f}" '
            f'height="{H - B - y:.1f}" fill="{colour}"><title>{escape(labels[i])}: {x:g}'
            "</title></rect>"
        )
        if i % every == 0:
            out.append(
                f'<text x="{L + (i + 0.5) * bw:.1f}" y="{H - B + 14}" text-anchor="middle" '
                f'font-size="10">{escape(labels[i])}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


def svg_lines(
    x: np.ndarray, y: np.ndarray, title: str, xlabel: str, ylabel: str, colour: str = "#b5482a"
) -> str:
    """One line with dots at the points (NaN points left out)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        out = _frame(title + " (not recorded)", xlabel, ylabel, 0.0, 1.0)
        out.append("</svg>")
        return "\n".join(out)
    x, y = x[ok], y[ok]
    y0, y1 = float(y.min()), float(y.max())
    if y1 <= y0:
        y0, y1 = y0 - 1, y1 + 1
    x0, x1 = float(x.min()), float(x.max())
    out = _frame(title, xlabel, ylabel, y0, y1)

    def sx(v: float) -> float:
        return L + (v - x0) / ((x1 - x0) or 1.0) * (W - L - R)

    pts = " ".join(f"{sx(a):.1f},{_sy(b, y0, y1):.1f}" for a, b in zip(x, y, strict=True))
    out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for a, b in zip(x, y, strict=True):
        out.append(f'<circle cx="{sx(a):.1f}" cy="{_sy(b, y0, y1):.1f}" r="3" fill="{colour}"/>')
    for v in _nice_ticks(x0, x1, 8):
        out.append(
            f'<text x="{sx(v):.1f}" y="{H - B + 14}" text-anchor="middle" '
            f'font-size="10">{v:g}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)

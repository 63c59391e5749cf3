"""Plots in the terminal (textual-plotext): class distribution, a class's resolution curve,
the run's convergence. Each function fills a :class:`PlotextPlot`'s ``plt`` from arrays and
returns a one-line summary (also the plot's title)."""

from __future__ import annotations

from typing import Any

import numpy as np
from textual_plotext import PlotextPlot

__all__ = [
    "PlotextPlot",
    "plot_distribution",
    "plot_resolution_curve",
    "plot_convergence",
    "distribution_order",
]


def distribution_order(counts: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Indices sorting classes by decreasing particle count (then class number)."""
    return np.lexsort((np.asarray(numbers), -np.asarray(counts)))


def plot_distribution(
    plot: PlotextPlot, numbers: np.ndarray, counts: np.ndarray, selected: set[int] | None = None
) -> str:
    """Particles per class, sorted (selected classes in a second colour)."""
    plt = plot.plt
    plt.clear_figure()
    order = distribution_order(counts, numbers)
    x = np.arange(1, len(order) + 1)
    y = np.asarray(counts)[order].astype(float)
    sel = np.array([int(n) in (selected or set()) for n in np.asarray(numbers)[order]])
    if sel.any() and not sel.all():
        plt.bar(x[~sel].tolist(), y[~sel].tolist(), color="blue", label="not selected")
        plt.bar(x[sel].tolist(), y[sel].tolist(), color="green", label="selected")
    else:
        plt.bar(x.tolist(), y.tolist(), color="blue")
    total = int(y.sum())
    title = f"Particles per class, sorted ({len(order)} classes, {total:,} particles)"
    plt.title(title)
    plt.xlabel("class rank by size")
    plt.ylabel("particles")
    step = max(1, len(order) // 10)
    ticks = x[::step].tolist()
    plt.xticks(ticks, [str(int(np.asarray(numbers)[order][t - 1])) for t in ticks])
    plot.refresh()
    return title


def plot_resolution_curve(
    plot: PlotextPlot, number: int, inv_A: np.ndarray, ssnr: np.ndarray, resolution_A: float
) -> str:
    """The class's SSNR against 1/Å (log scale), the SSNR = 1 line and its resolution."""
    plt = plot.plt
    plt.clear_figure()
    ok = np.isfinite(ssnr) & (inv_A > 0)
    y = np.log10(np.maximum(ssnr[ok], 1e-3))
    plt.plot(inv_A[ok].tolist(), y.tolist(), marker="braille", color="cyan", label="SSNR")
    plt.hline(0.0, color="red")
    res = f"{resolution_A:.1f} Å" if np.isfinite(resolution_A) and resolution_A < 999 else "–"
    if np.isfinite(resolution_A) and 0 < resolution_A < 999:
        plt.vline(1.0 / resolution_A, color="yellow")
    title = f"Class {number}: SSNR (log10) vs 1/Å; SSNR = 1 at {res}"
    plt.title(title)
    plt.xlabel("spatial frequency (1/Å)")
    plt.ylabel("log10 SSNR")
    plot.refresh()
    return title


def plot_convergence(plot: PlotextPlot, conv: dict[str, Any], which: str) -> str:
    """``which="changed"``: % of particles that changed class per iteration;
    ``"loglik"``: mean log-likelihood per particle per iteration."""
    plt = plot.plt
    plt.clear_figure()
    it = np.asarray(conv.get("iteration", []), float)
    if which == "changed":
        y = 100.0 * np.asarray(conv.get("changed", []), float)
        title, ylabel, colour = "Changed assignments per iteration", "% of particles", "green"
    else:
        y = np.asarray(conv.get("loglik", []), float)
        title, ylabel, colour = "Log-likelihood per iteration", "mean per particle", "magenta"
    ok = np.isfinite(y) & np.isfinite(it)
    if ok.any():
        plt.plot(it[ok].tolist(), y[ok].tolist(), marker="braille", color=colour)
        plt.scatter(it[ok].tolist(), y[ok].tolist(), marker="dot", color=colour)
        last = y[ok][-1]
        title += f" (last: {last:.1f}{' %' if which == 'changed' else ''})"
    else:
        title += " (not recorded)"
    plt.title(title)
    plt.xlabel("iteration")
    plt.ylabel(ylabel)
    plot.refresh()
    return title

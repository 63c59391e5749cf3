"""The viewer's figures and terminal action, headless (Agg), from a hand-made job folder."""

from __future__ import annotations

import io
import os
import stat

import numpy as np
import pytest

pytest.importorskip("pwem")
pytestmark = pytest.mark.scipion

K, BOX, N = 5, 32, 200


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> str:
    from tests.helpers_scipion import write_fake_job

    d = str(tmp_path_factory.mktemp("job"))
    rng = np.random.default_rng(1)
    cls = np.repeat(np.arange(1, K + 1), [80, 50, 40, 20, 10])
    write_fake_job(
        d,
        averages=rng.normal(size=(K, BOX, BOX)).astype(np.float32),
        classes_apix=4.0,
        particle_apix=3.0,
        box=48,
        class_number=cls,
        psi_deg=np.zeros(N),
        origin_x_A=np.zeros(N),
        origin_y_A=np.zeros(N),
        scipion_ids=np.arange(1, N + 1),
        resolution_A=[8, 9, 10, 15, 30],
        n_iterations=6,
    )
    return d


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_montage_shows_counts_and_resolution(job):
    from scipion_2dclass.viewers.plots import job_figure

    fig = job_figure(job, "montage")
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == [
        "#1  n=80  8.0 Å",
        "#2  n=50  9.0 Å",
        "#3  n=40  10.0 Å",
        "#4  n=20  15.0 Å",
        "#5  n=10  30.0 Å",
    ]
    assert sum(len(ax.images) for ax in fig.axes) == K
    assert fig.axes[0].images[0].get_array().shape == (BOX, BOX)
    assert _png(fig)[:4] == b"\x89PNG"


def test_distribution_bars_are_the_class_sizes(job):
    from scipion_2dclass.viewers.plots import job_figure

    fig = job_figure(job, "distribution")
    bars = [p.get_height() for p in fig.axes[0].patches]
    assert bars == [80, 50, 40, 20, 10]
    soft = fig.axes[1].lines[0].get_ydata()
    np.testing.assert_allclose(soft, np.array([80, 50, 40, 20, 10]) / N)
    assert _png(fig)[:4] == b"\x89PNG"


def test_convergence_plots_every_iteration(job):
    from scipion_2dclass.viewers.plots import convergence_figure, job_figure

    fig = job_figure(job, "convergence")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "Particles changing class",
        "Mean log-likelihood",
        "Temperature (uncertainty)",
        "Time per iteration",
    ]
    x, y = fig.axes[0].lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(1, 7))
    np.testing.assert_allclose(y, np.linspace(0.8, 0.05, 6))
    full_x = fig.axes[0].lines[1].get_xdata()  # the final full pass is marked
    np.testing.assert_array_equal(full_x, [6])
    assert _png(fig)[:4] == b"\x89PNG"
    import pandas as pd

    empty = convergence_figure(pd.DataFrame())
    assert "no iterations" in empty.axes[0].texts[0].get_text()


def _fake_exe(folder, name: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


def test_terminal_browser_command(tmp_path, job):
    from scipion_2dclass import engine_executable
    from scipion_2dclass.viewers.viewer_classify import browse_command, terminal_command

    assert browse_command(job) == [engine_executable(), "browse", os.path.abspath(job)]
    assert os.path.exists(engine_executable())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert terminal_command(job, {"PATH": str(empty)}) is None
    bins = tmp_path / "bin"
    bins.mkdir()
    _fake_exe(bins, "xterm")
    assert terminal_command(job, {"PATH": str(bins)}) == ["xterm", "-e", *browse_command(job)]
    _fake_exe(bins, "gnome-terminal")
    assert terminal_command(job, {"PATH": str(bins)})[:2] == ["gnome-terminal", "--"]
    _fake_exe(bins, "myterm")
    env = {"PATH": str(bins), "TERMINAL": "myterm"}
    assert terminal_command(job, env) == ["myterm", "-e", *browse_command(job)]

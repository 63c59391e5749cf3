"""``twodclass report``: the HTML page holds every class image (pixel for pixel), the plots
and the saved selection."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from helpers_job import make_finished_job

from engine.cli import main as cli_main
from engine.select import write_selection
from tui.halfblock import stretch
from tui.png import decode_png
from tui.report import build_report


def _images(html: str) -> dict[int, np.ndarray]:
    out = {}
    for uri, number in re.findall(
        r'<img src="data:image/png;base64,([^"]+)"[^>]*data-class="(\d+)"', html
    ):
        out[int(number)] = decode_png(base64.b64decode(uri))
    return out


def test_report_holds_every_class_image_and_the_plots(tmp_path):
    job = make_finished_job(tmp_path, n_classes=7, n_particles=140, box=32)
    html = build_report(job)
    imgs = _images(html)
    from engine.io.jobfolder import load_job

    j = load_job(job, read_data=False)
    assert sorted(imgs) == list(range(1, 8))
    for k, number in enumerate(j.class_numbers):
        want = np.clip(np.rint(stretch(j.classes[k]) * 255), 0, 255).astype(np.uint8)
        assert np.array_equal(imgs[int(number)], want)  # full pixels, not resampled
    # sorted by particle count in the montage
    order = [int(n) for n in re.findall(r'data-class="(\d+)"', html)]
    counts = dict(zip(j.class_numbers.tolist(), j.counts.tolist(), strict=True))
    assert [counts[n] for n in order] == sorted(counts.values(), reverse=True)
    # the plots: distribution, changed assignments, log-likelihood, resolution
    titles = re.findall(r"<svg[^>]*>\s*<title>([^<]+)</title>", html)
    assert titles[0] == "Particles per class, sorted"
    assert titles[1].startswith("Changed assignments per iteration")
    assert titles[2].startswith("Log-likelihood per iteration")
    assert titles[3].startswith("Resolution per class")
    assert len(re.findall(r"<rect ", html)) == 2 * 7  # a bar per class in two bar charts
    assert "No saved selection" in html
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # offline


def test_report_shows_the_saved_selection(tmp_path):
    job = make_finished_job(tmp_path, n_classes=5, n_particles=100, box=32)
    write_selection(job, [2, 4])  # as `twodclass select` and the browser save it
    html = build_report(job)
    assert "2 of 5 classes selected" in html
    assert len(re.findall(r'<figure class="selected"', html)) == 2
    assert 'id="class-2"' in html


def test_report_command_writes_the_file(tmp_path, capsys):
    job = make_finished_job(tmp_path, n_classes=4, n_particles=80, box=32)
    out = tmp_path / "r" / "report.html"
    out.parent.mkdir()
    assert cli_main(["report", str(job), "-o", str(out)]) == 0
    assert len(_images(out.read_text())) == 4
    assert cli_main(["report", str(job), "-o", str(tmp_path / "x.pdf")]) == 2
    assert "PDF" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["report", "--help"])
    assert "self-contained HTML" in capsys.readouterr().out

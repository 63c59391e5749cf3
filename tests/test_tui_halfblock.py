"""The half-block renderer against slow, obvious references."""

from __future__ import annotations

import numpy as np

from tui.halfblock import UPPER_HALF, halfblock_segments, resize_area, stretch, to_grey_levels


def _naive_block_mean(img: np.ndarray, fy: int, fx: int) -> np.ndarray:
    h, w = img.shape
    out = np.zeros((h // fy, w // fx))
    for i in range(h // fy):
        for j in range(w // fx):
            out[i, j] = img[i * fy : (i + 1) * fy, j * fx : (j + 1) * fx].mean()
    return out


def test_resize_area_is_block_mean_for_integer_factors():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(64, 48)).astype(np.float32)
    np.testing.assert_allclose(
        resize_area(img, 16, 12), _naive_block_mean(img, 4, 4), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        resize_area(img, 32, 24), _naive_block_mean(img, 2, 2), rtol=1e-5, atol=1e-5
    )


def test_resize_area_keeps_the_mean_for_any_factor():
    rng = np.random.default_rng(1)
    img = rng.uniform(size=(50, 50)).astype(np.float32)
    small = resize_area(img, 14, 14)
    assert small.shape == (14, 14)
    assert abs(small.mean() - img.mean()) < 1e-3


def test_stretch_uses_1_and_99_percentiles():
    img = np.arange(10000, dtype=np.float32).reshape(100, 100)
    img[0, 0] = -1e6  # outliers do not matter
    img[-1, -1] = 1e6
    s = stretch(img)
    lo, hi = np.percentile(img, [1, 99])
    np.testing.assert_allclose(s[50, 50], (img[50, 50] - lo) / (hi - lo), rtol=1e-5)
    assert s.min() == 0.0 and s.max() == 1.0
    assert np.all(stretch(np.ones((4, 4))) == 0.5)


def test_halfblock_cells_carry_top_and_bottom_pixels():
    levels = np.array([[0, 255, 255], [128, 10, 10], [7, 7, 7], [9, 9, 9]], np.uint8)
    rows = halfblock_segments(levels)
    assert len(rows) == 2
    # first row: cell 0 (top 0, bottom 128), then cells 1-2 merged (top 255, bottom 10)
    first = rows[0]
    assert [s.text for s in first] == [UPPER_HALF, UPPER_HALF * 2]
    assert first[0].style.color.triplet == (0, 0, 0)
    assert first[0].style.bgcolor.triplet == (128, 128, 128)
    assert first[1].style.color.triplet == (255, 255, 255)
    assert first[1].style.bgcolor.triplet == (10, 10, 10)
    assert sum(len(s.text) for s in rows[1]) == 3


def test_grey_levels_shape_and_range():
    rng = np.random.default_rng(2)
    lv = to_grey_levels(rng.normal(size=(64, 64)), 14, 7)
    assert lv.shape == (14, 14) and lv.dtype == np.uint8
    assert lv.min() >= 0 and lv.max() <= 255 and lv.max() > lv.min()

"""Small helpers of the figures module (figure files themselves are checked in test_evaluation/test_reports)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from varsep.eval.plots import LAND, masked_frame, masked_maps, ordinal


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"),
                                         (12, "12th"), (13, "13th"), (21, "21st"), (22, "22nd"), (111, "111th")])
def test_ordinal(n, text):
    assert ordinal(n) == text


def test_masked_frame_hides_the_land_whatever_it_holds():
    frame = np.arange(12, dtype=np.float64).reshape(1, 3, 4)
    valid = np.ones((1, 3, 4), dtype=bool)
    valid[0, :, 0] = False
    frame[0, 1, 2] = np.nan  # a NaN in the field is hidden too
    shown = masked_frame(frame, valid)
    assert shown.mask.tolist() == [[True, False, False, False], [True, False, True, False],
                                   [True, False, False, False]]
    assert shown.min() == 1.0 and shown.max() == 11.0  # land (0, 4, 8) sets no colour limit


def _grey_pixels(path) -> int:
    image = iio.imread(path)[..., :3].astype(int)
    grey = np.array([round(255 * v) for v in LAND])
    return int((np.abs(image - grey).max(-1) <= 1).sum())


def test_masked_maps_draw_the_land_grey(tmp_path):
    rng = np.random.default_rng(0)
    truth = 290 + rng.normal(size=(4, 1, 20, 30))
    forecast = truth + 0.1
    valid = np.ones((1, 20, 30), dtype=bool)
    valid[0, 5:15, 18:] = False
    truth[:, :, ~valid[0]] = 1e6  # what land holds must not matter
    with_land = masked_maps(truth, forecast, valid, tmp_path / "land.png", units="K", title="t")
    without = masked_maps(truth[:, :, :, :18], forecast[:, :, :, :18], None, tmp_path / "sea.png")
    assert with_land.stat().st_size > 1000
    # 10 × 12 land cells in 12 panels of ~150 × 100 pixels for 20 × 30 cells: ~30 000 grey pixels; without
    # land only the edges of the text are that grey
    assert _grey_pixels(with_land) > 20_000 and _grey_pixels(without) < 500

"""The references a forecast is held against — repeat the last frame, the climatology — and the plain
verdict `varsep evaluate` prints: values from fakes whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fakes import FakeData, LinearOracle

from varsep.data.windows import ArrayWindows
from varsep.eval.evaluation import EvalOptions, reference_verdict, score_horizon, step_ranges, summary_lines


class Climatology(FakeData):
    """A climatology of 0.3 everywhere — and 100 in the masked column, which must change nothing."""

    climatology_reference = "0.3 everywhere"

    def __init__(self, mask: bool = False):
        if mask:
            self.valid_mask = np.ones((1, 16, 16), dtype=bool)
            self.valid_mask[..., 0] = False

    def climatology_forecast(self, windows, indices, offset, k):
        out = np.full((len(indices), k, 1, 16, 16), 0.3, dtype=np.float32)
        if self.valid_mask is not None:
            out[..., 0] = 100.0
        return out


@pytest.mark.parametrize("mask", [False, True])
def test_the_climatology_is_scored_like_a_forecast(mask):
    # two constant windows, 0.2 and 0.5: the climatology 0.3 misses them by 0.1 and 0.2 at every step
    frames = np.broadcast_to(np.array([0.2, 0.5], np.float32)[:, None, None, None, None], (2, 9, 1, 16, 16))
    windows = ArrayWindows(np.ascontiguousarray(frames), 5 + 4)
    result, _ = score_horizon(LinearOracle(), windows, 4, dataset=Climatology(mask),
                              options=EvalOptions(progress=False))
    np.testing.assert_allclose(result["climatology_mse"], [(0.01 + 0.04) / 2] * 4, rtol=1e-5)
    assert result["climatology_mse_mean"] == pytest.approx(0.025, rel=1e-5)
    np.testing.assert_allclose(result["climatology_psnr"], [(20 + 10 * np.log10(25)) / 2] * 4, rtol=1e-5)
    assert max(result["mse"]) < 1e-12 and max(result["baseline_mse"]) < 1e-12  # constant: both exact
    assert "climatology_*" in result["definitions"] and "0.3 everywhere" in result["definitions"]["climatology_*"]


def test_no_climatology_where_the_data_set_has_none():
    frames = np.zeros((1, 9, 1, 16, 16), np.float32)
    result, _ = score_horizon(LinearOracle(), ArrayWindows(frames, 9), 4, dataset=FakeData(),
                              options=EvalOptions(progress=False))
    assert not any(k.startswith("climatology") for k in result) and "climatology_*" not in result["definitions"]


def test_step_ranges():
    assert step_ranges([1, 2, 3, 7, 9, 10]) == "1–3, 7, 9–10" and step_ranges([4]) == "4" and step_ranges([]) == ""


def horizon(mse, baseline, climatology=None, key="mse"):
    r = {"windows": 3, key: mse, "baseline_" + key: baseline, f"{key}_mean": float(np.mean(mse)),
         f"baseline_{key}_mean": float(np.mean(baseline)), "psnr_mean": 20.0}
    if key != "mse":
        r.update({"mse": mse, "baseline_mse": baseline, "mse_mean": float(np.mean(mse)),
                  "baseline_mse_mean": float(np.mean(baseline))})
    if climatology is not None:
        r[f"climatology_{key}"] = climatology
        r["climatology_mse"] = climatology
        r["climatology_mse_mean"] = r[f"climatology_{key}_mean"] = float(np.mean(climatology))
    return r


def test_verdict_names_the_steps_a_reference_is_not_beaten():
    r = horizon([1.0, 2.0, 3.0, 4.0], [0.5, 2.0, 5.0, 5.0], [9.0, 9.0, 9.0, 9.0])
    verdict = reference_verdict(r)
    # step 2 is a tie: matching a reference is not beating it
    assert verdict["repeat_last_frame"] == {"not_beaten": [1, 2], "beats_every_step": False, "worst_ratio": 2.0}
    assert verdict["climatology"] == {"not_beaten": [], "beats_every_step": True, "worst_ratio": pytest.approx(4 / 9)}
    assert verdict["metric"] == "mse" and verdict["steps"] == 4
    lines = summary_lines({"horizons": {"4": r}})
    assert lines[0].startswith("t+4: MSE 2.500e+00")  # the existing line stays first
    assert "t+4: climatology MSE 9.000e+00" in lines
    assert ("t+4: the model does NOT beat repeating the last frame at steps 1–2 of 4 (mse 1 against 0.5 at "
            "step 1)") in lines
    assert "t+4: it beats the climatology at every step (mse at most 0.44× theirs)" in lines


def test_verdict_when_every_reference_is_beaten_and_in_the_data_units():
    r = horizon([1.0, 2.0], [2.0, 4.0], [4.0, 4.0], key="mse_physical")
    r["mse"], r["baseline_mse"] = [9.0, 9.0], [1.0, 1.0]  # the model's scale disagrees: the data's units count
    verdict = reference_verdict(r)
    assert verdict["metric"] == "mse_physical" and verdict["repeat_last_frame"]["beats_every_step"]
    lines = summary_lines({"horizons": {"2": r}})
    assert ("t+2: the model beats repeating the last frame and the climatology at every one of the 2 steps "
            "(mse_physical at most 0.50× theirs)") in lines
    assert not any("NOT" in line for line in lines)


def test_verdict_without_climatology_and_reports_written_before_it():
    r = horizon([1.0, 3.0, 1.0], [2.0, 2.0, 2.0])
    assert "climatology" not in reference_verdict(r)
    lines = summary_lines({"horizons": {"3": r}})  # no "verdict" in the report: computed from the curves
    assert ("t+3: the model does NOT beat repeating the last frame at step 2 of 3 (mse 3 against 2 at step 2)"
            in lines)

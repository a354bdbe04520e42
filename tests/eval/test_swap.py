"""The content-swap protocol on synthetic data whose right answer is known: two-digit sequences (both
assignments of digits to trajectories admissible), chairs (one ground truth), and data without one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_fakes import FakeData, LinearOracle, LookupOracle, ramp_windows

from varsep.data.chairs import ChairWindows, sequence_views
from varsep.data.mmnist.motion import RenderedWindows, frames_to_float, random_motion
from varsep.data.windows import ArrayWindows
from varsep.eval import metrics
from varsep.eval.evaluation import EvalOptions, score_horizon
from varsep.eval.swap import partners, sequence_ids

COND, HORIZON = 5, 6


@pytest.mark.parametrize("n", range(2, 10))
def test_pairing_is_a_deterministic_derangement(n):
    p = partners(n)
    assert sorted(p) == list(range(n)) and (p != np.arange(n)).all()
    if n % 2 == 0:
        assert (p[p] == np.arange(n)).all()  # even n: i and its partner exchange their contents
    np.testing.assert_array_equal(p, partners(n))


class Digits(FakeData):
    """A Moving MNIST-like test set: 6 sequences of two random 'digits' on known trajectories."""

    def __init__(self, n: int = 6, seed: int = 0):
        rng = np.random.default_rng(seed)
        images = (rng.random((20, 28, 28)) * 255 * (rng.random((20, 28, 28)) > 0.6)).astype(np.uint8)
        self.motion = random_motion(rng, images, np.arange(20) % 10, n, 2, COND + HORIZON)
        self.windows = RenderedWindows(self.motion, COND + HORIZON, name="test sequence")

    def test_motion(self):
        return self.motion

    def physical(self, frames, windows, indices, offset):
        return None

    def render(self, choose):
        """A perfect swap renderer: the content's digits on the dynamics' trajectories, the assignment
        of digits to trajectories picked by ``choose(dynamic index)`` (a sequence's own content: as drawn)."""
        def render(source, dynamic):
            truths = self.motion.swap_truths(source, dynamic)  # (2, n, T, 64, 64)
            pick = np.array([choose(int(d)) if s != d else 0 for s, d in zip(source, dynamic, strict=True)])
            return frames_to_float(truths[pick, np.arange(len(dynamic))])
        return render


def hand_swap_score(data: Digits, model, metric: str) -> float:
    """Per sequence: the metric's horizon mean against each ground truth, the better kept; then the mean."""
    n = len(data.windows)
    frames = torch.from_numpy(data.windows.take(np.arange(n)))
    content = data.windows.take(partners(n))
    other = model.encode(torch.from_numpy(content[:, :COND]))[0]
    swapped = model.forecast(frames[:, :COND], HORIZON, content=other).double()
    truths = data.motion.swap_truths(partners(n), np.arange(n))
    fn = {"psnr": metrics.psnr, "ssim": metrics.ssim, "mse": metrics.mse}[metric]
    scores = np.stack([fn(swapped, torch.from_numpy(frames_to_float(t)[:, COND:]).double()).mean(1).numpy()
                       for t in truths])
    best = scores.min(0) if metric == "mse" else scores.max(0)
    return float(best.mean())


def test_a_perfect_swap_scores_perfectly_whichever_assignment_it_draws():
    data = Digits()
    model = LookupOracle(data.windows, data.render(lambda i: i % 2))  # half the sequences use each assignment
    result, _ = score_horizon(model, data.windows, HORIZON, dataset=data,
                              options=EvalOptions(progress=False, batch_size=3))
    swap = result["swap"]
    assert swap["ground_truth"] is True and swap["assignments"] == 2 and swap["windows"] == 6
    assert swap["psnr_mean"] == pytest.approx(metrics.PSNR_CAP) and swap["mse_mean"] == 0
    assert swap["ssim_mean"] == pytest.approx(1.0)
    assert result["psnr_mean"] == pytest.approx(metrics.PSNR_CAP)  # its own content: the true sequence
    assert swap["same_sequence_pairs"] == 0 and swap["change_mse_mean"] > 0
    assert [s for _, s in model.calls] == [False, True] * 2  # a forecast and a swap per batch


def test_a_model_that_ignores_the_swapped_content_is_scored_against_the_closer_truth():
    data = Digits()
    wrong = LookupOracle(data.windows, data.render(lambda i: 0))
    wrong.predict = lambda cond, h, content: LookupOracle.predict(wrong, cond, h, None)  # keeps its own S
    result, _ = score_horizon(wrong, data.windows, HORIZON, dataset=data,
                              options=EvalOptions(progress=False, batch_size=3))
    swap = result["swap"]
    assert swap["psnr_mean"] < 30 and swap["ssim_mean"] < 0.9 and swap["change_mse_mean"] == 0
    for metric in ("psnr", "ssim", "mse"):
        assert swap[f"{metric}_mean"] == pytest.approx(hand_swap_score(data, wrong, metric), rel=1e-9)
    # the better of the two truths, not the first: above the score against assignment 0 alone
    n = len(data.windows)
    first = frames_to_float(data.motion.swap_truths(partners(n), np.arange(n))[0])[:, COND:]
    own = torch.from_numpy(data.windows.take(np.arange(n))[:, COND:])
    assert swap["psnr_mean"] > metrics.psnr(own, torch.from_numpy(first)).mean().item()


def chairs_windows(length: int = 8) -> ChairWindows:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(4, 8, 3, 16, 16), dtype=np.uint8)
    return ChairWindows(frames, np.arange(4), sequence_views([0] * 8, length))


def test_chairs_swap_has_one_ground_truth():
    windows = chairs_windows()
    model = LookupOracle(windows, windows.swap_truth)
    result, _ = score_horizon(model, windows, 3, options=EvalOptions(progress=False, batch_size=7))
    swap = result["swap"]
    assert swap["assignments"] == 1 and swap["windows"] == 32
    assert swap["psnr_mean"] == pytest.approx(metrics.PSNR_CAP) and swap["ssim_mean"] == pytest.approx(1.0)
    assert swap["same_sequence_pairs"] == 0  # window i (chair i // 8) takes S from chair i // 8 + 2
    np.testing.assert_array_equal(sequence_ids(windows, np.array([0, 8, 31])), [0, 1, 3])
    ignores = LookupOracle(windows, lambda source, dynamic: windows.swap_truth(dynamic, dynamic))
    worse, _ = score_horizon(ignores, windows, 3, options=EvalOptions(progress=False))
    assert worse["swap"]["psnr_mean"] < 20 and worse["psnr_mean"] == pytest.approx(metrics.PSNR_CAP)


class ContentShift(LinearOracle):
    """Adds a tenth of the content code: a swap moves the forecast by a known amount."""

    def predict(self, cond, horizon, content):
        code = content.code if content is not None else self.content_code(cond)
        return super().predict(cond, horizon, None) + 0.1 * code.view(-1, 1, 1, 1, 1)


def test_without_ground_truth_the_swap_measures_how_much_the_forecast_changes():
    windows = ramp_windows(4, n=4, slope=0.01)
    ignores, _ = score_horizon(LinearOracle(), windows, 4, options=EvalOptions(progress=False))
    assert ignores["swap"]["ground_truth"] is False and ignores["swap"]["change_mse_mean"] == 0
    assert "psnr" not in ignores["swap"]
    uses, _ = score_horizon(ContentShift(), windows, 4, options=EvalOptions(progress=False, batch_size=len(windows)))
    frames = windows.take(np.arange(len(windows)))[:, :COND]
    codes = frames.reshape(len(frames), -1).mean(1)
    expected = np.mean((0.1 * (codes[partners(len(codes))] - codes)) ** 2)
    np.testing.assert_allclose(uses["swap"]["change_mse"], [expected] * 4, rtol=1e-4)


def test_no_swap_without_content_and_same_sequence_pairs_are_counted():
    windows = ramp_windows(4, n=4)
    result, _ = score_horizon(LinearOracle(content=False), windows, 4, options=EvalOptions(progress=False))
    assert "swap" not in result
    single = ArrayWindows(windows.array[:1], windows.length)
    result, _ = score_horizon(LinearOracle(), single, 4, options=EvalOptions(progress=False))
    assert result["swap"]["same_sequence_pairs"] == len(single)  # one sequence: S cannot come from another


def test_limit_keeps_each_windows_partner():
    data = Digits()
    model = LookupOracle(data.windows, data.render(lambda i: 0))
    model.predict = lambda cond, h, content: LookupOracle.predict(model, cond, h, None)
    whole, _ = score_horizon(model, data.windows, HORIZON, dataset=data,
                             options=EvalOptions(progress=False, batch_size=1))
    part, _ = score_horizon(model, data.windows, HORIZON, dataset=data,
                            options=EvalOptions(progress=False, batch_size=1, limit=1))
    first, _ = score_horizon(model, data.windows, HORIZON, dataset=data,
                             options=EvalOptions(progress=False, batch_size=6))
    assert part["swap"]["windows"] == 1
    assert whole["swap"]["psnr_mean"] == pytest.approx(first["swap"]["psnr_mean"])
    n = len(data.windows)
    truths = data.motion.swap_truths(partners(n)[:1], np.arange(1))
    own = torch.from_numpy(data.windows.take(np.arange(1))[:, COND:])
    best = max(metrics.psnr(own, torch.from_numpy(frames_to_float(t)[:, COND:])).mean().item()
               for t in truths)
    assert part["swap"]["psnr_mean"] == pytest.approx(best)

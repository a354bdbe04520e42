"""Metrics: values on hand-made frames, SSIM against scikit-image's reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from varsep.eval import metrics


def test_identical_frames():
    x = torch.rand(3, 2, 1, 32, 32)
    assert metrics.mse(x, x).abs().max() == 0
    assert torch.all(metrics.psnr(x, x) == metrics.PSNR_CAP)
    torch.testing.assert_close(metrics.ssim(x, x), torch.ones(3, 2, dtype=torch.float64))


def test_mse_and_psnr_by_hand():
    a = torch.zeros(1, 1, 4, 4)
    b = torch.full((1, 1, 4, 4), 0.1)
    assert metrics.mse(a, b).item() == pytest.approx(0.01)
    assert metrics.psnr(a, b).item() == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    v = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    assert metrics.mse(v, torch.zeros(2, 2), frame_dims=1).tolist() == pytest.approx([0.5, 0.25])
    assert metrics.psnr_from_mse(0.001) == pytest.approx(30.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(channels):
    rng = np.random.default_rng(0)
    base = rng.random((channels, 64, 64))
    smooth = torch.nn.functional.avg_pool2d(torch.tensor(base)[None], 5, 1, 2)[0].numpy()
    noisy = np.clip(smooth + 0.1 * rng.standard_normal(smooth.shape), 0, 1)
    ours = metrics.ssim(torch.tensor(noisy)[None], torch.tensor(smooth)[None]).item()
    ref = structural_similarity(noisy, smooth, channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, win_size=11)
    assert abs(ours - ref) < 1e-6  # float32 maps on centred frames: ~1e-8 from the float64 reference
    assert ours < 0.99


def test_ssim_of_many_frames_across_chunks_matches_scikit_image_frame_by_frame():
    # 3 × 30 frames: more than one chunk (SSIMTarget.CHUNK), the same prediction and target in every layout.
    rng = np.random.default_rng(1)
    target = rng.random((3, 30, 1, 24, 24))
    pred = np.clip(target + 0.2 * rng.standard_normal(target.shape), 0, 1)
    ours = metrics.ssim(torch.tensor(pred, dtype=torch.float32), torch.tensor(target, dtype=torch.float32))
    ref = np.array([[structural_similarity(pred[i, j, 0].astype(np.float32).astype(np.float64),
                                           target[i, j, 0].astype(np.float32).astype(np.float64), data_range=1.0,
                                           gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           win_size=11) for j in range(30)] for i in range(3)])
    assert ours.shape == (3, 30)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-6)


def test_mse_of_an_expanded_frame_equals_that_of_the_repeated_frame():
    torch.manual_seed(0)
    target = torch.rand(4, 40, 2, 8, 8)
    last = torch.rand(4, 1, 2, 8, 8)
    expected = (last.double() - target.double()).square().mean((-1, -2, -3))
    torch.testing.assert_close(metrics.mse(last.expand_as(target), target), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(metrics.mse(last.expand_as(target).contiguous(), target), expected, rtol=0,
                               atol=1e-15)
    assert metrics.mse(last[0, 0], target[0, 0]).shape == ()


def test_ssim_of_a_shifted_frame_drops():
    x = torch.zeros(1, 1, 32, 32)
    x[..., 8:24, 8:24] = 1.0
    shifted = torch.roll(x, 2, dims=-1)
    s = metrics.ssim(shifted, x).item()
    assert 0 < s < 0.9
    assert metrics.mse(shifted, x).item() == pytest.approx(2 * 2 * 16 / 1024)


def test_shape_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.mse(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="smaller than"):
        metrics.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_gaussian_window():
    g = metrics.gaussian_window(11, 1.5)
    assert g.sum().item() == pytest.approx(1.0)
    assert g[5].item() / g[4].item() == pytest.approx(math.exp(1 / (2 * 1.5**2)))


def test_ssim_of_one_frame_broadcast_over_a_horizon_equals_the_repeated_frame():
    torch.manual_seed(0)
    target = torch.rand(3, 5, 2, 16, 16)
    last = torch.rand(3, 1, 2, 16, 16)
    expanded = metrics.ssim(last.expand_as(target).contiguous(), target)
    torch.testing.assert_close(metrics.ssim(last, target), expanded, rtol=0, atol=1e-7)
    shared = metrics.SSIMTarget(target)  # one target, several predictions
    pred = target + 0.05 * torch.randn_like(target)
    torch.testing.assert_close(shared(pred), metrics.ssim(pred, target), rtol=0, atol=0)
    torch.testing.assert_close(shared(last), expanded, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="shapes differ"):
        shared(torch.rand(2, 1, 2, 16, 16))


# ------------------------------------------------------------------------------- PSNR of several channels
def _two_channel_error() -> tuple[torch.Tensor, torch.Tensor]:
    """Channel 0 off by 0.1 everywhere (MSE 1e-2, 20 dB), channel 1 by 0.01 (MSE 1e-4, 40 dB)."""
    target = torch.full((1, 2, 2, 4, 4), 0.5, dtype=torch.float64)
    pred = target.clone()
    pred[:, :, 0] += 0.1
    pred[:, :, 1] += 0.01
    return pred, target


def test_psnr_of_several_channels_both_ways_by_hand():
    pred, target = _two_channel_error()
    # the authors': the mean of the per-channel PSNRs, (20 + 40) / 2
    torch.testing.assert_close(metrics.psnr(pred, target), torch.full((1, 2), 30.0, dtype=torch.float64))
    # pooled: the PSNR of the MSE over both channels, 10·log10(1 / ((1e-2 + 1e-4) / 2))
    pooled = metrics.psnr(pred, target, channels="pooled")
    torch.testing.assert_close(pooled, torch.full((1, 2), 10 * math.log10(2 / 0.0101), dtype=torch.float64))
    assert pooled[0, 0].item() == pytest.approx(22.967, abs=1e-3)  # ≤ the per-channel mean (Jensen)
    one = (pred[:, :, :1], target[:, :, :1])  # one channel, and vectors: the two are the same
    torch.testing.assert_close(metrics.psnr(*one), metrics.psnr(*one, channels="pooled"))
    v = torch.tensor([[0.0, 0.1]]), torch.zeros(1, 2)
    torch.testing.assert_close(metrics.psnr(*v, frame_dims=1), metrics.psnr(*v, frame_dims=1, channels="pooled"))
    with pytest.raises(ValueError, match="channels"):
        metrics.psnr(pred, target, channels="max")


def test_the_scorer_averages_per_channel_psnr_unless_pooled():
    from dataclasses import replace

    from varsep.data.windows import ArrayWindows
    from varsep.eval.scoring import FrameScorer
    from varsep.spec import DataSpec

    pred, target = _two_channel_error()
    frames = torch.cat([target, target], dim=1)  # 2 conditioning frames, then the 2 targets
    windows = ArrayWindows(frames.float().numpy(), 4)
    scorer = FrameScorer.build(None, windows, DataSpec((2, 4, 4), 2, 2), ssim=False)
    idx = np.array([0])
    out = scorer.compare(idx, frames, pred, target)
    torch.testing.assert_close(out["psnr"], torch.full((1, 2), 30.0, dtype=torch.float64))
    torch.testing.assert_close(out["mse"], torch.full((1, 2), 0.0101 / 2, dtype=torch.float64))
    assert "averaged over channels" in scorer.definitions["psnr"]
    pooled = replace(scorer, psnr_channels="pooled")
    torch.testing.assert_close(pooled.compare(idx, frames, pred, target)["psnr"],
                               torch.full((1, 2), 10 * math.log10(2 / 0.0101), dtype=torch.float64))


# ------------------------------------------------------------------------- target frames shared by windows
def _overlapping_windows(channels: int = 1):
    """Windows at stride 1 over two sequences: most target frames appear in several windows."""
    from varsep.data.windows import ArrayWindows

    rng = np.random.default_rng(2)
    array = rng.random((2, 30, channels, 16, 16), dtype=np.float32)
    windows = ArrayWindows(array, 12)
    idx = np.arange(len(windows))  # 19 windows of each sequence
    frames = torch.from_numpy(windows.take(idx))
    return windows, idx, frames


@pytest.mark.parametrize("channels", [1, 2])
def test_ssim_target_shares_the_moments_of_equal_frames_and_scores_exactly_as_without(channels):
    windows, idx, frames = _overlapping_windows(channels)
    target, last = frames[:, 4:], frames[:, 3:4]
    ids = torch.as_tensor(windows.frame_ids(idx, 4 + np.arange(8)))
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    weight = torch.ones(channels, 16, 16)
    weight[:, :4] = 0  # a masked band: per-channel weights of the window positions
    for w in (None, weight):
        plain, shared = metrics.SSIMTarget(target, weight=w), metrics.SSIMTarget(target, weight=w, frame_ids=ids)
        assert len(shared.centred) == 2 * (30 - 4) * channels  # distinct frames (frames 4–29 of 2 sequences)
        assert shared.slots == len(plain.centred) == len(idx) * 8 * channels
        torch.testing.assert_close(shared(pred), plain(pred), rtol=0, atol=0)
        torch.testing.assert_close(shared(last), plain(last), rtol=0, atol=0)
    with pytest.raises(ValueError, match="frame_ids"):
        metrics.SSIMTarget(target, frame_ids=ids[:, :3])


def test_the_scorer_gives_the_same_scores_with_and_without_shared_target_frames():
    from varsep.data.base import WindowSet
    from varsep.eval.scoring import FrameScorer
    from varsep.spec import DataSpec

    windows, idx, frames = _overlapping_windows()

    class Opaque(WindowSet):  # the same windows, from a set that cannot tell which frames are equal
        length = windows.length

        def __len__(self) -> int:
            return len(windows)

        def take(self, indices):
            return windows.take(indices)

    spec = DataSpec((1, 16, 16), 4, 8)
    pred = (frames[:, 4:] + 0.1 * torch.randn_like(frames[:, 4:])).clamp(0, 1)
    shared = FrameScorer.build(None, windows, spec).score(idx, frames, pred)
    plain = FrameScorer.build(None, Opaque(), spec).score(idx, frames, pred)
    assert set(shared) == set(plain) >= {"ssim", "baseline_ssim"}
    for name in plain:
        torch.testing.assert_close(shared[name], plain[name], rtol=0, atol=0)

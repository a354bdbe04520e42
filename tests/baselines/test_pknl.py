"""Tests of baselines.pknl: the official estimator's size, warping by hand, the regularisers by hand, the loss,
any-horizon roll-out, a motion it must learn, and the preset's optimiser (weight decay) through the CLI.

Reference count: 22,197,736 parameters for 4 input frames, summed from the layer list of the official
``ConvDeconvEstimator`` (github.com/emited/flow, ``flow/modules/estimators.py``): eight 3×3 encoder convs
without bias, each with a BatchNorm (2·C parameters), five 3×3 decoder convs and the flow conv, no biases.
"""

from __future__ import annotations

import json

import pytest
import torch

from varsep.baselines.base import count_parameters
from varsep.baselines.pknl import PKnl, divergence, smoothness, warp

ENCODER = [(4, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 1024), (1024, 1024)]
DECODER = [(1024, 256), (768, 128), (384, 64), (192, 32), (96, 16), (20, 2)]
SMALL = {"widths": (4, 8, 8, 8, 8), "up_widths": (8, 8, 8, 4, 4)}

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_reference_estimator_has_the_official_parameter_count():
    by_hand = sum(9 * a * b + 2 * b for a, b in ENCODER) + sum(9 * a * b for a, b in DECODER)
    assert by_hand == 22_197_736
    with torch.device("meta"):
        assert count_parameters(PKnl((1, 64, 64), 4, 6)) == by_hand
        # one more input frame: one more input channel in the first conv and in the flow conv (skip from the input)
        assert count_parameters(PKnl((1, 64, 64), 5, 10)) == by_hand + 9 * 64 + 9 * 2


def test_the_initial_flow_is_a_fraction_of_a_pixel_so_training_starts_near_the_last_frame():
    torch.manual_seed(0)
    model = PKnl((1, 64, 64), 4, 6)
    cond = torch.nn.functional.avg_pool2d(torch.rand(2, 4, 64, 64), 9, 1, 4)[:, :, None]  # smooth frames
    with torch.no_grad():
        frame, flow = model.step(cond)
    assert flow.abs().max() * (64 - 1) / 2 < 0.5  # in pixels
    last = cond[:, -1]
    assert ((frame - last) ** 2)[..., 2:-2, 2:-2].mean() < 0.01 * last.var()


def test_warping_by_a_zero_a_whole_pixel_and_a_half_pixel_flow():
    torch.manual_seed(0)
    frame = torch.rand(2, 3, 8, 10)
    zero = torch.zeros(2, 2, 8, 10)
    torch.testing.assert_close(warp(frame, zero), frame, rtol=0, atol=1e-6)
    # +2 pixels along the width (channel 0, 2/(W−1) grid units per pixel): the content moves 2 columns right.
    flow = zero.clone()
    flow[:, 0] = 2 * 2 / (10 - 1)
    moved = warp(frame, flow)
    torch.testing.assert_close(moved[..., 2:], frame[..., :-2], rtol=0, atol=1e-5)
    assert moved[..., :2].abs().max() < 1e-6  # zeros come in from outside the frame
    # −1 pixel along the height (channel 1): the content moves one row up.
    flow = zero.clone()
    flow[:, 1] = -1 * 2 / (8 - 1)
    torch.testing.assert_close(warp(frame, flow)[..., :-1, :], frame[..., 1:, :], rtol=0, atol=1e-5)
    # half a pixel: bilinear, the mean of the two neighbours.
    flow = zero.clone()
    flow[:, 0] = 0.5 * 2 / (10 - 1)
    torch.testing.assert_close(warp(frame, flow)[..., 1:], (frame[..., 1:] + frame[..., :-1]) / 2, rtol=0,
                               atol=1e-5)


def test_warping_under_bf16_autocast_keeps_a_float32_grid():
    torch.manual_seed(0)
    frame = torch.rand(2, 1, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = warp(frame, torch.zeros(2, 2, 32, 32, dtype=torch.bfloat16))
    torch.testing.assert_close(out, frame, rtol=0, atol=1e-5)


def test_the_regularisers_of_a_linear_flow_by_hand():
    # u = a·column + c·row, v = d·column + b·row: each flow channel changes by a constant along each axis.
    a, b, c, d = 0.3, -0.2, 0.7, 0.1
    rows, cols = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
    flow = torch.stack([a * cols + c * rows, d * cols + b * rows])[None].repeat(2, 1, 1, 1)
    # ∂u/∂x = a, ∂u/∂y = c, ∂v/∂x = d, ∂v/∂y = b
    assert smoothness(flow).item() == pytest.approx(a**2 + b**2 + c**2 + d**2)
    assert divergence(flow, "true").item() == pytest.approx((a + b) ** 2)
    # the official code differences both channels along the height: ∂u/∂y + ∂v/∂y = c + b
    assert divergence(flow, "official").item() == pytest.approx((c + b) ** 2)
    with pytest.raises(ValueError, match="divergence must be one of"):
        divergence(flow, "exact")


def _hand_step_loss(frame, target, flow):
    """One target step's official loss, written out: MSE + 0.4·Σ mean squared differences + 1·mean (∂u/∂y + ∂v/∂y)²
    − 0.003·mean w²."""
    du_dy, dv_dy = torch.diff(flow[:, 0], dim=1), torch.diff(flow[:, 1], dim=1)
    du_dx, dv_dx = torch.diff(flow[:, 0], dim=2), torch.diff(flow[:, 1], dim=2)
    smooth = sum((g**2).mean() for g in (du_dy, dv_dy, du_dx, dv_dx))
    return ((frame - target) ** 2).mean() + 0.4 * smooth + ((du_dy + dv_dy) ** 2).mean() - 0.003 * (flow**2).mean()


def test_the_loss_is_the_mean_over_target_steps_of_the_official_step_loss():
    torch.manual_seed(0)
    model = PKnl((1, 32, 32), 4, 3, **SMALL)
    with torch.no_grad():  # flows far from zero, so every term counts
        model.estimator.flow.weight.normal_(0, 0.05)
    cond, target = torch.rand(2, 4, 1, 32, 32), torch.rand(2, 3, 1, 32, 32)
    terms = model.training_terms(cond, target, step=0)
    assert terms["magnitude"] > 1e-4 and terms["smoothness"] > 0 and terms["divergence"] > 0
    # by hand: each step warps the last frame of a window that ends in the model's own previous output
    window, step_losses = cond, []
    for k in range(3):
        flow = model.estimator(window.flatten(1, 2))
        frame = warp(window[:, -1], flow)
        step_losses.append(_hand_step_loss(frame, target[:, k], flow))
        window = torch.cat([window[:, 1:], frame[:, None]], dim=1)
    torch.testing.assert_close(terms["loss"], torch.stack(step_losses).mean())
    expected = terms["mse"] + 0.4 * terms["smoothness"] + terms["divergence"] - 0.003 * terms["magnitude"]
    torch.testing.assert_close(terms["loss"], expected)
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_forecasts_of_any_horizon_extend_each_other():
    torch.manual_seed(0)
    model = PKnl((2, 32, 32), 4, 6, **SMALL).eval()  # two channels, warped by the same flow
    cond = torch.rand(3, 4, 2, 32, 32)
    with torch.no_grad():
        long, short = model.forecast(cond, 9), model.forecast(cond, 2)
    assert long.shape == (3, 9, 2, 32, 32)
    torch.testing.assert_close(long[:, :2], short, rtol=0, atol=0)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="multiples of 32"):
        PKnl((1, 48, 40), 4, 6)
    with pytest.raises(ValueError, match="divergence must be one of"):
        PKnl((1, 32, 32), 4, 6, divergence="div")
    with pytest.raises(ValueError, match="5 entries"):
        PKnl((1, 32, 32), 4, 6, widths=(4, 4))
    with pytest.raises(ValueError, match="expects conditioning frames"):
        PKnl((1, 32, 32), 4, 6, **SMALL).forecast(torch.rand(1, 3, 1, 32, 32), 2)


def test_it_learns_a_steady_translation():
    # A smooth field moving one pixel right per frame: warping can forecast it exactly but for the border.
    g = torch.Generator().manual_seed(0)
    fields = torch.nn.functional.avg_pool2d(torch.rand(64, 1, 32, 48, generator=g), 7, 1, 3)
    clips = torch.stack([fields[..., 8 - t:40 - t] for t in range(6)], dim=1)  # (64, 6, 1, 32, 32)
    torch.manual_seed(0)
    model = PKnl((1, 32, 32), 4, 2, **SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(120):
        batch = clips[(step * 8) % 64:(step * 8) % 64 + 8]
        loss = model.training_terms(batch[:, :4], batch[:, 4:], step=step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model.forecast(clips[:, :4], 2)
    inner = (slice(None), slice(None), slice(None), slice(4, -4), slice(4, -4))
    model_mse = ((pred - clips[:, 4:])[inner] ** 2).mean()
    last_mse = ((clips[:, 3:4] - clips[:, 4:])[inner] ** 2).mean()
    assert model_mse < 0.1 * last_mse, (model_mse.item(), last_mse.item())


def test_the_preset_trains_through_the_cli_with_its_weight_decay(tiny_waveeq, tmp_path, capsys):
    from varsep.cli import main

    run = tmp_path / "pknl"
    small = [f"--model.baseline.{k}={json.dumps(list(v))}" for k, v in SMALL.items()]
    code = main(["fit", "-c", "baselines/pknl", "--data.name", "waveeq", "--data.root", str(tiny_waveeq),
                 "--run-dir", str(run), "--quiet", *small, "--data.batch_size", "2", "--data.batches_per_epoch",
                 "2", "--data.val_sequences", "1", "--data.val_stride", "20", "--trainer.max_epochs", "1",
                 "--trainer.val_every_n_epochs", "100", "--trainer.precision", "32"])
    assert code == 0, capsys.readouterr().err
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    group = state["optimizer_states"][0]["param_groups"][0]
    assert (group["lr"], group["weight_decay"], tuple(group["betas"])) == (1e-4, 4e-4, (0.9, 0.999))


def test_the_preset_carries_the_official_budget_and_batch():
    from varsep.config import load_config

    config = load_config("baselines/pknl")
    assert (config.trainer.max_epochs, config.data.batch_size) == (PKnl.DEFAULTS["epochs"], 64) == (500, 64)


def test_on_sst_zone_files_it_trains_and_is_scored_at_t6_and_t10_in_celsius(tmp_path, capsys):
    # Three zones of 80 days in the real file format (thetao in °C and the daily climatology; tests/data/test_sst.py
    # checks the loader itself), the SST protocol of PKnl and of the paper: 4 days in, 6 days of targets.
    import numpy as np
    import xarray as xr

    from varsep.cli import main

    days = 80
    for zone in (1, 2, 3):
        rng = np.random.default_rng(zone)
        mean, std = 15 + zone + 0 * np.arange(days), 0.8 + 0 * np.arange(days)
        field = mean[:, None, None] + std[:, None, None] * rng.normal(0, 1, (days, 64, 64)).cumsum(0) * 0.1
        time = (np.datetime64("2010-01-01") + np.arange(days)).astype("datetime64[ns]")
        xr.Dataset({"thetao": (("time", "lat", "lon"), field), "daily_mean": (("time",), mean),
                    "daily_std": (("time",), std)}, coords={"time": time}).to_netcdf(tmp_path / f"data_{zone}.nc")
    run = tmp_path / "run"
    small = [f"--model.baseline.{k}={json.dumps(list(v))}" for k, v in SMALL.items()]
    code = main(["fit", "-c", "baselines/pknl", "--data.name", "sst", "--data.root", str(tmp_path), "--run-dir",
                 str(run), "--quiet", *small, "--data.test_zones", "[2, 3]", "--data.val_days", "20",
                 "--data.batch_size", "4", "--data.batches_per_epoch", "2", "--trainer.max_epochs", "1",
                 "--trainer.precision", "32"])
    assert code == 0, capsys.readouterr().err
    code = main(["evaluate", str(run), "--checkpoint", "last", "--no-figures", "--quiet", "--precision", "32"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert sorted(metrics["horizons"]) == ["10", "6"]
    for horizon in ("6", "10"):
        result = metrics["horizons"][horizon]
        assert np.isfinite(result["mse_mean"]) and np.isfinite(result["ssim_mean"])
        assert np.isfinite(result["mse_physical_mean"])  # °C²

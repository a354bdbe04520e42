"""Tests of baselines.ddpae: the official model's size, the spatial transformer's geometry by hand, the pose
constraint, the −ELBO against one written out with torch.distributions (and its Monte-Carlo KL against the
closed form), the noise order, any-horizon forecasts, the content swap, the official checkpoint folder through
``varsep import-weights``, and — where a file written by the official code is at hand — the official loss,
gradient and forecasts on the same weights.

Reference count: 706,364 trainable parameters for the Moving MNIST setting (64×64×1, 2 components), from
instantiating the official model (github.com/jthsieh/DDPAE-video-prediction at 219e683, on PyTorch 2.13 with
the patches it needs to run there): pose model 488,044 (frame encoder 305,504), content LSTM 66,304, object
encoder 76,000, object decoder 76,016.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from varsep.baselines.base import count_parameters
from varsep.baselines.ddpae import DDPAE, constrain, crop, place
from varsep.baselines.ddpae_official import _CELLS, _OFFICIAL_PREFIXES, OFFICIAL_NETS, from_official_state_dicts

SMALL = {"content_dim": 8, "image_dim": 16, "hidden": 8, "ngf": 4}

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_official_moving_mnist_model_has_706364_parameters():
    model = DDPAE((1, 64, 64), 10, 10)
    assert count_parameters(model) == 706_364
    pose = ["frame_encoder", "pose_encoder", "pose_predictor", "beta_mean", "beta_std", "initial_pose_rnn",
            "initial_pose_mean", "initial_pose_std"]
    assert sum(count_parameters(getattr(model, n)) for n in pose) == 488_044
    assert count_parameters(model.frame_encoder) == 305_504
    assert count_parameters(model.content_rnn) + count_parameters(model.content_head) == 66_304
    assert (count_parameters(model.object_encoder), count_parameters(model.object_decoder)) == (76_000, 76_016)


def test_placing_an_object_by_hand():
    # A one-pixel object at the centre of a 33×33 object image; frames of 65×65 so that pixel centres are exact.
    obj = torch.zeros(1, 1, 33, 33)
    obj[..., 16, 16] = 1.0
    # s = 1, no shift: the object spans the frame, its centre pixel lands on the frame's centre (32, 32)
    out = place(obj, torch.tensor([[1.0, 0.0, 0.0]]), (65, 65))
    assert out[0, 0].argmax().item() == 32 * 65 + 32
    # s = 2: the object spans half the frame; x = −0.5: the output pixel u samples the object at 2u − 0.5, so the
    # object's centre (0) is at u = 0.25, i.e. column 32 + 0.25·32 = 40, rows unchanged
    out = place(obj, torch.tensor([[2.0, -0.5, 0.0]]), (65, 65))
    assert out[0, 0].argmax().item() == 32 * 65 + 40
    ones = place(torch.ones(1, 1, 33, 33), torch.tensor([[2.0, 0.0, 0.0]]), (65, 65))[0, 0]
    assert ones[16:49, 16:49].min() == 1.0 and ones[:16].max() == 0 and ones[:, 49:].max() == 0


def test_cropping_inverts_placing():
    # a smooth object, so that resampling it twice (at another scale in between) loses almost nothing
    v, u = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    obj = torch.stack([0.5 + 0.3 * torch.sin(2 * u) * torch.cos(1.5 * v), 0.5 + 0.2 * torch.cos(u + v)])
    obj = obj[None].repeat(3, 1, 1, 1)
    pose = torch.tensor([[2.0, 0.3, -0.4], [1.5, 0.0, 0.2], [2.5, -0.6, 0.6]])
    back = crop(place(obj, pose, (64, 64)), pose, 32)
    torch.testing.assert_close(back[..., 1:-1, 1:-1], obj[..., 1:-1, 1:-1], rtol=0, atol=3e-3)


def test_the_transformer_keeps_float32_under_bf16_autocast():
    obj, pose = torch.rand(2, 1, 32, 32).bfloat16(), torch.tensor([[2.0, 0.1, -0.2], [1.3, 0.0, 0.5]]).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = place(obj, pose, (64, 64))
    assert out.dtype == torch.float32  # the grid and the sampling in float32, from the same (bf16) inputs
    torch.testing.assert_close(out, place(obj.float(), pose.float(), (64, 64)), rtol=0, atol=0)


def test_the_posterior_heads_run_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    model = DDPAE((1, 16, 16), 2, 1, **SMALL)
    features = torch.randn(3, SMALL["hidden"]).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        site = model._beta(features)
    assert site.mean.dtype == site.std.dtype == torch.float32
    torch.testing.assert_close(site.mean, model.beta_mean(features.float()), rtol=0, atol=0)


def test_a_training_step_and_a_forecast_under_bf16_autocast():
    torch.manual_seed(0)
    model = DDPAE((1, 32, 32), 3, 2, **SMALL)
    cond, target = torch.rand(2, 3, 1, 32, 32), torch.rand(2, 2, 1, 32, 32)
    torch.manual_seed(1)
    exact = model.training_terms(cond, target, step=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(1)
        terms = model.training_terms(cond, target, step=0)
        terms["loss"].backward()
        model.eval()
        forecast = model.forecast(cond, 4)
    assert terms["loss"].dtype == torch.float32 and forecast.dtype == torch.float32
    assert terms["loss"].item() == pytest.approx(exact["loss"].item(), rel=0.02)
    with torch.no_grad():
        torch.testing.assert_close(forecast, model.forecast(cond, 4), rtol=0, atol=0.05)


def test_the_pose_constraint_by_hand():
    raw = torch.tensor([[0.3, 0.0, 10.0], [2.5, 0.5, -0.5], [9.0, -10.0, 0.0]])
    pose = constrain(raw, 2.0)
    s = torch.tensor([1.0, 2.5, 3.0])  # clamped to [S − 1, S + 1] = [1, 3]
    torch.testing.assert_close(pose[:, 0], s)
    torch.testing.assert_close(pose[:, 1], torch.tanh(raw[:, 1]) * (s - 0.5))
    torch.testing.assert_close(pose[:, 2], torch.tanh(raw[:, 2]) * (s - 0.5))
    # poses are the running sums of the transitions after the initial pose, frame 1 included
    model = DDPAE((1, 16, 16), 2, 1, **SMALL)
    beta = torch.full((1, 2, 1, 3), 0.25)
    p0 = torch.tensor([[[1.5, 0.0, 0.0]]])
    out = model.poses(beta, torch.full((1, 1, 1, 3), 0.25), p0)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([1.75, 2.0, 2.25]))
    torch.testing.assert_close(out[0, :, 0, 1], torch.tanh(torch.tensor([0.25, 0.5, 0.75])) * (out[0, :, 0, 0] - 0.5))


def _sites_by_hand(model, cond, target):
    """The −ELBO of the sites ``model.infer`` drew, written out with torch.distributions."""
    torch.manual_seed(5)
    sites = model.infer(cond, target.shape[1], sample=True)
    frames = torch.cat([cond, target], dim=1)
    recon = model.render(sites["content"].value, sites["poses"])
    priors = {"beta_cond": Normal(0.0, 0.1), "beta_future": Normal(0.0, 0.1),
              "p0": Normal(torch.tensor([model.scale_prior, 0.0, 0.0]), torch.tensor([0.2, 1.0, 1.0])),
              "content": Normal(0.0, 1.0)}
    log_q = sum(Normal(sites[k].mean, sites[k].std).log_prob(sites[k].value).sum() for k in priors)
    log_p = sum(priors[k].log_prob(sites[k].value).sum() for k in priors)
    nll = -Normal(recon, 0.3).log_prob(frames).sum()
    analytic = sum(kl_divergence(Normal(sites[k].mean, sites[k].std), priors[k]).sum() for k in priors)
    return sites, nll, log_q - log_p, analytic


def test_the_loss_is_the_single_sample_elbo_written_out():
    torch.manual_seed(0)
    model = DDPAE((1, 32, 32), 3, 2, **SMALL)
    cond, target = torch.rand(2, 3, 1, 32, 32), torch.rand(2, 2, 1, 32, 32)
    sites, nll, kl, analytic = _sites_by_hand(model, cond, target)
    torch.manual_seed(5)
    terms = model.training_terms(cond, target, step=0)
    # the official sum over the batch and every element, per sequence (and per element, as the official log)
    torch.testing.assert_close(terms["nll"], nll / 2)
    torch.testing.assert_close(terms["kl"], kl / 2)
    torch.testing.assert_close(terms["loss"], (nll + kl) / 2)
    torch.testing.assert_close(terms["loss_per_element"], (nll + kl) / (2 * 5 * 32 * 32))
    recon = model.render(sites["content"].value, sites["poses"])
    torch.testing.assert_close(terms["mse"], ((recon[:, 3:] - target) ** 2).mean())
    terms["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # the closed form is what the Monte-Carlo KL estimates: their mean over many draws agrees
    model.kl = "analytic"
    torch.manual_seed(5)
    assert model.training_terms(cond, target, step=0)["kl"].item() == pytest.approx(analytic.item() / 2,
                                                                                    rel=1e-5)
    with torch.no_grad():
        draws = []
        for seed in range(200):
            torch.manual_seed(seed)
            s = model.infer(cond, 2, sample=True)
            draws.append(sum(s[k].log_prob(s[k].value) for k in ("beta_cond", "beta_future", "p0", "content")).item()
                         - _prior_log_prob(model, s))
    assert np.mean(draws) == pytest.approx(analytic.item(), rel=0.02)


def _prior_log_prob(model, sites):
    p = Normal(torch.tensor([model.scale_prior, 0.0, 0.0]), torch.tensor([0.2, 1.0, 1.0]))
    return (Normal(0.0, 0.1).log_prob(sites["beta_cond"].value).sum() + Normal(0.0, 0.1).log_prob(
        sites["beta_future"].value).sum() + p.log_prob(sites["p0"].value).sum()
        + Normal(0.0, 1.0).log_prob(sites["content"].value).sum()).item()


def test_the_noise_is_drawn_in_the_official_order():
    torch.manual_seed(0)
    model = DDPAE((1, 16, 16), 3, 2, **SMALL)
    cond = torch.rand(2, 3, 1, 16, 16)
    torch.manual_seed(9)
    sites = model.infer(cond, 2, sample=True)
    torch.manual_seed(9)
    for name in ("beta_cond", "beta_future", "p0", "content"):  # transitions in, out, initial poses, contents
        eps = torch.randn(sites[name].mean.shape)
        torch.testing.assert_close(sites[name].value, sites[name].mean + sites[name].std * eps)


def test_forecasts_of_any_horizon_extend_each_other_and_a_self_swap_is_the_forecast():
    torch.manual_seed(0)
    model = DDPAE((2, 32, 32), 4, 3, components=3, **SMALL).eval()
    with torch.no_grad():  # objects of half the frame's side with varied values, so that their sum does not saturate
        model.initial_pose_mean.bias.copy_(torch.tensor([2.0, 0.0, 0.0]))
        model.object_decoder.net[-2].weight.normal_(0, 0.5)
    cond, other = torch.rand(2, 4, 2, 32, 32), torch.rand(2, 4, 2, 32, 32)
    with torch.no_grad():
        long, short = model.forecast(cond, 9), model.forecast(cond, 2)
        assert long.shape == (2, 9, 2, 32, 32) and long.min() >= 0 and long.max() <= 1
        torch.testing.assert_close(long[:, :2], short, rtol=0, atol=0)
        torch.testing.assert_close(model.swap_forecast(cond, cond, 5), long[:, :5], rtol=0, atol=0)
        swapped = model.swap_forecast(cond, other, 5)
        assert model.encode_content(cond).shape == (2, 3, 8)
        assert (swapped - long[:, :5]).abs().max() > 0  # the content of the other sequence
        samples = model.forecast_samples(cond, 3, 4)
    assert samples.shape == (4, 2, 3, 2, 32, 32) and (samples[0] - samples[1]).abs().max() > 0


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="power of two"):
        DDPAE((1, 48, 48), 10, 10)
    with pytest.raises(ValueError, match="power of two"):
        DDPAE((1, 64, 32), 10, 10)
    with pytest.raises(ValueError, match="kl must be one of"):
        DDPAE((1, 64, 64), 10, 10, kl="exact")
    with pytest.raises(ValueError, match="expects conditioning frames"):
        DDPAE((1, 32, 32), 4, 6, **SMALL).forecast(torch.rand(1, 3, 1, 32, 32), 2)


def _official_state_dicts(model: DDPAE) -> dict[str, dict[str, torch.Tensor]]:
    """``model``'s weights in the official code's four state dicts (its module and parameter names)."""
    ours = model.state_dict()
    states: dict[str, dict[str, torch.Tensor]] = {net: {} for net in OFFICIAL_NETS}
    for (net, theirs), mine in _OFFICIAL_PREFIXES.items():
        for key, value in ours.items():
            if key.startswith(mine):
                rest = key[len(mine):]
                if mine in _CELLS:
                    rest += "_l0"
                states[net][theirs + rest] = value.clone()
    return states


def test_an_official_checkpoint_folder_becomes_a_run_that_evaluate_scores(tiny_waveeq, tmp_path, capsys):
    import json

    from varsep.cli import main
    from varsep.forecaster import load

    torch.manual_seed(3)
    source = DDPAE((1, 64, 64), 5, 20, **SMALL).eval()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    states = _official_state_dicts(source)
    for epoch in (20, 40):  # the official base_model.save, the legacy file format; the newest epoch is taken
        for net, state in states.items():
            # PyTorch 0.3/0.4.0 wrote no BatchNorm step counters (num_batches_tracked came with 0.4.1)
            scaled = {k: v * (0.5 if epoch == 20 else 1.0) for k, v in state.items()
                      if not k.endswith("num_batches_tracked")}
            torch.save(scaled, folder / f"net_{net}_{epoch}.pth", _use_new_zipfile_serialization=False)
    torch.save(states["pose_model"], folder / "net_pose_model_60.pth")  # an incomplete later epoch is skipped
    run = tmp_path / "imported"
    settings = [f"--model.baseline.{k}={json.dumps(v)}" for k, v in SMALL.items()]
    args = ["import-weights", "--model", "ddpae", "-c", "waveeq", "--data.root", str(tiny_waveeq),
            "--data.val_sequences", "1", *settings]
    assert main([*args, "--weights", str(folder), "--run-dir", str(run)]) == 0, capsys.readouterr().err
    imported = load(run, precision="32")
    cond = torch.from_numpy(np.load(tiny_waveeq / "frames.npy")[6:8, :5, None])
    with torch.no_grad():
        torch.testing.assert_close(imported.forecast(cond, horizon=6), source.forecast(cond, 6), rtol=0, atol=0)
    assert main(["evaluate", str(run), "--limit", "2", "--no-figures", "--quiet", "--no-ssim", "--precision",
                 "32"]) == 0
    # one file names its epoch; a folder without a complete epoch and a wrong file name are clear errors
    assert main([*args, "--weights", str(folder / "net_object_decoder_20.pth"), "--run-dir", str(tmp_path / "r20")]
                ) == 0
    older = load(tmp_path / "r20", precision="32").model.net
    torch.testing.assert_close(older.frame_encoder.net[0].weight, 0.5 * source.frame_encoder.net[0].weight)
    assert main([*args, "--weights", str(tmp_path), "--run-dir", str(tmp_path / "none")]) == 2
    assert "no complete official DDPAE checkpoint" in capsys.readouterr().err
    assert main([*args, "--weights", str(folder / "net_pose_model_60.pth"), "--run-dir", str(tmp_path / "r60")]) == 2
    assert "epoch 60" in (err := capsys.readouterr().err) and "net_object_decoder_60.pth" in err
    assert main([*args, "--weights", str(tmp_path / "ckpt-typo"), "--run-dir", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*args, "--weights", str(tiny_waveeq / "frames.npy"), "--run-dir", str(tmp_path / "bad")]) == 2
    assert "not an official DDPAE checkpoint file" in capsys.readouterr().err
    wrong = dict(states)
    wrong["content_lstm"] = {**states["content_lstm"], "extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="unexpected key content_lstm/extra.weight"):
        from_official_state_dicts(wrong, source)
    with pytest.raises(ValueError, match="missing: object_decoder"):
        from_official_state_dicts({k: v for k, v in states.items() if k != "object_decoder"}, source)


REFERENCE = os.environ.get("VARSEP_DDPAE_REFERENCE")


@pytest.mark.skipif(not REFERENCE or not Path(REFERENCE).is_file(),
                    reason="set VARSEP_DDPAE_REFERENCE to a file written by running the official code")
def test_the_official_loss_gradient_and_forecast_on_the_same_weights():
    # The file (torch.save of a dict) holds the official model's initial state dicts ("state_dict_init") and those
    # after its training-mode passes ("state_dict_before_eval"), a batch (x_in, x_out: (2, 10, 1, 64, 64)), the
    # −ELBO of one Trace_ELBO pass after torch.manual_seed(1) ("neg_elbo_sum"), its gradient norm ("grad_norm")
    # and the eval-mode test() output (test → eval → output: (2, 20, 1, 64, 64)).
    ref = torch.load(REFERENCE, weights_only=False)
    model = DDPAE((1, 64, 64), 10, 10)
    model.load_state_dict(from_official_state_dicts(ref["state_dict_init"], model))
    frames = torch.cat([ref["x_in"], ref["x_out"]], dim=1)
    torch.manual_seed(1)
    neg_elbo = model.negative_elbo(model.infer(ref["x_in"], 10, sample=True), frames)["neg_elbo"]
    assert neg_elbo.item() == pytest.approx(ref["neg_elbo_sum"], rel=1e-6)
    neg_elbo.backward()
    norm = math.sqrt(sum((p.grad.double() ** 2).sum().item() for p in model.parameters()))
    assert norm == pytest.approx(ref["grad_norm"], rel=1e-4)
    model.load_state_dict(from_official_state_dicts(ref["state_dict_before_eval"], model))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forecast(ref["x_in"], 10), ref["test"]["eval"]["output"][:, 10:],
                                   rtol=0, atol=1e-5)


def test_it_learns_a_moving_square():
    # One 8×8 square moving at a constant velocity: DDPAE's own setting (an object, a pose that moves).
    g = torch.Generator().manual_seed(0)

    def clips(n):
        start, velocity = torch.randint(2, 14, (n, 2), generator=g), torch.randint(-2, 3, (n, 2), generator=g)
        out = torch.zeros(n, 6, 1, 32, 32)
        for i in range(n):
            for t in range(6):
                x, y = (start[i] + velocity[i] * t).clamp(0, 24).tolist()
                out[i, t, 0, y:y + 8, x:x + 8] = 1.0
        return out

    data, test = clips(512), clips(128)
    torch.manual_seed(0)
    model = DDPAE((1, 32, 32), 4, 2, components=1, content_dim=16, image_dim=32, hidden=32, ngf=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))  # the official optimiser
    first = None
    for step in range(500):  # the forecast MSE is 0.83× the last frame's by then (0.87× at 400 steps)
        batch = data[(step * 32) % 512:(step * 32) % 512 + 32]
        terms = model.training_terms(batch[:, :4], batch[:, 4:], step=step)
        first = terms["loss_per_element"].item() if first is None else first
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    assert terms["loss_per_element"].item() < first - 0.5  # 0.67 at the start
    model.eval()
    with torch.no_grad():
        pred = model.forecast(test[:, :4], 2)
    model_mse, last_mse = ((pred - test[:, 4:]) ** 2).mean(), ((test[:, 3:4] - test[:, 4:]) ** 2).mean()
    assert model_mse < 0.9 * last_mse, (model_mse.item(), last_mse.item())


def test_the_preset_carries_the_official_optimiser_schedule_and_budget():
    from varsep.config import load_config

    config = load_config("baselines/ddpae")
    assert (config.optim.lr, tuple(config.optim.betas), config.optim.milestones, config.optim.gamma) == (
        1e-3, (0.5, 0.999), [636], 0.1)
    assert (config.data.batch_size, config.data.batches_per_epoch, config.trainer.max_epochs) == (64, 157, 1273)
    assert config.model.baseline == {"components": 2, "content_dim": 128, "image_dim": 256, "hidden": 64, "ngf": 8,
                                     "scale_prior": 2.0, "kl": "sample"}
    assert DDPAE.DEFAULTS["epochs"] * DDPAE.DEFAULTS["batches_per_epoch"] == 199_861  # the official ≈ 200 k


def test_the_run_log_names_its_largest_networks():
    from varsep.baselines import build_baseline
    from varsep.spec import DataSpec
    from varsep.train.rundir import model_summary

    line = model_summary(build_baseline("ddpae", DataSpec((1, 64, 64), 10, 10)))
    assert line.startswith("model: ddpae, 0.71 M parameters (frame_encoder 0.31 M, pose_encoder 0.10 M, ")
    assert "beta_mean" not in line  # 195 parameters: not worth a place in the line

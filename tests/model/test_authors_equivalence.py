"""One training step of varsep against the authors' code on identical weights (float64, training mode).

The authors' networks are built with their own factory (JeremDona/spatiotemporal_variable_separation at
3f5e041, read from ``VARSEP_AUTHORS`` or /work/authors/svs; the tests are skipped without it), their
weights copied into ours layer by layer, and one batch goes through their training step (their ``ae_loss``,
``zero_order_loss``, ``get_forecast`` and L_reg^T, as their ``train`` calls them) and through
``loss_terms``. Compared: the four loss terms, every gradient, and every BatchNorm's running statistics
after the step — the last two are where per-frame BatchNorm matters. Their convolutions before BatchNorm
carry biases that ours drop; those biases are 0 at their initialisation, so the weights map exactly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from varsep.config import LossConfig, ModelConfig, load_config
from varsep.model import build_model
from varsep.model.losses import loss_terms
from varsep.spec import DataSpec

AUTHORS = Path(os.environ.get("VARSEP_AUTHORS", "/work/authors/svs"))
pytestmark = pytest.mark.skipif(not (AUTHORS / "var_sep" / "networks" / "factory.py").is_file(),
                                reason="the authors' code is not checked out (set VARSEP_AUTHORS)")
LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)


def authors():
    if str(AUTHORS) not in sys.path:
        sys.path.insert(0, str(AUTHORS))
    from var_sep import train
    from var_sep.networks import factory
    from var_sep.networks.model import SeparableNetwork

    return factory, train, SeparableNetwork


def copy_weights(theirs: nn.Module, ours: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """Copy their layers into ours, in registration order; the pairs of layers."""
    pairs = list(zip([m for m in theirs.modules() if isinstance(m, LAYERS)],
                     [m for m in ours.modules() if isinstance(m, LAYERS)], strict=True))
    with torch.no_grad():
        for a, b in pairs:
            w = a.weight
            if isinstance(a, nn.ConvTranspose2d) and type(b) is nn.Conv2d:  # a 3×3/1/1 transposed conv
                w = w.transpose(0, 1).flip(2, 3)
            assert w.numel() == b.weight.numel(), (a, b)
            b.weight.copy_(w.reshape(b.weight.shape))  # their Linear on flattened 512×4×4 = our 4×4 conv
            if b.bias is not None:
                b.bias.copy_(a.bias)
            elif a.bias is not None:  # a bias in front of BatchNorm: 0 at their initialisation
                assert not a.bias.any()
            if isinstance(a, nn.BatchNorm2d):
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    getattr(b, name).copy_(getattr(a, name))
    return pairs


def authors_step(train, net, frames: torch.Tensor, cond: int, offset: int, t_random: int, skipco: bool,
                 average_tloss: bool, lambdas: dict[str, float]) -> dict[str, torch.Tensor]:
    """The body of their ``train`` loop for one batch, their ``np.random.randint`` replaced by t_random."""
    target = frames[:, cond:]
    draw = np.random.randint
    np.random.randint = lambda *a, **k: t_random
    try:
        ae, s_recent, s_old = train.ae_loss(frames[:, :cond], target, net, cond, offset, skipco)
    finally:
        np.random.randint = draw
    reg_s = train.zero_order_loss(s_old, s_recent, skipco)
    n_pred = frames.shape[1] - cond
    forecasts, t_codes, _, _ = net.get_forecast(frames[:, :cond], n_pred + offset, init_s_code=s_old)
    pred = nn.functional.mse_loss(forecasts, frames[:, (cond if offset == 0 else 0):])
    t0 = t_codes[:, 0]
    reg_t = 0.5 * t0.pow(2).view(len(t0), -1).mean() if average_tloss else 0.5 * t0.pow(2).sum(1).mean()
    loss = (lambdas["ae"] * ae + lambdas["s"] * reg_s + lambdas["pred"] * pred + lambdas["t"] * reg_t)
    return {"ae": ae, "reg_s": reg_s, "pred": pred, "reg_t": reg_t, "loss": loss}


def compare(name: str, frame, cfg: ModelConfig, loss: LossConfig, build_theirs, *, offset: int, skipco: bool,
            average_tloss: bool, batch: int = 2, seed: int = 0) -> dict[str, float]:
    """The worst relative differences of one training step, ours against theirs (float64, training mode):
    loss terms, gradients (per layer, relative to the layer's largest gradient) and running statistics."""
    factory, train, separable = authors()
    torch.manual_seed(seed)
    es, et, dec, res = build_theirs(factory)
    spec = DataSpec(frame, COND[name], PRED[name])
    theirs = separable(es, et, res, dec, spec.cond_frames, skipco).double().train()
    ours = build_model(cfg, spec).double().train()
    pairs = []
    for a, b in ((theirs.Es, ours.content_encoder), (theirs.Et, ours.dynamic_encoder),
                 (theirs.decoder, ours.decoder), (theirs.t_resnet, ours.dynamics)):
        pairs += copy_weights(a, b)
    frames = torch.rand(batch, spec.train_length, *frame, dtype=torch.float64)
    i = 2  # the auto-encoding window; their t_random is its end
    mine = loss_terms(ours, frames, i, loss)
    ref = authors_step(train, theirs, frames, spec.cond_frames, offset, i + spec.cond_frames, skipco,
                       average_tloss, {"ae": loss.lambda_ae, "s": loss.lambda_s, "pred": loss.lambda_pred,
                                       "t": loss.lambda_t})
    worst = {"loss": max(_rel(mine[k], ref[k]) for k in ("ae", "reg_s", "pred", "reg_t", "loss"))}
    mine["loss"].backward()
    ref["loss"].backward()
    worst["grad"] = worst["stats"] = worst["updates"] = 0.0
    for a, b in pairs:
        if not b.weight.requires_grad:  # their bn_out (Chairs): never applied, no gradient
            continue
        worst["grad"] = max(worst["grad"], _rel(_as_theirs(a, b, b.weight.grad), a.weight.grad))
        if b.bias is not None:  # relative to the weight's scale (a bias before BatchNorm has ~0 gradient)
            worst["grad"] = max(worst["grad"], _rel(b.bias.grad, a.bias.grad, a.weight.grad.abs().max()))
        if isinstance(a, nn.BatchNorm2d):
            missed = abs(b.num_batches_tracked.item() - a.num_batches_tracked.item())
            worst["updates"] = max(worst["updates"], missed)
            for stat in ("running_mean", "running_var"):
                worst["stats"] = max(worst["stats"], _rel(getattr(b, stat), getattr(a, stat)))
    return worst


def _rel(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | None = None) -> float:
    x, y = x.detach(), y.detach()
    scale = y.abs().max() if scale is None else scale.detach()
    return float((x - y).abs().max() / scale.clamp_min(1e-30))


def _as_theirs(a: nn.Module, b: nn.Module, grad: torch.Tensor) -> torch.Tensor:
    if isinstance(a, nn.ConvTranspose2d) and type(b) is nn.Conv2d:
        return grad.flip(2, 3).transpose(0, 1)
    return grad.reshape(a.weight.shape)


COND = {"mmnist": 5, "chairs": 5, "taxibj": 4, "sst": 4}
PRED = {"mmnist": 10, "chairs": 10, "taxibj": 4, "sst": 6}


def preset(name: str, **over) -> tuple[ModelConfig, LossConfig]:
    config = load_config(name)
    model = config.model
    for key, value in over.items():
        setattr(model, key, value)
    return model, config.loss


@pytest.fixture(autouse=True)
def one_thread():
    """float64 convolutions on batches of 2 gain nothing from a second thread, and lose much on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_equal_to_the_authors(worst: dict[str, float]) -> None:
    """Losses are taken in float32 by varsep (~1e-7); gradients and running statistics in float64."""
    assert worst["updates"] == 0, worst  # the same number of running-statistics updates in every BatchNorm
    assert worst["loss"] < 1e-6 and worst["grad"] < 1e-5 and worst["stats"] < 1e-10, worst


# ------------------------------------------------------------------------------------------------ tests
def _mmnist(factory):
    shape = [1, 64, 64]
    return (factory.get_encoder("dcgan", shape, 128, 64, 3, 5, "normal", 0.02),
            factory.get_encoder("dcgan", shape, 20, 64, 3, 5, "normal", 0.02),
            factory.get_decoder("dcgan", shape, 20, 128, "sigmoid", 64, 3, "concat", False, "normal", 0.02),
            factory.get_resnet(20, 1, 512, "orthogonal", 1.41))


def test_moving_mnist_step_equals_the_authors():
    cfg, loss = preset("mmnist", encoder="dcgan", decoder="dcgan")
    assert_equal_to_the_authors(compare("mmnist", (1, 64, 64), cfg, loss, _mmnist, offset=5, skipco=False,
                                        average_tloss=False))


def test_pooled_statistics_differ_from_the_authors():
    """The control: ``model.batch_stats: pooled`` (one call's statistics for all forecast frames)."""
    cfg, loss = preset("mmnist", encoder="dcgan", decoder="dcgan", batch_stats="pooled")
    worst = compare("mmnist", (1, 64, 64), cfg, loss, _mmnist, offset=5, skipco=False, average_tloss=False)
    assert worst["updates"] == 16 - 2  # the authors' 1 + 15 decoder calls against 2
    assert worst["grad"] > 0.1 and worst["stats"] > 0.1, worst


def test_sst_step_equals_the_authors():
    """Their SST networks are fully convolutional: 16×16 frames keep this fast (codes at 4×4)."""
    cfg, loss = preset("sst")

    def theirs(factory):
        shape = [1, 16, 16]
        return (factory.get_encoder("encoderSST", shape, 196, 64, 3, 4, "normal", 0.02),
                factory.get_encoder("encoderSST", shape, 64, 64, 3, 4, "normal", 0.02),
                factory.get_decoder("decoderSST", shape, 64, 196, None, 64, 3, "concat", True, "normal", 0.02),
                factory.get_resnet(64, 2, 512, "orthogonal", 0.71, fully_conv=True))

    assert_equal_to_the_authors(compare("sst", (1, 16, 16), cfg, loss, theirs, offset=0, skipco=True,
                                        average_tloss=True))


def test_chairs_step_equals_the_authors():
    cfg, loss = preset("chairs")

    def theirs(factory):
        shape = [3, 64, 64]
        return (factory.get_encoder("resnet", shape, 128, 64, 3, 5, "normal", 0.02),
                factory.get_encoder("resnet", shape, 10, 64, 3, 5, "normal", 0.02),
                factory.get_decoder("dcgan", shape, 10, 128, "sigmoid", 64, 3, "concat", False, "normal", 0.02),
                factory.get_resnet(10, 1, 512, "orthogonal", 0.71))

    assert_equal_to_the_authors(compare("chairs", (3, 64, 64), cfg, loss, theirs, offset=5, skipco=False,
                                        average_tloss=False))


def test_taxibj_step_equals_the_authors():
    cfg, loss = preset("taxibj", final_activation="none")

    def theirs(factory):
        shape = [2, 32, 32]
        return (factory.get_encoder("vgg", shape, 128, 64, 3, 4, "normal", 0.02),
                factory.get_encoder("vgg", shape, 20, 64, 3, 4, "normal", 0.02),
                factory.get_decoder("vgg", shape, 20, 128, None, 64, 3, "concat", False, "normal", 0.02),
                factory.get_resnet(20, 1, 512, "orthogonal", 0.71))

    assert_equal_to_the_authors(compare("taxibj", (2, 32, 32), cfg, loss, theirs, offset=4, skipco=False,
                                        average_tloss=False))

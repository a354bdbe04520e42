"""Fast bf16 convolutions: same outputs as autocast, gradients of the same maths, plain outside autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from varsep.nets.conv import FastConv2d, FastConvTranspose2d, use_fast_bf16_convolutions


def pair(transposed: bool, bias: bool):
    torch.manual_seed(0)
    cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    plain = cls(6, 5, 4, stride=2, padding=1, bias=bias)
    fast = cls(6, 5, 4, stride=2, padding=1, bias=bias)
    fast.load_state_dict(plain.state_dict())
    use_fast_bf16_convolutions(fast)
    return plain, fast


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_bf16_autocast_outputs_match_and_gradients_agree(transposed, bias):
    plain, fast = pair(transposed, bias)
    assert isinstance(fast, FastConvTranspose2d if transposed else FastConv2d)
    x = torch.randn(3, 6, 8, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_plain, y_fast = plain(x), fast(x2)
    assert y_fast.dtype == torch.bfloat16
    torch.testing.assert_close(y_fast, y_plain)  # the forward is the autocast forward
    g = torch.randn_like(y_plain, dtype=torch.float32)
    (y_plain.float() * g).sum().backward()
    (y_fast.float() * g).sum().backward()
    # Weight gradients are computed in fp32 from the bf16 activations: compare with an fp32 reference on
    # the same bf16-rounded inputs.
    ref_w = plain.weight.detach().bfloat16().float().requires_grad_()
    xb = x.detach().bfloat16().float()
    conv = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
    ref = conv(xb, ref_w, None, stride=2, padding=1)
    (ref * g.bfloat16().float()).sum().backward()
    torch.testing.assert_close(fast.weight.grad, ref_w.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x2.grad, x.grad, rtol=2e-2, atol=2e-2)  # both bf16
    if bias:
        torch.testing.assert_close(fast.bias.grad, g.bfloat16().float().sum((0, 2, 3)), rtol=1e-4, atol=1e-4)


def test_outside_autocast_the_layer_is_plain():
    plain, fast = pair(False, True)
    x = torch.randn(2, 6, 8, 8)
    assert torch.equal(plain(x), fast(x))
    assert set(fast.state_dict()) == set(plain.state_dict())


def test_models_built_by_varsep_use_them():
    from varsep.config import load_config
    from varsep.data.base import DataSpec
    from varsep.model import build_model

    cfg = load_config("mmnist")
    model = build_model(cfg.model, DataSpec((1, 64, 64), 5, 10), default_encoder="dcgan", default_decoder="dcgan")
    kinds = {type(m) for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)}
    assert kinds == {FastConv2d, FastConvTranspose2d}

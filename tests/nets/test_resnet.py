"""The resnet18 encoder families: shapes, resolution schedules, gradients, sizes, errors.

``resnet18`` is the authors' network (the Chairs default); ``resnet18_linear`` the earlier variant (stem
padding 2, no max-pool, linear head), whose tests are the ones this file held before the change of default.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from varsep.config import ModelConfig
from varsep.errors import ConfigError
from varsep.model.families import ENCODERS
from varsep.nets.init import init_encoder_decoder
from varsep.nets.resnet import BasicBlock, ResNet18Encoder
from varsep.spec import DataSpec

CHAIRS = DataSpec(frame_shape=(3, 64, 64), cond_frames=5, pred_frames=10)


def build(spec: DataSpec = CHAIRS, code_dim: int = 128, family: str = "resnet18_linear") -> nn.Module:
    torch.manual_seed(0)
    net = ENCODERS.get(family)(spec, code_dim, ModelConfig())
    init_encoder_decoder(net)
    return net


@pytest.mark.parametrize("family", ["resnet18", "resnet18_linear"])
def test_output_shape_and_input_channels(family: str) -> None:
    net = build(code_dim=10, family=family)
    assert net.stem[0].in_channels == 15  # (τ+1)·C frames stacked on channels
    assert net(torch.rand(3, 5, 3, 64, 64)).shape == (3, 10)


# ------------------------------------------------------------------------------------- the authors' variant
def test_authors_resolution_schedule_and_head() -> None:
    """Stem 5×5 stride 2 padded by 3, max-pool 3/2/1: 64 → 33 → 17 → 17 → 9 → 5 → 3, then a 3×3 conv."""
    net = build(family="resnet18")
    assert net.resolutions == [(17, 17), (17, 17), (9, 9), (5, 5), (3, 3)]
    stem, pool = net.stem[0], net.stem[3]
    assert (stem.kernel_size, stem.stride, stem.padding) == ((5, 5), (2, 2), (3, 3))
    assert isinstance(pool, nn.MaxPool2d) and (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)
    seen: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
             for m in [net.stem[0], net.stem, *net.stages]]
    net(torch.rand(2, 5, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert seen == [(64, 33, 33), (64, 17, 17), (64, 17, 17), (128, 9, 9), (256, 5, 5), (512, 3, 3)]
    assert isinstance(net.head, nn.Conv2d) and net.head.kernel_size == (3, 3) and net.head.padding == (0, 0)
    assert net.head.bias is not None
    assert ResNet18Encoder.feature_sizes((32, 48)) == [(9, 13), (9, 13), (5, 7), (3, 4), (2, 2)]


def test_authors_unused_code_batchnorm_is_created_frozen_and_never_applied() -> None:
    net = build(code_dim=10, family="resnet18")
    assert isinstance(net.bn_out, nn.BatchNorm2d) and net.bn_out.num_features == 10
    assert not any(p.requires_grad for p in net.bn_out.parameters())
    assert "bn_out.weight" in net.state_dict() and "bn_out.running_mean" in net.state_dict()
    calls = []
    net.bn_out.register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(2, 5, 3, 64, 64)
    code = net(x)
    assert calls == []  # the head's conv output is the code: no normalisation, no activation
    torch.testing.assert_close(code, net.head(net.stages(net.stem(x.flatten(1, 2)))).flatten(1))


def test_authors_parameter_count() -> None:
    """The authors' E_S / E_T have 11,786,112 / 11,242,014 parameters (their unused bn_out included). Ours
    lack exactly the biases of the 20 convolutions in front of a BatchNorm: the stem's 64, 2·(64+64) in stage
    1, 2·(128+128)+128 in stage 2 (the shortcut's conv), 2·(256+256)+256, 2·(512+512)+512: 4,800."""
    biases = 64 + 2 * 128 + (2 * 256 + 128) + (2 * 512 + 256) + (2 * 1024 + 512)
    assert biases == 4_800
    assert sum(p.numel() for p in build(code_dim=128, family="resnet18").parameters()) == 11_786_112 - biases
    assert sum(p.numel() for p in build(code_dim=10, family="resnet18").parameters()) == 11_242_014 - biases


def test_authors_gradients_reach_every_trained_parameter() -> None:
    net = build(code_dim=16, family="resnet18")
    net(torch.rand(2, 5, 3, 64, 64)).pow(2).sum().backward()
    missing = [n for n, p in net.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing
    assert [n for n, p in net.named_parameters() if not p.requires_grad] == ["bn_out.weight", "bn_out.bias"]


# --------------------------------------------------------------------------- resnet18_linear (stem pad 2)
def test_resolution_schedule_reaches_4x4() -> None:
    net = build()
    assert net.resolutions == [(32, 32), (32, 32), (16, 16), (8, 8), (4, 4)]
    seen: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
             for m in [net.stem, *net.stages]]
    net(torch.rand(2, 5, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert seen == [(64, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert net.head.in_features == 512 * 4 * 4
    # BasicBlocks [2, 2, 2, 2]; a stride-2 shortcut only where the shape changes.
    assert [len(stage) for stage in net.stages] == [2, 2, 2, 2]
    assert isinstance(net.stages[0][0].shortcut, nn.Identity)
    assert all(net.stages[i][0].shortcut[0].stride == (2, 2) for i in (1, 2, 3))
    assert net.stem[0].kernel_size == (5, 5) and net.stem[0].stride == (2, 2)


def test_other_frame_sizes_round_up() -> None:
    assert ResNet18Encoder.feature_sizes((32, 48), "linear") == [(16, 24), (16, 24), (8, 12), (4, 6), (2, 3)]
    net = build(DataSpec(frame_shape=(1, 30, 30), cond_frames=2, pred_frames=1), 7)
    assert net(torch.rand(2, 2, 1, 30, 30)).shape == (2, 7)


def test_gradients_reach_every_parameter() -> None:
    net = build(code_dim=16)
    net(torch.rand(2, 5, 3, 64, 64)).pow(2).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_basic_block_is_residual() -> None:
    block = BasicBlock(8, 8)
    for bn in (block.bn1, block.bn2):
        nn.init.zeros_(bn.weight)  # residual branch off: the block is ReLU(x)
    block.eval()
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_parameter_count() -> None:
    # torchvision's ResNet18 without its classifier has 11 176 512 parameters; ours swaps its 7×7 3-channel
    # stem (9 408) for a 5×5 15-channel one (24 000) and adds the linear head 512·4·4·d + d.
    body = sum(p.numel() for n, p in build().named_parameters() if not n.startswith("head"))
    assert body == 11_176_512 - 9_408 + 24_000
    assert sum(p.numel() for p in build(code_dim=128).parameters()) == body + 8192 * 128 + 128 == 12_239_808
    assert sum(p.numel() for p in build(code_dim=10).parameters()) == 11_273_034


@pytest.mark.parametrize("family", ["resnet18", "resnet18_linear"])
def test_errors(family: str) -> None:
    with pytest.raises(ConfigError, match="no skip connections"):
        ENCODERS.get(family)(CHAIRS, 8, ModelConfig(), skips=True)
    with pytest.raises(ConfigError, match=r"needs frames \(C, H, W\)"):
        ENCODERS.get(family)(DataSpec(frame_shape=(100,), cond_frames=5, pred_frames=1), 8, ModelConfig())
    with pytest.raises(ValueError, match="variant"):
        ResNet18Encoder(15, (64, 64), 8, variant="nope")

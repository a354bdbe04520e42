"""The resnet18 encoder family: shapes, resolution schedule, gradients, size, errors."""

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


def build(spec: DataSpec = CHAIRS, code_dim: int = 128) -> nn.Module:
    torch.manual_seed(0)
    net = ENCODERS.get("resnet18")(spec, code_dim, ModelConfig())
    init_encoder_decoder(net)
    return net


def test_output_shape_and_input_channels() -> None:
    net = build(code_dim=10)
    assert net.stem[0].in_channels == 15  # (τ+1)·C frames stacked on channels
    assert net(torch.rand(3, 5, 3, 64, 64)).shape == (3, 10)


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
    assert ResNet18Encoder.feature_sizes((32, 48)) == [(16, 24), (16, 24), (8, 12), (4, 6), (2, 3)]
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


def test_errors() -> None:
    with pytest.raises(ConfigError, match="no skip connections"):
        ENCODERS.get("resnet18")(CHAIRS, 8, ModelConfig(), skips=True)
    with pytest.raises(ConfigError, match=r"needs frames \(C, H, W\)"):
        ENCODERS.get("resnet18")(DataSpec(frame_shape=(100,), cond_frames=5, pred_frames=1), 8, ModelConfig())

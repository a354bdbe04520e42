"""Per-frame BatchNorm (varsep.nets.norm): one call on stacked frames, each frame's own statistics."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from varsep.nets.norm import FrameBatchNorm2d, frame_groups, per_frame_norm, uses_frame_groups

EPS = 1e-5


def two_frames() -> torch.Tensor:
    """Frame-major: rows 0–1 are frame 0 (values 1 and 3), rows 2–3 frame 1 (values 0 and 4); 1×1×1 maps."""
    return torch.tensor([1.0, 3.0, 0.0, 4.0], dtype=torch.float64).view(4, 1, 1, 1)


def test_per_frame_statistics_and_running_updates_by_hand():
    bn = FrameBatchNorm2d(1, eps=EPS, momentum=0.1).double()
    with frame_groups(bn, 2):
        out = bn(two_frames())
    # frame 0: mean 2, biased variance 1 → (x − 2)/√(1 + ε); frame 1: mean 2, biased variance 4
    expected = torch.tensor([-1 / (1 + EPS) ** 0.5, 1 / (1 + EPS) ** 0.5, -2 / (4 + EPS) ** 0.5, 2 / (4 + EPS) ** 0.5],
                            dtype=torch.float64)
    torch.testing.assert_close(out.flatten(), expected)
    # running statistics, frame 0 then frame 1, unbiased variances 2 and 8:
    # mean 0 → 0.9·0 + 0.1·2 = 0.2 → 0.9·0.2 + 0.1·2 = 0.38; variance 1 → 0.9 + 0.2 = 1.1 → 0.99 + 0.8 = 1.79
    # (the closed form (1 − m)² r0 + m(1 − m) x0 + m x1: 0.81 + 0.18 + 0.8 = 1.79)
    torch.testing.assert_close(bn.running_mean, torch.tensor([0.38], dtype=torch.float64))
    torch.testing.assert_close(bn.running_var, torch.tensor([1.79], dtype=torch.float64))
    assert bn.num_batches_tracked.item() == 2
    assert bn.frames == 1  # the grouping holds for the call only


def test_one_group_is_plain_batchnorm_pooling_the_frames_by_hand():
    bn = FrameBatchNorm2d(1, eps=EPS, momentum=0.1).double()
    out = bn(two_frames())  # no frame_groups: the four values share their statistics (mean 2, variance 2.5)
    torch.testing.assert_close(out.flatten(), (two_frames().flatten() - 2) / (2.5 + EPS) ** 0.5)
    torch.testing.assert_close(bn.running_var, torch.tensor([0.9 + 0.1 * 10 / 3], dtype=torch.float64))
    assert bn.num_batches_tracked.item() == 1


@pytest.mark.parametrize("momentum", [0.1, None])
def test_one_call_equals_one_call_per_frame(momentum):
    """Outputs, gradients and running statistics of a call on n stacked frames equal n calls of a plain
    BatchNorm, frame after frame (momentum None: PyTorch's cumulative average, one count per frame)."""
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(3, momentum=momentum).double()
    nn.init.normal_(plain.weight, 1, 0.3)
    nn.init.normal_(plain.bias, 0, 0.3)
    frame = per_frame_norm(nn.Sequential(copy.deepcopy(plain)))[0]
    assert type(frame) is FrameBatchNorm2d
    x = torch.randn(5 * 4, 3, 2, 3, dtype=torch.float64, requires_grad=True)  # 5 frames of batch 4
    with frame_groups(frame, 5):
        ours = frame(x)
    theirs = torch.cat([plain(part) for part in x.split(4)])
    torch.testing.assert_close(ours, theirs)
    w = torch.randn_like(ours)
    g_ours = torch.autograd.grad((ours * w).sum(), [x, frame.weight, frame.bias])
    g_theirs = torch.autograd.grad((theirs * w).sum(), [x, plain.weight, plain.bias])
    for a, b in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(frame, name), getattr(plain, name), rtol=0, atol=0)


def test_evaluation_mode_uses_the_running_statistics_whatever_the_grouping():
    torch.manual_seed(0)
    bn = FrameBatchNorm2d(2)
    bn.running_mean.fill_(0.5)
    bn.running_var.fill_(4.0)
    bn.eval()
    x = torch.randn(6, 2, 3, 3)
    with frame_groups(bn, 3):
        assert not uses_frame_groups(bn)
        torch.testing.assert_close(bn(x), (x - 0.5) / (4 + bn.eps) ** 0.5)
    assert bn.num_batches_tracked.item() == 0


def test_conversion_keeps_parameters_buffers_and_keys():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4, momentum=0.3)))
    net[1].running_mean.normal_()
    before = copy.deepcopy(net.state_dict())
    per_frame_norm(net)
    assert [type(m) for m in net.modules() if isinstance(m, nn.BatchNorm2d)] == [FrameBatchNorm2d] * 2
    assert net[2][0].momentum == 0.3
    after = net.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
    assert uses_frame_groups(net)


def test_a_batch_that_does_not_split_is_refused():
    bn = FrameBatchNorm2d(1)
    with frame_groups(bn, 3), pytest.raises(ValueError, match="does not split into 3 frame groups"):
        bn(torch.randn(4, 1, 2, 2))

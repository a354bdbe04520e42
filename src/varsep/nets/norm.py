"""BatchNorm with per-frame statistics for decoders that decode several frames in one call.

The authors' training loop calls the decoder once per frame (the auto-encoded frame, then forecast frames
0 … n−1), so in training mode every BatchNorm normalises each frame with the statistics of that frame's
batch alone, and its running statistics get one update per frame, in that order. Decoding all frames in
one call instead pools the statistics over the frames and gives one update per call.

:class:`FrameBatchNorm2d` keeps the one call and the authors' statistics: given the n frames of a call
stacked frame-major along the batch axis — rows [g·B, (g+1)·B) hold frame g — and told n through
:func:`frame_groups`, it normalises each frame group with that group's own batch mean and biased variance
and updates the running statistics n times, group by group, with the group's mean and unbiased variance:
r ← (1 − m)·r + m·x_g. The n updates compose to r_n = (1 − m)^n·r_0 + Σ_g m·(1 − m)^(n−g)·x_g; they
are applied as n successive updates by PyTorch's own kernel, so the running statistics are bit for bit
those of n separate calls. Outside training mode (running statistics), and with one group, it is
``nn.BatchNorm2d``. It is a subclass with no state of its own: parameters, buffers and state-dict keys
are those of ``nn.BatchNorm2d``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class FrameBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose batch holds ``frames`` groups, each normalised with its own statistics."""

    frames: int = 1  # groups stacked along the batch axis (set for one call by :func:`frame_groups`)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.frames
        if n == 1 or not self.uses_batch_statistics:
            return super().forward(x)
        self._check_input_dim(x)
        if x.shape[0] % n:
            raise ValueError(f"a batch of {x.shape[0]} does not split into {n} frame groups")
        update = self.training and self.track_running_stats
        outs = []
        for group in x.split(x.shape[0] // n):  # in order: the running statistics see group 0 first
            factor = 0.0 if self.momentum is None else self.momentum
            if update:
                self.num_batches_tracked.add_(1)
                if self.momentum is None:  # cumulative moving average, as nn.BatchNorm2d
                    factor = 1.0 / float(self.num_batches_tracked)
            outs.append(F.batch_norm(group, self.running_mean if update else None,
                                     self.running_var if update else None, self.weight, self.bias, True,
                                     factor, self.eps))
        return torch.cat(outs)

    @property
    def uses_batch_statistics(self) -> bool:
        return self.training or self.running_mean is None


def per_frame_norm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` by a :class:`FrameBatchNorm2d` with the same
    settings, parameters and buffers (in place; returns ``module``)."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                like = next(iter([*child.parameters(), *child.buffers()]), None)
                kinds = {} if like is None else {"device": like.device, "dtype": like.dtype}
                frame = FrameBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                         child.track_running_stats, **kinds)
                frame.load_state_dict(child.state_dict())
                frame.train(child.training)
                setattr(parent, name, frame)
    return module


def frame_norms(module: nn.Module) -> list[FrameBatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, FrameBatchNorm2d)]


def has_frame_norm(module: nn.Module) -> bool:
    return any(isinstance(m, FrameBatchNorm2d) for m in module.modules())


def uses_frame_groups(module: nn.Module) -> bool:
    """Whether a call of ``module`` on stacked frames needs :func:`frame_groups` (a per-frame BatchNorm that
    normalises with batch statistics, i.e. in training mode)."""
    return any(m.uses_batch_statistics for m in frame_norms(module))


def uses_batch_statistics(module: nn.Module) -> bool:
    """Whether any BatchNorm inside ``module`` normalises with the statistics of its batch (training mode, or
    no running statistics), so that what shares a call changes the result."""
    return any(m.training or m.running_mean is None for m in module.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm))


@contextmanager
def frame_groups(module: nn.Module, frames: int) -> Iterator[None]:
    """Within the block, the per-frame BatchNorms of ``module`` see batches of ``frames`` frame-major groups."""
    norms = frame_norms(module)
    for m in norms:
        m.frames = frames
    try:
        yield
    finally:
        for m in norms:
            m.frames = 1

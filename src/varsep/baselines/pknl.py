"""PKnl: a motion field estimated by a conv–deconv network, the last frame warped along it.

Paper: Emmanuel de Bézenac, Arthur Pajot, Patrick Gallinari, "Deep Learning for Physical Processes:
Incorporating Prior Scientific Knowledge", ICLR 2018 — the SST baseline of the separable model's paper
(its Tables 1 and 6, "PKnl", retrained there with the official code and hyperparameters). Official code:
github.com/emited/flow (``flow/modules/estimators.py``, ``warps.py``, ``grids.py``, ``losses.py``,
``train.py``; read, not copied).

The physics it builds in is advection: the next frame is the last one transported along a velocity field
w, Î_{t+1}(x) = I_t(x − w(x)). The paper motivates a Gaussian kernel as the closed-form solution of
advection–diffusion; the official code warps by **bilinear** interpolation (its README: the Gaussian
scheme "will be integrated shortly"), and that is what produced the published numbers, so that is what is
here. One step:

- the estimator sees the last ``cond_frames`` frames stacked as channels (B, Tc·C, H, W) and outputs w
  (B, 2, H, W), in the coordinates of ``grid_sample`` with ``align_corners=True`` (−1 … 1 across the frame;
  channel 0 along the width, channel 1 along the height), the semantics of PyTorch 0.3, which the official
  code's training script was written for (``Variable``, ``loss.data[0]``) — as are its bilinear upsamplings
  (on PyTorch ≥ 0.4, which the 2019 estimator's companion scripts need, ``nn.Upsample`` would not align
  corners; ``grid_sample`` aligned them until 1.3, so the warp is the same either way);
- the last frame is sampled at grid − w (bilinear, zeros outside the frame); every channel of a
  multi-channel frame moves with the same w (the official code has one channel);
- the warped frame is appended to the window and the oldest dropped, autoregressively for any horizon
  (training unrolls the same way, on its own outputs: no teacher forcing).

Estimator (``ConvDeconvEstimator`` at the repository's HEAD, commit 088b93f of 2019; the 2018 code, of the
ICLR paper's time, used LeakyReLU(0.1) everywhere and biases in the decoder convs, +496 parameters —
not reproduced here; FlowNetS-like, 22.2 M parameters for 4 input frames): five stride-2
3×3 conv + BatchNorm + ReLU levels of 64, 128, 256, 512, 1024 channels (levels 3–5 followed by a stride-1
conv of the same width), then five ×2 bilinear upsamplings each followed by a 3×3 conv (no bias) + ReLU to
256, 128, 64, 32, 16 channels, each concatenated with the encoder level of its size (the last one with the
input frames), and a 3×3 conv (no bias) to the 2 flow channels. Weights are drawn from N(0, (0.02/n)²) with
n = k²·C_out (the official initialisation: the first flows are a fraction of a pixel, so training starts
close to "repeat the last frame").

Loss per target step, averaged over the ``train_horizon`` steps (the official ``train.py``):
MSE(Î, I) + 0.4·smoothness(w) + 1·divergence(w) − 0.003·magnitude(w), where smoothness is the sum of the
mean squares of the four first differences (each flow channel along each axis), magnitude the mean square
of w (its negative weight rewards motion), and divergence the mean square of the summed first
differences. The official divergence differences **both** flow channels along the height
(``w[:, 0, 1:] − w[:, 0, :-1]`` + ``w[:, 1, 1:] − w[:, 1, :-1]``), i.e. ∂u/∂y + ∂v/∂y rather than
∂u/∂x + ∂v/∂y; ``divergence="official"`` (the default) keeps that, ``"true"`` takes ∂u/∂x + ∂v/∂y with
differences along the width and the height, cropped to the cells where both exist.

Training (``DEFAULTS``): Adam lr 1e-4, betas (0.9, 0.999), weight decay 4e-4 (Adam's coupled L2), batch 64,
500 epochs, 4 input frames and 6 targets (the SST protocol of both papers).

Deviations: frames must have sides divisible by 32 (the five stride-2 levels): elsewhere the official code
fails on a size mismatch in its concatenations; here it is a clear error before any work. The warp runs in
float32 under any autocast (a bf16 sampling grid is off by up to 0.06 pixel and loses flows below ~1e-3).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from varsep.baselines.base import Baseline

LEVELS = 5  # stride-2 levels of the estimator
DIVERGENCES = ("official", "true")


def _conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3×3 conv (no bias) + BatchNorm + ReLU, the estimator's encoder unit."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """×2 bilinear upsampling, 3×3 conv (no bias), ReLU: the decoder unit (``upsample_mode='bilinear'``)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                         nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.ReLU(inplace=True))


class FlowEstimator(nn.Module):
    """The conv–deconv estimator: (B, C_in, H, W) → a flow (B, 2, H, W); H and W divisible by 32."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (64, 128, 256, 512, 1024),
                 up_widths: tuple[int, ...] = (256, 128, 64, 32, 16)) -> None:
        super().__init__()
        if len(widths) != LEVELS or len(up_widths) != LEVELS:
            raise ValueError(f"widths and up_widths need {LEVELS} entries each, got {widths} and {up_widths}")
        # Level i: a stride-2 conv, and from the third level on a stride-1 conv of the same width after it.
        self.down = nn.ModuleList()
        c = in_channels
        for i, width in enumerate(widths):
            units = [_conv(c, width, 2)] + ([_conv(width, width, 1)] if i >= 2 else [])
            self.down.append(nn.Sequential(*units))
            c = width
        self.up = nn.ModuleList()
        skips = [*reversed(widths[:-1]), in_channels]  # what each upsampled map is concatenated with
        for width, skip in zip(up_widths, skips, strict=True):
            self.up.append(_up(c, width))
            c = width + skip
        self.flow = nn.Conv2d(c, 2, 3, padding=1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = [x]
        for unit in self.down:
            levels.append(unit(levels[-1]))
        z = levels[-1]
        for unit, skip in zip(self.up, reversed(levels[:-1]), strict=True):
            z = torch.cat([skip, unit(z)], dim=1)
        return self.flow(z)


def warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``frame`` (B, C, H, W) sampled at (grid − flow): bilinear, zeros outside, ``align_corners=True``.

    ``flow`` (B, 2, H, W) is in grid units (2/(W−1) per pixel along the width for channel 0, 2/(H−1) along the
    height for channel 1), so a constant flow of k pixels moves the content k pixels forward."""
    b, _, h, w = frame.shape
    # In float32 whatever the autocast: a bf16 grid is off by up to 0.06 pixel and loses flows below ~1e-3.
    with torch.autocast(frame.device.type, enabled=False):
        ys = torch.linspace(-1, 1, h, device=frame.device, dtype=torch.float32)
        xs = torch.linspace(-1, 1, w, device=frame.device, dtype=torch.float32)
        base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)], dim=-1)  # (H, W, 2): x, y
        grid = base - flow.float().permute(0, 2, 3, 1)
        out = F.grid_sample(frame.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.to(frame.dtype)


def smoothness(flow: torch.Tensor) -> torch.Tensor:
    """Σ over the two flow channels and the two axes of the mean square of the first difference."""
    total = flow.new_zeros(())
    for c in range(2):
        total = total + (flow[:, c, 1:, :] - flow[:, c, :-1, :]).square().mean()
        total = total + (flow[:, c, :, 1:] - flow[:, c, :, :-1]).square().mean()
    return total


def divergence(flow: torch.Tensor, kind: str = "official") -> torch.Tensor:
    """Mean square of the flow's divergence: ``official`` ∂u/∂y + ∂v/∂y (the official code's differences,
    both along the height), ``true`` ∂u/∂x + ∂v/∂y (u: channel 0, along the width)."""
    u, v = flow[:, 0], flow[:, 1]
    if kind == "official":
        div = (u[:, 1:] - u[:, :-1]) + (v[:, 1:] - v[:, :-1])
    elif kind == "true":
        div = (u[:, :-1, 1:] - u[:, :-1, :-1]) + (v[:, 1:, :-1] - v[:, :-1, :-1])
    else:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {kind!r}")
    return div.square().mean()


class PKnl(Baseline):
    """de Bézenac et al.'s warping model (see the module docstring)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "optimizer": "Adam", "lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 4e-4, "batch_size": 64,
        "epochs": 500, "cond_frames": 4, "train_horizon": 6,
        "loss": "MSE + 0.4·smoothness + 1·divergence − 0.003·magnitude, each averaged over the target steps",
        "source": "emited/flow train.py (argument defaults), flow/modules/estimators.py, losses.py, warps.py",
    }

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int, *,
                 widths: tuple[int, ...] = (64, 128, 256, 512, 1024),
                 up_widths: tuple[int, ...] = (256, 128, 64, 32, 16), smooth_weight: float = 0.4,
                 divergence_weight: float = 1.0, magnitude_weight: float = -0.003,
                 divergence: str = "official") -> None:
        super().__init__(frame_shape, cond_frames, train_horizon)
        c, h, w = self.frame_shape
        step = 2 ** LEVELS
        if h % step or w % step:
            raise ValueError(f"PKnl's estimator halves the frame {LEVELS} times: frame sides must be multiples of "
                             f"{step}, got {h}×{w}")
        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
        self.estimator = FlowEstimator(self.cond_frames * c, tuple(int(x) for x in widths),
                                       tuple(int(x) for x in up_widths))
        self.smooth_weight = float(smooth_weight)
        self.divergence_weight = float(divergence_weight)
        self.magnitude_weight = float(magnitude_weight)
        self.divergence = divergence

    def step(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One warp: the window (B, Tc, C, H, W) → (the next frame (B, C, H, W), the flow (B, 2, H, W))."""
        flow = self.estimator(window.flatten(1, 2))
        return warp(window[:, -1], flow), flow

    def rollout(self, cond: torch.Tensor, horizon: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        window, frames, flows = cond, [], []
        for _ in range(horizon):
            frame, flow = self.step(window)
            frames.append(frame)
            flows.append(flow)
            window = torch.cat([window[:, 1:], frame[:, None]], dim=1)
        return torch.stack(frames, dim=1), flows

    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        self.check_cond(cond)
        return self.rollout(cond, horizon)[0]

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        del step  # no schedule
        self.check_cond(cond)
        pred, flows = self.rollout(cond, target.shape[1])
        mse = torch.mean((pred - target) ** 2)  # = the mean over steps of each step's MSE (equal sizes)
        n = len(flows)
        smooth = sum(smoothness(f) for f in flows) / n
        div = sum(divergence(f, self.divergence) for f in flows) / n
        magnitude = sum(f.square().mean() for f in flows) / n
        loss = (mse + self.smooth_weight * smooth + self.divergence_weight * div
                + self.magnitude_weight * magnitude)
        return {"loss": loss, "mse": mse, "smoothness": smooth, "divergence": div, "magnitude": magnitude}

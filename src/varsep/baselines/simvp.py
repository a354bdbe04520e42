"""SimVP with the IncepU translator ("SimVP v1").

Paper: Zhangyang Gao, Cheng Tan, Lirong Wu, Stan Z. Li, "SimVP: Simpler yet Better Video Prediction",
CVPR 2022 (arXiv:2206.05099). Official code: github.com/A4Bio/SimVP (read at commit 4dcd445). Parameter-count
and checkpoint reference: OpenSTL (github.com/chengtan9907/OpenSTL, commit c74deb5), ``SimVP_Model`` with
``model_type='IncepU'`` and the Moving MNIST config ``configs/mmnist/simvp/SimVP_IncepU.py``.

Architecture (shared parts in ``simvp_parts.py``): per-frame encoder of N_S conv blocks (every second one
stride 2), the T·hid_S-channel stack of all frame latents goes through the IncepU translator — a U-Net of
N_T encoder and N_T decoder Inception blocks (1×1 conv to hid_T/2, then parallel grouped convs with kernels
3/5/7/11, each followed by GroupNorm + LeakyReLU(0.2), summed), decoder blocks 1..N_T−1 taking the matching
encoder output concatenated — and a per-frame decoder with a skip from the first encoder block and a 1×1
readout (no output activation).

Follows OpenSTL (``variant="openstl"``, the default, because OpenSTL's table is the parameter-count
reference): SiLU in the encoder/decoder blocks, ×2 upsampling by conv + PixelShuffle, the skip *added* before
the last decoder block, trunc-normal(0.02) initialisation of the encoder/decoder convs, state-dict names
(``enc.enc.*``, ``hid.enc.*``/``hid.dec.*``, ``dec.dec.*``, ``dec.readout.*``), the reference width
hid_T = 512 and the chunked rollout of ``openstl/methods/simvp.py`` for horizons ≠ cond_frames.
``variant="original"`` gives the A4Bio code instead: LeakyReLU(0.2), stride-2 transposed convs, the skip
*concatenated* (last decoder block 2·hid_S → hid_S), PyTorch default initialisation.

Deviations: (1) one network call maps cond_frames frames to cond_frames frames (T_out = T_in, as in both
codes); ``train_horizon`` only sets the training target length and forecasts of other lengths are chunked /
truncated (``simvp_parts`` docstring). (2) N_S must be even and kernels odd (OpenSTL silently builds N_S−1
blocks for odd N_S). (3) The grouped-conv quirk of both codes is kept: a branch falls back to groups = 1
(conv and GroupNorm) when hid_T/2 is not divisible by ``groups``.

Reference configuration (OpenSTL, Moving MNIST 10→10, 64×64×1): hid_S 64, hid_T 512, N_S 4, N_T 8, kernels
3/3, incep_ker (3, 5, 7, 11), groups 8 → 57,946,113 parameters (OpenSTL table: 58.0M; the original-code
variant at the same widths: 57,761,409; at its own default hid_T 256: 15,778,433).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from .simvp_parts import SimVPFamily

_ONECYCLE = {
    "name": "OneCycleLR", "max_lr": 1e-3, "total_steps": "epochs * steps_per_epoch", "step": "per iteration",
    "pct_start": 0.3, "anneal_strategy": "cos", "div_factor": 25.0, "final_div_factor": 1e4,
    "cycle_momentum": True, "base_momentum": 0.85, "max_momentum": 0.95,
}


class _GroupedConvBranch(nn.Module):
    """Grouped k×k conv → GroupNorm(groups) → LeakyReLU(0.2); groups drop to 1 if they do not divide C_in."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__()
        g = groups if c_in % groups == 0 else 1
        if c_out % g:
            raise ValueError(f"Inception branch: {c_out} output channels not divisible by {g} groups")
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=g)
        self.norm = nn.GroupNorm(g, c_out)
        self.activate = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.norm(self.conv(x)))


class _InceptionBlock(nn.Module):
    """1×1 conv C_in → C_mid, then the sum of one grouped branch per kernel size (C_mid → C_out)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, kernels: tuple[int, ...], groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_mid, 1)
        self.layers = nn.Sequential(*[_GroupedConvBranch(c_mid, c_out, k, groups) for k in kernels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        out = None
        for branch in self.layers:
            y = branch(x)
            out = y if out is None else out + y
        return out


class IncepUTranslator(nn.Module):
    """U-shaped stack of Inception blocks on the (B, T·hid_S, h, w) latent stack (OpenSTL's ``MidIncepNet``)."""

    def __init__(self, channels: int, hid: int, depth: int, kernels: tuple[int, ...], groups: int) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"N_T must be ≥ 2, got {depth}")
        if hid < 2 or hid % 2:
            raise ValueError(f"hid_T must be even, got {hid}")
        mid = hid // 2
        self.depth = depth
        self.enc = nn.Sequential(*[
            _InceptionBlock(channels if i == 0 else hid, mid, hid, kernels, groups) for i in range(depth)
        ])
        self.dec = nn.Sequential(*[
            _InceptionBlock(hid if i == 0 else 2 * hid, mid, channels if i == depth - 1 else hid, kernels, groups)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor, stochastic: bool = False) -> torch.Tensor:
        del stochastic  # nothing random in this translator
        skips = []
        z = x
        for i, block in enumerate(self.enc):
            z = block(z)
            if i < self.depth - 1:
                skips.append(z)
        z = self.dec[0](z)
        for i in range(1, self.depth):
            z = self.dec[i](torch.cat([z, skips[-i]], dim=1))
        return z


class SimVP(SimVPFamily):
    """SimVP + IncepU (see the module docstring). Loss: MSE of the train_horizon forecast."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "optimizer": "Adam", "lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999), "eps": 1e-8,
        "betas_note": "beta1 is overridden by OneCycleLR's momentum cycling (0.95 → 0.85 → 0.95)",
        "batch_size": 16, "epochs": 200, "grad_clip": None, "loss": "mse",
        "schedule": _ONECYCLE,
        "source": ("OpenSTL c74deb5: configs/mmnist/simvp/SimVP_IncepU.py (lr 1e-3, batch 16, onecycle), "
                   "openstl/utils/parser.py default_parser (epoch 200, opt adam, weight_decay 0, "
                   "final_div_factor 1e4, no clipping), openstl/core/optim_scheduler.py (OneCycleLR stepped "
                   "per iteration, other arguments PyTorch defaults); 200 epochs = the Moving MNIST table row"),
        "original_code": ("A4Bio/SimVP main.py/exp.py: Adam lr 1e-2, batch 16, OneCycleLR(max_lr=lr, "
                          "epochs, steps_per_epoch) with PyTorch defaults, 51 epochs by default (README: "
                          "1000-2000 epochs), MSE"),
    }

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int, *,
                 hid_S: int = 64, hid_T: int = 512, N_S: int = 4, N_T: int = 8, spatio_kernel_enc: int = 3,
                 spatio_kernel_dec: int = 3, incep_ker: tuple[int, ...] = (3, 5, 7, 11), groups: int = 8,
                 variant: str = "openstl") -> None:
        super().__init__(frame_shape, cond_frames, train_horizon, hid_S=hid_S, N_S=N_S,
                         spatio_kernel_enc=spatio_kernel_enc, spatio_kernel_dec=spatio_kernel_dec, variant=variant)
        kernels = tuple(int(k) for k in incep_ker)
        if len(kernels) < 2 or any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"incep_ker needs ≥ 2 odd kernel sizes, got {incep_ker}")
        self.hid = IncepUTranslator(self.cond_frames * self.hid_S, int(hid_T), int(N_T), kernels, int(groups))

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        del step  # no schedule
        self.check_target(cond, target)
        pred = self.rollout(cond, self.train_horizon, stochastic=self.training)
        mse = torch.mean((pred - target) ** 2)
        return {"loss": mse, "mse": mse}

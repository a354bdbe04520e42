"""TAU: Temporal Attention Unit.

Paper: Cheng Tan, Zhangyang Gao, Lirong Wu, Yongjie Xu, Jun Xia, Siyuan Li, Stan Z. Li, "Temporal Attention
Unit: Towards Efficient Spatiotemporal Predictive Learning", CVPR 2023 (arXiv:2206.12126). Official code:
OpenSTL (github.com/chengtan9907/OpenSTL, read at commit c74deb5): ``SimVP_Model`` with ``model_type='tau'``
(``openstl/models/simvp_model.py``, ``TAUSubBlock`` in ``openstl/modules/simvp_modules.py``), method
``openstl/methods/tau.py``, Moving MNIST config ``configs/mmnist/TAU.py``.

Architecture: SimVP's per-frame encoder/decoder (``simvp_parts.py``, OpenSTL flavour: SiLU, PixelShuffle,
additive skip) around a translator of N_T MetaFormer-style blocks on the (B, T·hid_S, h, w) latent stack:
block 0 works at T·hid_S channels and is followed by a 1×1 ``reduction`` conv to hid_T, blocks 1..N_T−2 work
at hid_T, block N_T−1 works at hid_T and is followed by a 1×1 reduction back to T·hid_S. Each block:
x ← x + drop_path(s₁ ⊙ TA(BN(x))), x ← x + drop_path(s₂ ⊙ MLP(BN(x))) with layer scales s initialised to
0.01. TA = 1×1 conv → GELU → temporal attention module → 1×1 conv, plus TA's own input. The module, on its
input u: statical attention = depthwise 5×5 → depthwise 7×7 with dilation 3 → 1×1 conv (a 21×21 receptive
field, decomposed); dynamical attention = global average pool of u → Linear(d → d/r) → ReLU → Linear(d/r → d)
→ sigmoid, no biases, with r = max(d // 16, 4) as in the code (16 hidden units at d = 512 and 640); output =
dynamical ⊙ statical ⊙ u. MLP = 1×1 conv to mlp_ratio·d → depthwise 3×3 → GELU → dropout → 1×1 conv → dropout.

Loss (``openstl/methods/tau.py``): MSE + α · DDR with α = 0.1 (``configs/mmnist/TAU.py``), where the
differential divergence regulariser DDR turns the frame differences of forecast and target (each flattened
over C·H·W) into distributions with softmax at temperature τ = 0.1 and takes p·log(p/(q+ε) + ε), ε = 1e-12,
**averaged over all B·(T−1)·C·H·W elements** (the code's ``.mean()``: the paper's KL divided by C·H·W); it is
0 when the horizon has ≤ 2 frames. ``training_terms`` returns ``"loss"``, ``"mse"`` and ``"ddr"``.

Follows OpenSTL: everything above, the state-dict names (``hid.enc.j.block.*``, ``hid.enc.j.reduction.*``),
the initialisation (MLP convs normal(0, √(2/fan_out)) with zero bias, layer scales 0.01, BatchNorm default;
the attention branch keeps PyTorch's default initialisation because OpenSTL builds it after its init pass;
reductions default) and the drop-path schedule with its quirk: block i < N_T−1 gets rate
``linspace(0.01, drop_path, N_T)[i]`` and the last block ``drop_path``, so with the reference drop_path = 0
blocks 0..6 still drop paths at 0.01, 0.0086, …, 0.0014 during training and block 7 does not. Set
``drop_path_start=0.0`` to switch the quirk off.

Deviations: (1) as for SimVP, one call maps cond_frames → cond_frames frames; other horizons are chunked /
truncated (``simvp_parts`` docstring). (2) Drop path and dropout act only inside ``training_terms`` in training
mode, never in ``forecast`` (which the contract wants deterministic); OpenSTL applies them in any train-mode
forward. Drop path draws one keep flag per sample from torch's global RNG and rescales by 1/keep (timm's rule).
(3) N_S even, kernels odd (see ``simvp.py``).

Reference configuration (OpenSTL, Moving MNIST 10→10, 64×64×1): hid_S 64, hid_T 512, N_S 4, N_T 8, kernels
3/3, mlp_ratio 8, drop 0, drop_path 0, α 0.1 → 44,656,001 parameters (OpenSTL table: 44.7M).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .simvp_parts import SimVPFamily


def drop_path(x: torch.Tensor, rate: float, active: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples with probability ``rate``, scale the kept ones by 1/(1 − rate)."""
    if not active or rate <= 0.0:
        return x
    keep = 1.0 - rate
    if keep <= 0.0:
        return torch.zeros_like(x)
    flags = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * (flags / keep)


def differential_divergence(pred: torch.Tensor, target: torch.Tensor, tau: float = 0.1,
                            eps: float = 1e-12) -> torch.Tensor:
    """TAU's differential divergence regulariser on (B, T, …) sequences (mean over all elements; 0 if T ≤ 2)."""
    b, t = pred.shape[:2]
    if t <= 2:
        return pred.new_zeros(())
    p = torch.softmax((pred[:, 1:] - pred[:, :-1]).reshape(b, t - 1, -1) / tau, dim=-1)
    q = torch.softmax((target[:, 1:] - target[:, :-1]).reshape(b, t - 1, -1) / tau, dim=-1)
    return torch.mean(p * torch.log(p / (q + eps) + eps))


class _TemporalAttentionModule(nn.Module):
    """Statical (decomposed large-kernel depthwise) attention times dynamical (squeeze-excitation) attention."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, se_reduction: int) -> None:
        super().__init__()
        local = 2 * dilation - 1
        span = kernel_size // dilation
        if span % 2 == 0:
            span -= 1
        self.conv0 = nn.Conv2d(dim, dim, local, padding=local // 2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, span, padding=dilation * (span // 2), groups=dim, dilation=dilation)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        squeezed = dim // max(dim // se_reduction, 4)
        self.fc = nn.Sequential(nn.Linear(dim, squeezed, bias=False), nn.ReLU(),
                                nn.Linear(squeezed, dim, bias=False), nn.Sigmoid())

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        statical = self.conv1(self.conv_spatial(self.conv0(u)))
        dynamical = self.fc(u.mean(dim=(2, 3)))[:, :, None, None]
        return dynamical * statical * u


class _TemporalAttention(nn.Module):
    """1×1 conv → GELU → temporal attention module → 1×1 conv, plus the input (inner shortcut)."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, se_reduction: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = _TemporalAttentionModule(dim, kernel_size, dilation, se_reduction)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class _Depthwise3x3(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x)


class _ConvMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = _Depthwise3x3(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = float(drop)

    def forward(self, x: torch.Tensor, stochastic: bool) -> torch.Tensor:
        x = F.dropout(self.act(self.dwconv(self.fc1(x))), self.drop, training=stochastic)
        return F.dropout(self.fc2(x), self.drop, training=stochastic)


class _TAUBlock(nn.Module):
    def __init__(self, dim: int, *, kernel_size: int, dilation: int, se_reduction: int, mlp_ratio: float,
                 drop: float, drop_path_rate: float, init_value: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = _TemporalAttention(dim, kernel_size, dilation, se_reduction)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = _ConvMlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), float(init_value)))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), float(init_value)))
        self.drop_path_rate = float(drop_path_rate)
        for m in self.mlp.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, stochastic: bool) -> torch.Tensor:
        branch = self.layer_scale_1[:, None, None] * self.attn(self.norm1(x))
        x = x + drop_path(branch, self.drop_path_rate, stochastic)
        branch = self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x), stochastic)
        return x + drop_path(branch, self.drop_path_rate, stochastic)


class _TAUStage(nn.Module):
    """A TAU block at its input width, then (if the width changes) a 1×1 ``reduction`` conv."""

    def __init__(self, c_in: int, c_out: int, **block: Any) -> None:
        super().__init__()
        self.block = _TAUBlock(c_in, **block)
        if c_in != c_out:
            self.reduction = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, stochastic: bool) -> torch.Tensor:
        z = self.block(x, stochastic)
        return self.reduction(z) if hasattr(self, "reduction") else z


class TAUTranslator(nn.Module):
    """N_T TAU stages: T·hid_S → hid_T, hid_T → hid_T (×N_T−2), hid_T → T·hid_S (OpenSTL's ``MidMetaNet``)."""

    def __init__(self, channels: int, hid: int, depth: int, *, drop_path: float, drop_path_start: float,
                 **block: Any) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"N_T must be ≥ 2, got {depth}")
        # float32 linspace, read back as Python floats, to reproduce OpenSTL's rates bit for bit
        rates = torch.linspace(drop_path_start, drop_path, depth, device="cpu").tolist()[:-1] + [float(drop_path)]
        widths = [channels] + [hid] * (depth - 1) + [channels]
        self.enc = nn.Sequential(*[
            _TAUStage(widths[i], widths[i + 1], drop_path_rate=rates[i], **block) for i in range(depth)
        ])

    def forward(self, x: torch.Tensor, stochastic: bool = False) -> torch.Tensor:
        for stage in self.enc:
            x = stage(x, stochastic)
        return x


class TAU(SimVPFamily):
    """TAU (see the module docstring). Loss: MSE + alpha · DDR of the train_horizon forecast."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "optimizer": "Adam", "lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999), "eps": 1e-8,
        "betas_note": "beta1 is overridden by OneCycleLR's momentum cycling (0.95 → 0.85 → 0.95)",
        "batch_size": 16, "epochs": 200, "grad_clip": None,
        "loss": "mse + alpha * ddr", "alpha": 0.1, "ddr_tau": 0.1, "drop_path": 0.0, "drop": 0.0,
        "schedule": {
            "name": "OneCycleLR", "max_lr": 1e-3, "total_steps": "epochs * steps_per_epoch",
            "step": "per iteration", "pct_start": 0.3, "anneal_strategy": "cos", "div_factor": 25.0,
            "final_div_factor": 1e4, "cycle_momentum": True, "base_momentum": 0.85, "max_momentum": 0.95,
        },
        "source": ("OpenSTL c74deb5: configs/mmnist/TAU.py (lr 1e-3, batch 16, drop_path 0, alpha 0.1, "
                   "onecycle), openstl/methods/tau.py (loss, tau 0.1), openstl/utils/parser.py default_parser "
                   "(epoch 200, opt adam, weight_decay 0, final_div_factor 1e4, no clipping), "
                   "openstl/core/optim_scheduler.py (OneCycleLR per iteration, other arguments PyTorch "
                   "defaults); 200 epochs = the Moving MNIST table row"),
    }

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int, *,
                 hid_S: int = 64, hid_T: int = 512, N_S: int = 4, N_T: int = 8, spatio_kernel_enc: int = 3,
                 spatio_kernel_dec: int = 3, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0,
                 drop_path_start: float = 0.01, kernel_size: int = 21, dilation: int = 3, se_reduction: int = 16,
                 init_value: float = 1e-2, alpha: float = 0.1, ddr_tau: float = 0.1, ddr_eps: float = 1e-12) -> None:
        super().__init__(frame_shape, cond_frames, train_horizon, hid_S=hid_S, N_S=N_S,
                         spatio_kernel_enc=spatio_kernel_enc, spatio_kernel_dec=spatio_kernel_dec, variant="openstl")
        if mlp_ratio <= 1:
            raise ValueError(f"mlp_ratio must be > 1, got {mlp_ratio}")
        if dilation < 1 or kernel_size // dilation < 1:
            raise ValueError(f"kernel_size {kernel_size} / dilation {dilation} leave no dilated kernel")
        self.alpha = float(alpha)
        self.ddr_tau = float(ddr_tau)
        self.ddr_eps = float(ddr_eps)
        self.hid = TAUTranslator(self.cond_frames * self.hid_S, int(hid_T), int(N_T), drop_path=float(drop_path),
                                 drop_path_start=float(drop_path_start), kernel_size=int(kernel_size),
                                 dilation=int(dilation), se_reduction=int(se_reduction), mlp_ratio=float(mlp_ratio),
                                 drop=float(drop), init_value=float(init_value))

    def drop_path_rates(self) -> list[float]:
        """The per-block drop-path rates used in training (see the module docstring for OpenSTL's quirk)."""
        return [stage.block.drop_path_rate for stage in self.hid.enc]

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        del step  # no schedule
        self.check_target(cond, target)
        pred = self.rollout(cond, self.train_horizon, stochastic=self.training)
        mse = torch.mean((pred - target) ** 2)
        ddr = differential_divergence(pred, target, self.ddr_tau, self.ddr_eps)
        return {"loss": mse + self.alpha * ddr, "mse": mse, "ddr": ddr}

"""PhyDNet baseline: a moment-constrained PhyCell and a ConvLSTM in a shared latent space.

Paper: Vincent Le Guen, Nicolas Thome, "Disentangling Physical Dynamics from Unknown Factors for Unsupervised Video
Prediction", CVPR 2020.
Official code: github.com/vincent-leguen/PhyDNet (PyTorch; ``models/models.py``, ``constrain_moments.py``,
``main.py``). OpenSTL (github.com/chengtan9907/OpenSTL, commit c74deb5, ``openstl/models/phydnet_model.py``,
``openstl/modules/phydnet_modules.py``) ports the same modules; it is the reference for the Moving MNIST parameter
count (3,091,732) and for the checkpoint layout. This file is an independent re-implementation.

Model (frames (B, C, H, W), not patched):
- shared encoder E: conv 3×3 s2 (C→32), conv s1 (32→32), conv s(p/2) (32→64), each + GroupNorm(16) + LeakyReLU(0.2)
  → latent (64, H/p, W/p); branch encoders E_p, E_r: two conv s1 blocks 64→64 each;
- physics branch, PhyCell (one cell, 64 channels): prediction H̃ = H + Φ(H) with Φ = conv 7×7 (64→49) → GroupNorm(7)
  → conv 1×1 (49→64); correction H' = H̃ + K⊙(E_p(x) − H̃), K = σ(conv 3×3 over [E_p(x), H]) (previous H);
- residual branch: ConvLSTM with 3 layers (hidden 128, 128, 64, kernel 3×3, one conv over [x, h] split i, f, o, g);
- branch decoders D_p, D_r (two transposed-conv s1 blocks each), shared decoder D (transposed conv s2 64→32, s1
  32→32, then a bare transposed conv to C), frame = σ(D(D_p(H) + D_r(h_top)));
- moment constraint: the 49 7×7 filters of Φ's first conv, seen from each of the 64 input channels, are pushed to
  have the moment matrices of the 49 operators ∂^{a+b}/∂x^a∂y^b (x: rows, y: columns; filter 7a+b ↔ one-hot (a, b)),
  with m = M·k·Mᵀ, M[i, j] = (j − 3)^i / i! (``kernel_to_moments``), computed in float64;
- steps: the Tc−1 first conditioning frames are encoded (each predicts the next conditioning frame), then decoding
  starts from the last conditioning frame and feeds back the prediction (any horizon);
- training step (original ``main.py``, ``train_on_batch``): loss = Σ of the Tc−1 + Th per-frame MSEs + 1·Σ over the 64
  input channels of MSE(K2M(filters), constraints); with probability max(0, 1 − 0.003·epoch) the whole batch is
  teacher-forced (one draw per batch: the decoder is fed the ground-truth target frames instead of its predictions).

Deviations from the official code / OpenSTL:
- training optimises the loss itself as the original repository does, not OpenSTL's ``MSE(loss, batch_y)`` (OpenSTL's
  training step feeds the scalar loss into an MSE against the target tensor, optimising (L − ȳ)²);
- the teacher-forcing draw uses torch's global RNG (original: Python's ``random``); "epoch" is
  ``step // steps_per_epoch`` (default 625 = 10,000 training sequences / batch 16 in the original Moving MNIST loader);
- recurrent states are passed explicitly instead of being kept as module attributes, and the two partial
  reconstructions σ(D(D_p(·))) and σ(D(D_r(·))) that the original computes for visualisation only are not computed
  (they do not enter the loss);
- the module tree holds each sub-network once (OpenSTL registers PhyCell and ConvLSTM twice, at top level and inside
  ``encoder``, and stores the K2M matrices as float64 buffers); ``from_openstl_state_dict`` accepts that layout and the
  original repository's (EncoderRNN keys without ``encoder.``) and checks that duplicated tensors agree
  (module-level ``from_openstl_state_dict``, as in the other baselines).

Reference configuration (OpenSTL ``configs/mmnist/PhyDNet.py`` = the original ``main.py``): frames (1, 64, 64),
10 → 10, patch_size 4 (latent 16×16), PhyCell 49 filters 7×7, ConvLSTM 128-128-64; 3,091,732 parameters (OpenSTL's
table: 3.1M).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Baseline, check_state_dict, unwrap_checkpoint

__all__ = ["PhyDNet", "from_openstl_state_dict", "kernel_to_moments", "moment_matrix", "moments_to_kernel"]


# ---------------------------------------------------------------------------------------- moment conversion
def moment_matrix(size: int) -> np.ndarray:
    """M[i, j] = (j − (size − 1)//2)^i / i!, the float64 matrix mapping a 1-D stencil to its Taylor moments."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) // 2
    return np.stack([offsets ** i / math.factorial(i) for i in range(size)])


def _moment_mats(kernel: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    mats = []
    for size in kernel.shape[-2:]:
        m = moment_matrix(size)
        mats.append(torch.as_tensor(np.linalg.inv(m) if inverse else m, dtype=kernel.dtype, device=kernel.device))
    return mats[0], mats[1]


def kernel_to_moments(kernel: torch.Tensor) -> torch.Tensor:
    """Moment matrices of 2-D kernels (..., h, w): m[a, b] = Σ_ij M_h[a, i] M_w[b, j] k[i, j] (in ``kernel``'s dtype).

    For a cross-correlation y(x) = Σ k[i, j] u(x + (i − ci, j − cj)), m[a, b] is the coefficient of
    ∂^a_row ∂^b_col u in the Taylor expansion of y.
    """
    mh, mw = _moment_mats(kernel, inverse=False)
    return mh @ kernel @ mw.transpose(0, 1)


def moments_to_kernel(moments: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`kernel_to_moments`."""
    ih, iw = _moment_mats(moments, inverse=True)
    return ih @ moments @ iw.transpose(0, 1)


# ------------------------------------------------------------------------------------------ checkpoint help
# ----------------------------------------------------------------------------------------------- networks
class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(16, cout),
                                  nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class _UpConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=1, output_padding=1 if stride == 2 else 0),
            nn.GroupNorm(16, cout), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class _SharedEncoder(nn.Module):
    def __init__(self, channels: int, patch_size: int, nf: int = 32) -> None:
        super().__init__()
        self.c1 = _ConvBlock(channels, nf, 2)
        self.c2 = _ConvBlock(nf, nf, 1)
        self.c3 = _ConvBlock(nf, 2 * nf, patch_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c3(self.c2(self.c1(x)))


class _SharedDecoder(nn.Module):
    def __init__(self, channels: int, patch_size: int, nf: int = 32) -> None:
        super().__init__()
        last_stride = patch_size // 2
        self.upc1 = _UpConvBlock(2 * nf, nf, 2)
        self.upc2 = _UpConvBlock(nf, nf, 1)
        self.upc3 = nn.ConvTranspose2d(nf, channels, 3, stride=last_stride, padding=1,
                                       output_padding=1 if last_stride == 2 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upc3(self.upc2(self.upc1(x)))


class _BranchEncoder(nn.Module):
    def __init__(self, nf: int = 64) -> None:
        super().__init__()
        self.c1 = _ConvBlock(nf, nf, 1)
        self.c2 = _ConvBlock(nf, nf, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(self.c1(x))


class _BranchDecoder(nn.Module):
    def __init__(self, nf: int = 64) -> None:
        super().__init__()
        self.upc1 = _UpConvBlock(nf, nf, 1)
        self.upc2 = _UpConvBlock(nf, nf, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upc2(self.upc1(x))


class _Autoencoder(nn.Module):
    """The frame encoders/decoders (OpenSTL's ``PhyD_EncoderRNN`` without the two recurrent branches)."""

    def __init__(self, channels: int, patch_size: int) -> None:
        super().__init__()
        self.encoder_E = _SharedEncoder(channels, patch_size)
        self.encoder_Ep = _BranchEncoder()
        self.encoder_Er = _BranchEncoder()
        self.decoder_Dp = _BranchDecoder()
        self.decoder_Dr = _BranchDecoder()
        self.decoder_D = _SharedDecoder(channels, patch_size)


class _PhyCellCell(nn.Module):
    def __init__(self, dim: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.F = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(dim, filters, kernel, padding=kernel // 2)),
            ("bn1", nn.GroupNorm(7, filters)),
            ("conv2", nn.Conv2d(filters, dim, 1)),
        ]))
        self.convgate = nn.Conv2d(2 * dim, dim, 3, padding=1)

    def forward(self, e: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gain = torch.sigmoid(self.convgate(torch.cat([e, h], dim=1)))
        h_pred = h + self.F(h)
        return h_pred + gain * (e - h_pred)


class _PhyCell(nn.Module):
    def __init__(self, dim: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.dim = dim
        self.cell_list = nn.ModuleList([_PhyCellCell(dim, filters, kernel)])

    def forward(self, e: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        new = []
        for j, cell in enumerate(self.cell_list):
            new.append(cell(e if j == 0 else new[j - 1], state[j]))
        return new


class _ConvLSTMCell(nn.Module):
    def __init__(self, cin: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(cin + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x, h, c):
        i, f, o, g = torch.split(self.conv(torch.cat([x, h], dim=1)), self.hidden, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new


class _ConvLSTM(nn.Module):
    def __init__(self, cin: int, hidden: tuple[int, ...], kernel: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.cell_list = nn.ModuleList(
            _ConvLSTMCell(cin if i == 0 else hidden[i - 1], hidden[i], kernel) for i in range(len(hidden)))

    def forward(self, x, state):
        hs, cs = [], []
        for j, cell in enumerate(self.cell_list):
            h, c = cell(x if j == 0 else hs[j - 1], state[0][j], state[1][j])
            hs.append(h)
            cs.append(c)
        return hs, cs


# ------------------------------------------------------------------------------------------------- model
class PhyDNet(Baseline):
    """PhyDNet (see the module docstring): ``forecast``, ``training_terms`` and the ``moment_loss`` term."""

    output_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)  # its frames come out of a sigmoid
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "optimizer": "Adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 16,
        "epochs": 2001,
        "steps_per_epoch": 625,
        "lr_schedule": "ReduceLROnPlateau(mode='min', patience=2, factor=0.1) stepped with the test MSE every "
                       "10 epochs",
        "grad_clip": None,
        "loss": "sum of the Tc-1 + Th per-frame MSEs + moment_weight * sum over 64 input channels of "
                "MSE(K2M(PhyCell filters), constraints)",
        "moment_weight": 1.0,
        "teacher_forcing": "one draw per batch with probability max(0, 1 - 0.003 * epoch)",
        "source": "vincent-leguen/PhyDNet main.py (Adam 1e-3, ReduceLROnPlateau, batch 16, nepochs 2001, "
                  "eval_every 10, train_on_batch, teacher forcing) and data/moving_mnist.py (10,000 train sequences)",
        "openstl": "configs/mmnist/PhyDNet.py @c74deb5: Adam lr 1e-3, batch 16, onecycle (final_div_factor 1e4), "
                   "200 epochs; teacher forcing as above from the Lightning epoch",
    }

    def __init__(self, frame_shape: tuple[int, int, int] = (1, 64, 64), cond_frames: int = 10,
                 train_horizon: int = 10, *, patch_size: int = 4, convlstm_hidden: tuple[int, ...] = (128, 128, 64),
                 convlstm_kernel: int = 3, steps_per_epoch: int = 625, teacher_forcing_decay: float = 0.003,
                 moment_weight: float = 1.0) -> None:
        super().__init__(frame_shape, cond_frames, train_horizon)
        c, h, w = self.frame_shape
        if patch_size not in (2, 4):
            raise ValueError(f"PhyDNet's encoder supports patch_size 2 or 4, got {patch_size}")
        if h % patch_size or w % patch_size:
            raise ValueError(f"frame size {h}x{w} is not divisible by patch_size {patch_size}")
        convlstm_hidden = tuple(int(n) for n in convlstm_hidden)
        if not convlstm_hidden or convlstm_hidden[-1] != 64:
            raise ValueError(f"the ConvLSTM's last layer must have 64 channels (the latent size), got "
                             f"{convlstm_hidden}")
        if steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1")
        if self.cond_frames < 1 or self.train_horizon < 1:
            raise ValueError("cond_frames and train_horizon must be >= 1")
        self.patch_size = int(patch_size)
        self.latent_shape = (64, h // patch_size, w // patch_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.teacher_forcing_decay = float(teacher_forcing_decay)
        self.moment_weight = float(moment_weight)
        self.phycell = _PhyCell(64, 49, 7)
        self.convcell = _ConvLSTM(64, convlstm_hidden, int(convlstm_kernel))
        self.encoder = _Autoencoder(c, self.patch_size)

    # ------------------------------------------------------------------------------------------ pieces
    def _zero_state(self, x: torch.Tensor):
        b = x.shape[0]
        _, hl, wl = self.latent_shape
        phys = [x.new_zeros(b, self.phycell.dim, hl, wl) for _ in self.phycell.cell_list]
        hs = [x.new_zeros(b, n, hl, wl) for n in self.convcell.hidden]
        cs = [x.new_zeros(b, n, hl, wl) for n in self.convcell.hidden]
        return phys, (hs, cs)

    def advance(self, frame: torch.Tensor, state):
        """One step: frame (B, C, H, W) and state → predicted next frame and new state."""
        phys, conv = state
        enc = self.encoder
        z = enc.encoder_E(frame)
        phys = self.phycell(enc.encoder_Ep(z), phys)
        conv = self.convcell(enc.encoder_Er(z), conv)
        merged = enc.decoder_Dp(phys[-1]) + enc.decoder_Dr(conv[0][-1])
        return torch.sigmoid(enc.decoder_D(merged)), (phys, conv)

    def moment_constraints(self, like: torch.Tensor) -> torch.Tensor:
        """(49, 7, 7) targets: filter q = 7a + b must have the one-hot moment matrix at (a, b)."""
        return torch.eye(49, dtype=like.dtype, device=like.device).view(49, 7, 7)

    def moment_loss(self) -> torch.Tensor:
        """Σ over the 64 input channels of MSE(K2M(the 49 filters seen from that channel), constraints)."""
        weight = self.phycell.cell_list[0].F.conv1.weight  # (49 filters, 64 inputs, 7, 7)
        moments = kernel_to_moments(weight.transpose(0, 1).double()).to(weight.dtype)
        return (moments - self.moment_constraints(moments)).pow(2).mean(dim=(1, 2, 3)).sum()

    def teacher_forcing_ratio(self, step: int) -> float:
        """max(0, 1 − decay·epoch) with epoch = step // steps_per_epoch (original ``main.py``)."""
        epoch = int(step) // self.steps_per_epoch
        return max(0.0, 1.0 - epoch * self.teacher_forcing_decay)

    def _encode(self, cond: torch.Tensor):
        state = self._zero_state(cond)
        recon = []
        for ei in range(cond.shape[1] - 1):
            out, state = self.advance(cond[:, ei], state)
            recon.append(out)
        return recon, state

    # ---------------------------------------------------------------------------------------- contract
    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        self.check_cond(cond)
        if int(horizon) < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        _, state = self._encode(cond)
        frame, preds = cond[:, -1], []
        for _ in range(int(horizon)):
            frame, state = self.advance(frame, state)
            preds.append(frame)
        return torch.stack(preds, dim=1)

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        self.check_cond(cond)
        if target.dim() != 5 or target.shape[0] != cond.shape[0] or target.shape[1] != self.train_horizon \
                or tuple(target.shape[2:]) != self.frame_shape:
            raise ValueError(f"PhyDNet expects targets (B, {self.train_horizon}, "
                             f"{', '.join(map(str, self.frame_shape))}), got {tuple(target.shape)}")
        ratio = self.teacher_forcing_ratio(step)
        teacher = bool(torch.rand(()) < ratio)
        recon_frames, state = self._encode(cond)
        recon = cond.new_zeros(())
        for ei, out in enumerate(recon_frames):
            recon = recon + F.mse_loss(out, cond[:, ei + 1])
        frame, preds, pred = cond[:, -1], [], cond.new_zeros(())
        for di in range(self.train_horizon):
            out, state = self.advance(frame, state)
            preds.append(out)
            pred = pred + F.mse_loss(out, target[:, di])
            frame = target[:, di] if teacher else out
        moment = self.moment_loss()
        return {
            "loss": recon + pred + self.moment_weight * moment,
            "mse": F.mse_loss(torch.stack(preds, dim=1), target),
            "recon": recon,
            "pred": pred,
            "moment": moment,
            "teacher_forcing": torch.tensor(float(teacher), device=cond.device),
            "teacher_forcing_ratio": torch.tensor(ratio, device=cond.device),
        }

    # ---------------------------------------------------------------------------------------- checkpoints
    def load_openstl_state_dict(self, state_dict: Any) -> PhyDNet:
        """``self.load_state_dict(from_openstl_state_dict(state_dict, self))``; returns ``self``."""
        self.load_state_dict(from_openstl_state_dict(state_dict, self))
        return self


_AUTOENCODER_PARTS = ("encoder_E.", "encoder_Ep.", "encoder_Er.", "decoder_Dp.", "decoder_Dr.", "decoder_D.")


def _merge_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("k2m."):
            name = key[len("k2m."):]
            inverse = name.startswith("_invM")
            if not (inverse or name.startswith("_M")):
                raise ValueError(f"PhyDNet checkpoint: unexpected key {key!r}")
            expected = moment_matrix(int(value.shape[-1]))
            expected = np.linalg.inv(expected) if inverse else expected
            if value.dim() != 2 or not np.allclose(value.detach().cpu().double().numpy(), expected, atol=1e-10):
                raise ValueError(f"PhyDNet checkpoint: {key} is not the moment matrix this model uses")
            continue
        if key.startswith(_AUTOENCODER_PARTS):
            key = "encoder." + key
        if key.startswith(("encoder.phycell.", "encoder.convcell.")):
            key = key[len("encoder."):]
        if key in out:
            if not torch.equal(out[key], value):
                raise ValueError(f"PhyDNet checkpoint: the duplicated tensors of {key} (also under encoder.) differ")
            continue
        out[key] = value
    return out


def _infer(state: dict[str, torch.Tensor]) -> PhyDNet:
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"cannot read the PhyDNet architecture from the checkpoint: missing key {key!r}")
        return state[key]

    channels = int(need("encoder.encoder_E.c1.main.0.weight").shape[1])
    hidden = []
    while f"convcell.cell_list.{len(hidden)}.conv.weight" in state:
        hidden.append(int(state[f"convcell.cell_list.{len(hidden)}.conv.weight"].shape[0]) // 4)
    kernel = int(need("convcell.cell_list.0.conv.weight").shape[-1])
    return PhyDNet((channels, 64, 64), 2, 1, convlstm_hidden=tuple(hidden), convlstm_kernel=kernel)


def from_openstl_state_dict(state_dict: Any, model: PhyDNet | None = None) -> dict[str, torch.Tensor]:
    """Map an OpenSTL ``PhyDNet_Model`` (or original ``EncoderRNN``) checkpoint to this module's keys.

    Accepted: bare state dicts, checkpoints holding ``'state_dict'``, keys prefixed ``model.`` / ``module.``.
    OpenSTL's duplicated branches (``encoder.phycell.*`` / ``encoder.convcell.*`` next to ``phycell.*`` /
    ``convcell.*``) must agree and are merged; its float64 ``k2m._M*`` / ``k2m._invM*`` buffers must equal the
    moment matrices and are dropped; the original repository's keys (``encoder_E.*`` … without ``encoder.``) are
    mapped. Checked against ``model`` when given, else against the architecture read off the keys; a ValueError names
    every missing or unexpected key and every shape mismatch. Use ``model.load_state_dict(result)``.
    """
    state = _merge_layout(unwrap_checkpoint(state_dict))
    if model is None:
        with torch.device("meta"):
            model = _infer(state)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_state_dict(state, shapes, f"PhyDNet(frame channels {model.frame_shape[0]}, "
                                    f"convlstm_hidden={model.convcell.hidden})")
    return state

"""E3D-LSTM baseline (Eidetic 3D LSTM), reproducing OpenSTL's Moving MNIST model.

Paper: Yunbo Wang, Lu Jiang, Ming-Hsuan Yang, Li-Jia Li, Mingsheng Long, Li Fei-Fei, "Eidetic 3D LSTM: A Model for
Video Prediction and Beyond", ICLR 2019.
Official code: github.com/google/e3d_lstm (TensorFlow 1). Reference for the architecture as benchmarked, the
parameter count and the checkpoints: OpenSTL (github.com/chengtan9907/OpenSTL, commit c74deb5,
``openstl/models/e3dlstm_model.py``,
``openstl/modules/e3dlstm_modules.py``, ``configs/mmnist/E3DLSTM.py``, scheduled sampling of
``openstl/utils/predrnn_utils.py``). This file is an independent re-implementation of OpenSTL's behaviour.

Model (per step t, frames patched p×p into p²·C channels; all convolutions bias-free):
- the layer-0 input is the stack of the last ``window_length`` patched frames (zeros before the first frame), a 3-D
  tensor (B, p²C, window, H/p, W/p); every state h, c, M has shape (B, hidden, window, H/p, W/p);
- 3-D convolutions with kernel (2, 5, 5), no temporal padding; their output (window−1 deep) is nearest-interpolated back
  to ``window`` frames (OpenSTL's emulation of TF "same" padding);
- Eidetic cell: ``conv_x`` (in→7C: i, g, r, o, i', g', f'), ``conv_h`` (C→4C: i, g, r, o), ``conv_gm`` (M, C→4C:
  i, f, g, m̃). i=σ, r=σ (recall gate), g=tanh; c' = LayerNorm(c + Recall(r, history)) + i⊙g, where Recall is a
  dot-product attention (no scaling) of the recall gate over the eidetic history of this layer's cell states (the
  initial zero state and every earlier c, unbounded); M' = σ(f'+f_m+1)⊙tanh(m̃) + σ(i'+i_m)⊙tanh(g'+g_m);
  og = tanh(o_x + o_h + conv_new_cell(c') + conv_new_gm(M')); h' = tanh(conv_last([c', M'])) ⊙ σ(og);
- 4 stacked layers, the global memory is handed from layer to layer (zigzag); the head ``conv_last`` is a Conv3d with
  kernel (window, 1, 1) and stride (window, 1, 1) that collapses the window into one patched frame;
- training: inputs are the ground truth for t < Tc, afterwards a per-sample, per-frame Bernoulli(η) choice between the
  ground truth and the model's previous output (standard scheduled sampling, η = 1 − 2·10⁻⁵·(step+1) until step 50,000,
  then 0); loss = MSE + L1 (both means) over all Tc+Th−1 one-step predictions (the Tc−1 input reconstructions
  included), as OpenSTL. Forecasting feeds the model's own outputs after the conditioning frames.

Quirks of OpenSTL kept on purpose (defaults), so that OpenSTL checkpoints load and give the same numbers and the
parameter count is OpenSTL's 51,347,456 (the count is the same either way; the numbers are not):
1. the cell hands the *incoming* global memory on instead of M', so M stays zero for the whole sequence (the official
   TF code does the same); ``conv_gm`` is therefore applied to zeros and receives zero gradients (M' still reaches h'
   within each step). ``carry_global_memory=True`` passes M' on as the paper describes.
2. the recall attention flattens channels-first tensors with a raw reshape to (B, −1, C), so its "tokens" mix channels
   and positions, and the history is concatenated along channels (in the TF code, channels-last, the same reshape gives
   one C-vector per space-time position). ``position_tokens=True`` uses per-position tokens as in the TF code.
3. the eidetic history is unbounded (every earlier cell state of the sequence), as in OpenSTL and the TF code.
4. the recall's LayerNorm over (C, window, H, W) (elementwise affine) exists even with ``layer_norm=False``.

Deviations from OpenSTL: scheduled-sampling coin flips come from torch's global RNG (OpenSTL: numpy) and η is
computed from ``step`` in closed form rather than decremented in place; ``training_terms`` also reports the MSE of the
Th forecast frames. Deviations from the official TF code (all inherited from OpenSTL): 128 instead of 64 hidden
channels, no layer norm on the gates, loss = means instead of ½·Σ squared + Σ absolute errors, plain Adam (TF:
β=(0.95, 0.9995) plus a weight EMA), PyTorch default initialisation.

Reference configuration (OpenSTL ``configs/mmnist/E3DLSTM.py``): frames (1, 64, 64), 10 → 10, patch 4, hidden
128×4, kernel (2, 5, 5), window 2, layer_norm off; 51,347,456 parameters. OpenSTL's results table prints 51.0M for
this model; the code gives 51.3M (see the tests).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .base import Baseline, check_state_dict, unwrap_checkpoint

__all__ = ["E3DLSTM", "from_openstl_state_dict"]


# --------------------------------------------------------------------------------------------------- patching
def _to_patches(frames: torch.Tensor, p: int) -> torch.Tensor:
    """(B, T, C, H, W) → (B, T, p·p·C, H/p, W/p); channel index (row offset · p + column offset) · C + c."""
    b, t, c, h, w = frames.shape
    x = frames.reshape(b, t, c, h // p, p, w // p, p)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, t, p * p * c, h // p, w // p)


def _from_patches(patches: torch.Tensor, p: int, c: int) -> torch.Tensor:
    """Inverse of :func:`_to_patches`."""
    b, t, _, hp, wp = patches.shape
    x = patches.reshape(b, t, p, p, c, hp, wp)
    return x.permute(0, 1, 4, 5, 2, 6, 3).reshape(b, t, c, hp * p, wp * p)


# ----------------------------------------------------------------------------------------------------- layers
# oneDNN's bf16 Conv3d weight gradient on CPU (PyTorch 2.13) is NaN for 896 or more output channels from batch 8 up
# (128 input channels, kernel (2, 5, 5), 2×16×16 states; 768 and fewer are exact), which made E3D-LSTM's 7·128-channel
# ``conv_x`` NaN after its first step at its reference batch 16. Wider convolutions therefore run as slices of at most
# this many output channels: the same weights and the same numbers, one extra concatenation.
_MAX_OUT_CHANNELS = 512


class _WindowConv3d(nn.Module):
    """Bias-free Conv3d without temporal padding whose output is nearest-resized back to the input's (T, H, W)."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv3d = nn.Conv3d(cin, cout, kernel_size=kernel, padding=(0, kernel[1] // 2, kernel[2] // 2), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv3d
        if conv.out_channels <= _MAX_OUT_CHANNELS:
            y = conv(x)
        else:  # the same convolution, in slices of output channels (see _MAX_OUT_CHANNELS)
            y = torch.cat([F.conv3d(x, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
                           for w in conv.weight.split(_MAX_OUT_CHANNELS)], dim=1)
        if y.shape[-3:] != x.shape[-3:]:
            y = F.interpolate(y, size=x.shape[-3:], mode="nearest")
        return y


class _EideticCell(nn.Module):
    def __init__(self, cin: int, hidden: int, window: int, hp: int, wp: int, kernel: tuple[int, int, int],
                 layer_norm: bool, forget_bias: float, carry_global_memory: bool, position_tokens: bool) -> None:
        super().__init__()
        self.hidden = hidden
        self.forget_bias = float(forget_bias)
        self.carry_global_memory = carry_global_memory
        self.position_tokens = position_tokens
        self._norm_c_t = nn.LayerNorm([hidden, window, hp, wp])

        def gate_conv(i: int, o: int) -> nn.Sequential:
            parts: list[nn.Module] = [_WindowConv3d(i, o, kernel)]
            if layer_norm:
                parts.append(nn.LayerNorm([o, window, hp, wp]))
            return nn.Sequential(*parts)

        self.conv_x = gate_conv(cin, 7 * hidden)
        self.conv_h = gate_conv(hidden, 4 * hidden)
        self.conv_gm = gate_conv(hidden, 4 * hidden)
        self.conv_new_cell = gate_conv(hidden, hidden)
        self.conv_new_gm = gate_conv(hidden, hidden)
        self.conv_last = _WindowConv3d(2 * hidden, hidden, (1, 1, 1))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) → (B, N, C) attention tokens (OpenSTL: raw reshape; else one token per position)."""
        if self.position_tokens:
            return x.flatten(2).transpose(1, 2)
        return x.reshape(x.shape[0], -1, self.hidden)

    def _untokens(self, a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.position_tokens:
            return a.transpose(1, 2).reshape(like.shape)
        return a.reshape(like.shape)

    def _recall(self, gate: torch.Tensor, *states: torch.Tensor) -> torch.Tensor:
        history = torch.cat([self.tokens(s) for s in states], dim=1)
        weights = torch.softmax(self.tokens(gate) @ history.transpose(1, 2), dim=2)
        # Unscaled logits span ±150 here, so most weights underflow below float32's smallest normal number
        # (1.2e-38); x86 matmuls on such subnormals run 10-50x slower. They are flushed to zero, which changes
        # each recalled value by < 1e-33 (what a flush-to-zero GPU or AMX does anyway).
        weights = weights.masked_fill(weights < torch.finfo(weights.dtype).tiny, 0.0)
        return self._untokens(weights @ history, gate)

    def recall(self, gate: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
        """Dot-product attention of the recall gate over the eidetic history ``states`` (this layer's cell states,
        oldest first; tokens concatenated in that order, as OpenSTL's channel-wise concatenation then reshape).

        When training, the attention is recomputed in the backward pass instead of being stored: its weights are
        (B, N, N·len(states)) per step, which at batch 16 × 25 frames of 64×64 is ~20 GB over a sequence, and
        the concatenated history of every step would be another ~5 GB (each step's copy kept for backward)."""
        if torch.is_grad_enabled() and (gate.requires_grad or any(s.requires_grad for s in states)):
            return checkpoint(self._recall, gate, *states, use_reentrant=False)
        return self._recall(gate, *states)

    def forward(self, x, h, c, m, history):
        i_h, g_h, r_h, o_h = torch.split(self.conv_h(h), self.hidden, dim=1)
        i_x, g_x, r_x, o_x, i2_x, g2_x, f2_x = torch.split(self.conv_x(x), self.hidden, dim=1)
        i = torch.sigmoid(i_x + i_h)
        r = torch.sigmoid(r_x + r_h)
        g = torch.tanh(g_x + g_h)
        c_new = self._norm_c_t(c + self.recall(r, history)) + i * g

        i_m, f_m, g_m, m_m = torch.split(self.conv_gm(m), self.hidden, dim=1)
        m_new = (torch.sigmoid(f2_x + f_m + self.forget_bias) * torch.tanh(m_m)
                 + torch.sigmoid(i2_x + i_m) * torch.tanh(g2_x + g_m))
        og = torch.tanh(o_x + o_h + self.conv_new_cell(c_new) + self.conv_new_gm(m_new))
        h_new = torch.tanh(self.conv_last(torch.cat([c_new, m_new], dim=1))) * torch.sigmoid(og)
        return h_new, c_new, (m_new if self.carry_global_memory else m)


# ------------------------------------------------------------------------------------------------------ model
class E3DLSTM(Baseline):
    """Eidetic 3D LSTM as in OpenSTL (see the module docstring for the quirks kept and the deviations)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "optimizer": "Adam",
        "lr": 1e-4,
        "weight_decay": 0.0,
        "batch_size": 16,
        "epochs": 200,
        "steps_per_epoch": 625,
        "lr_schedule": "OneCycleLR(max_lr=lr, total_steps=epochs*steps_per_epoch, final_div_factor=1e4; torch "
                       "defaults otherwise: pct_start 0.3, cosine, div_factor 25, beta1 cycled 0.95→0.85), per step",
        "grad_clip": None,
        "loss": "MSE + L1 (means) over all Tc+Th-1 one-step predictions",
        "scheduled_sampling": {"start": 1.0, "changing_rate": 2e-5, "stop_iter": 50000},
        "source": "OpenSTL c74deb5: configs/mmnist/E3DLSTM.py (lr, batch, SS), tools/train defaults (200 epochs, "
                  "onecycle), methods/predrnn.py + utils/predrnn_utils.py (SS), models/e3dlstm_model.py (loss)",
        "official_tf": "google/e3d_lstm scripts/e3d_lstm_mm_train.sh: hidden 64x4, layer_norm True, lr 1e-3, batch 4, "
                       "Adam(0.95, 0.9995) + EMA 0.9995, loss 1/2*sum sq + sum abs, SS as OpenSTL",
    }

    def __init__(self, frame_shape: tuple[int, int, int] = (1, 64, 64), cond_frames: int = 10,
                 train_horizon: int = 10, *, num_hidden: tuple[int, ...] = (128, 128, 128, 128), patch_size: int = 4,
                 window_length: int = 2, kernel_size: tuple[int, int, int] = (2, 5, 5), layer_norm: bool = False,
                 forget_bias: float = 1.0, sampling_start_value: float = 1.0, sampling_changing_rate: float = 2e-5,
                 sampling_stop_iter: int = 50000, carry_global_memory: bool = False,
                 position_tokens: bool = False) -> None:
        super().__init__(frame_shape, cond_frames, train_horizon)
        c, h, w = self.frame_shape
        p = int(patch_size)
        if p < 1 or h % p or w % p:
            raise ValueError(f"frame size {h}x{w} is not divisible by patch_size {p}")
        num_hidden = tuple(int(n) for n in num_hidden)
        if not num_hidden or len(set(num_hidden)) != 1:
            raise ValueError(f"the zigzag global memory needs equal hidden sizes in every layer, got {num_hidden}")
        kernel = tuple(int(k) for k in kernel_size)
        if len(kernel) != 3 or kernel[1] % 2 == 0 or kernel[2] % 2 == 0:
            raise ValueError(f"kernel_size must be (T, odd, odd), got {kernel_size}")
        if int(window_length) < kernel[0]:
            raise ValueError(f"window_length {window_length} is shorter than the temporal kernel {kernel[0]}")
        if self.cond_frames < 1 or self.train_horizon < 1:
            raise ValueError("cond_frames and train_horizon must be >= 1")
        self.patch_size = p
        self.window_length = int(window_length)
        self.num_hidden = num_hidden
        self.frame_channel = p * p * c
        self.sampling_start_value = float(sampling_start_value)
        self.sampling_changing_rate = float(sampling_changing_rate)
        self.sampling_stop_iter = int(sampling_stop_iter)
        hp, wp = h // p, w // p
        self.cell_list = nn.ModuleList(
            _EideticCell(self.frame_channel if i == 0 else num_hidden[i - 1], num_hidden[i], self.window_length, hp,
                         wp, kernel, bool(layer_norm), forget_bias, bool(carry_global_memory), bool(position_tokens))
            for i in range(len(num_hidden)))
        self.conv_last = nn.Conv3d(num_hidden[-1], self.frame_channel, kernel_size=(self.window_length, 1, 1),
                                   stride=(self.window_length, 1, 1), bias=False)

    # ---------------------------------------------------------------------------------------- schedule
    def sampling_eta(self, step: int) -> float:
        """Probability of feeding the ground truth at a future input position at optimiser step ``step``.

        OpenSTL starts from η = 1 and subtracts the rate at every step before drawing, so the draw at step s uses
        1 − rate·(s+1) while s < stop_iter, and 0 from then on.
        """
        if step < self.sampling_stop_iter:
            return max(0.0, self.sampling_start_value - self.sampling_changing_rate * (int(step) + 1))
        return 0.0

    def sampling_flags(self, batch: int, step: int) -> torch.Tensor:
        """(batch, train_horizon − 1) floats, 1 = feed the ground truth (torch's global CPU RNG)."""
        draws = torch.rand(batch, self.train_horizon - 1)
        return (draws < self.sampling_eta(step)).float()

    # ---------------------------------------------------------------------------------------- recurrence
    def rollout(self, cond_p: torch.Tensor, horizon: int, future_p: torch.Tensor | None = None,
                flags: torch.Tensor | None = None) -> torch.Tensor:
        """Run the recurrence on patched frames; returns the Tc+horizon−1 one-step predictions (patched).

        ``cond_p``: (B, Tc, p²C, H/p, W/p). Inputs after the conditioning frames are the previous prediction, or where
        ``flags[:, j]`` is 1 the ground truth ``future_p[:, j]`` (flags: (B, horizon − 1)).
        """
        b, tc = cond_p.shape[:2]
        hidden = self.num_hidden[0]
        grid = (self.window_length,) + tuple(cond_p.shape[-2:])
        zeros = cond_p.new_zeros((b, hidden) + grid)
        hs = [zeros] * len(self.cell_list)
        cs = [zeros] * len(self.cell_list)
        histories: list[list[torch.Tensor]] = [[] for _ in self.cell_list]
        memory = zeros
        window = [torch.zeros_like(cond_p[:, 0])] * (self.window_length - 1)
        outputs = []
        x_gen = None
        for t in range(tc + horizon - 1):
            if t < tc:
                frame = cond_p[:, t]
            elif flags is None:
                frame = x_gen
            else:
                f = flags[:, t - tc].to(cond_p).view(b, 1, 1, 1)
                frame = f * future_p[:, t - tc] + (1 - f) * x_gen
            window = (window + [frame])[-self.window_length:]
            inp = torch.stack(window, dim=2)
            for i, cell in enumerate(self.cell_list):
                histories[i].append(cs[i])
                hs[i], cs[i], memory = cell(inp if i == 0 else hs[i - 1], hs[i], cs[i], memory, histories[i])
            x_gen = self.conv_last(hs[-1]).squeeze(2)
            outputs.append(x_gen)
        return torch.stack(outputs, dim=1)

    # ---------------------------------------------------------------------------------------- contract
    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        self.check_cond(cond)
        if int(horizon) < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        out = self.rollout(_to_patches(cond, self.patch_size), int(horizon))
        return _from_patches(out[:, self.cond_frames - 1:], self.patch_size, self.frame_shape[0])

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        self.check_cond(cond)
        if target.dim() != 5 or target.shape[0] != cond.shape[0] or target.shape[1] != self.train_horizon \
                or tuple(target.shape[2:]) != self.frame_shape:
            raise ValueError(f"E3DLSTM expects targets (B, {self.train_horizon}, "
                             f"{', '.join(map(str, self.frame_shape))}), got {tuple(target.shape)}")
        p = self.patch_size
        cond_p, target_p = _to_patches(cond, p), _to_patches(target, p)
        eta = self.sampling_eta(step)
        flags = self.sampling_flags(cond.shape[0], step)
        out = self.rollout(cond_p, self.train_horizon, target_p, flags)
        truth = torch.cat([cond_p, target_p], dim=1)[:, 1:]
        mse_all = F.mse_loss(out, truth)
        l1_all = F.l1_loss(out, truth)
        return {
            "loss": mse_all + l1_all,
            "mse": F.mse_loss(out[:, self.cond_frames - 1:], target_p),
            "mse_all": mse_all,
            "l1_all": l1_all,
            "sampling_eta": torch.tensor(eta, device=cond.device),
        }

    def training_activation_bytes(self, batch: int) -> int:
        """Memory one training step keeps for backward, estimated: 36 float32 tensors of one state's size
        (hidden × window × H/p × W/p) per layer and recurrence step and sample, measured with PyTorch 2.13 on CPU
        (float32 0.87 GB per sample at WaveEq's 5 + 20 frames of 64×64, the reference sizes; bf16 autocast
        keeps ~20 % less). At batch 16 that is 14.5 GB."""
        _, h, w = self.frame_shape
        p = self.patch_size
        state = self.num_hidden[0] * self.window_length * (h // p) * (w // p)
        steps = self.cond_frames + self.train_horizon - 1
        return 36 * 4 * int(batch) * state * len(self.cell_list) * steps

    # ---------------------------------------------------------------------------------------- checkpoints
    def load_openstl_state_dict(self, state_dict: Any) -> E3DLSTM:
        """``self.load_state_dict(from_openstl_state_dict(state_dict, self))``; returns ``self``."""
        self.load_state_dict(from_openstl_state_dict(state_dict, self))
        return self


def _infer(state: dict[str, torch.Tensor]) -> E3DLSTM:
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"cannot read the E3D-LSTM architecture from the checkpoint: missing key {key!r}")
        return state[key]

    hidden = []
    while f"cell_list.{len(hidden)}.conv_h.0.conv3d.weight" in state:
        hidden.append(int(state[f"cell_list.{len(hidden)}.conv_h.0.conv3d.weight"].shape[1]))
    conv_x = need("cell_list.0.conv_x.0.conv3d.weight")
    norm = need("cell_list.0._norm_c_t.weight")
    window = int(need("conv_last.weight").shape[2])
    return E3DLSTM((int(conv_x.shape[1]), int(norm.shape[2]), int(norm.shape[3])), 1, 1, num_hidden=tuple(hidden),
                   patch_size=1, window_length=window, kernel_size=tuple(int(k) for k in conv_x.shape[2:]),
                   layer_norm="cell_list.0.conv_h.1.weight" in state)


def from_openstl_state_dict(state_dict: Any, model: E3DLSTM | None = None) -> dict[str, torch.Tensor]:
    """Map an OpenSTL ``E3DLSTM_Model`` checkpoint to this module's keys (the names are OpenSTL's).

    Accepts the bare state dict (released model zoo), a checkpoint dict holding ``'state_dict'`` and keys prefixed
    ``model.`` (Lightning) or ``module.`` (DDP). Checked against ``model`` when given, else against the architecture
    read off the keys (patch size 1, since p and C only appear as their product); a ValueError names every missing or
    unexpected key and every shape mismatch. Use ``model.load_state_dict(result)``.
    """
    state = unwrap_checkpoint(state_dict)
    if model is None:
        with torch.device("meta"):
            model = _infer(state)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_state_dict(state, shapes, f"E3DLSTM(num_hidden={model.num_hidden}, window_length={model.window_length})")
    return state

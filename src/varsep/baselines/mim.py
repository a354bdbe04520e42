"""MIM: Memory In Memory networks.

Paper: Yunbo Wang, Jianjin Zhang, Hongyu Zhu, Mingsheng Long, Jianmin Wang, Philip S. Yu, "Memory In Memory: A
Predictive Neural Network for Learning Higher-Order Non-Stationarity from Spatiotemporal Dynamics", CVPR 2019.
Official code: Yunbo426/MIM (TensorFlow). Parameter-count reference: OpenSTL (chengtan9907/OpenSTL c74deb5,
``openstl/models/mim_model.py``, ``openstl/modules/mim_modules.py``): 38.0 M in the OpenSTL, Moving MNIST
10→10 benchmark table (computed 38,043,648).

Reference configuration (OpenSTL ``configs/mmnist/MIM.py``): patch 4 (1×64×64 → 16×16×16), 4 layers of 128
channels (layer 0 an ST-LSTM, layers 1–3 MIM blocks, each with a MIM-N), 5×5 kernels, stride 1, no layer norm,
10 → 10 frames, bias-free 1×1 head. Training: standard scheduled sampling, MSE over all 19 one-step
predictions, Adam + OneCycle, lr 5e-4, batch 16 (train = validation batch, drop_last), 200 epochs.

Structure (C channels, bias-free 'same' convs, forget bias +1; own code):
- peephole LSTM (used by MIM-N and MIM-S): conv_x_concat(x), conv_h_concat(h) → 4C split (i, g, f, o);
  peepholes ``ct_weight`` (2C, h, w) on c for i and f, ``oc_weight`` (C, h, w) on c' for o, both zero at start:
  c' = σ(f + w_f∘c + 1)⊙c + σ(i + w_i∘c)⊙tanh(g), h' = σ(o + w_o∘c')⊙tanh(c').
- MIM-N l (non-stationarity, ``stlstm_layer_diff[l-1]``), from step 1 on: input h⁰_t − h⁰_{t−1} for l = 1, the
  MIM-N below's output for l > 1; at step 0 its output counts as zero.
- MIM block l (``stlstm_layer[l]``): conv_x_cc(h^{l−1}_t) → 4C (i, g, f, o), conv_t_cc(h^l_{t−1}) → 3C (i, g, o),
  conv_s_cc(M) → 4C (i, g, f, o); M' = σ(f_x+f_s+1)⊙M + σ(i_x+i_s)⊙tanh(g_x+g_s); the temporal memory goes
  through MIM-S, a peephole LSTM with input = the MIM-N output, hidden = the previous temporal memory and its
  own cell n: (T, n') = MIM-S(D, C, n); C' = T + σ(i_x+i_t)⊙tanh(g_x+g_t);
  h' = σ(o_x+o_t+o_s)⊙tanh(conv_last([C', M'])) (1×1). M flows zigzag through all layers as in PredRNN.

Follows OpenSTL: all of the above, submodule names (``stlstm_layer.*``, ``stlstm_layer_diff.*``,
``conv_last``), the rollout and objective of :mod:`.recurrent`. Each MIM-N owns a ``conv_last`` (2C → C,
1×1) that OpenSTL creates but never uses; it is kept (98,304 parameters at the reference configuration) for
the published count and strict checkpoint loading, and receives no gradient.
Deviations: by default MIM-S's cell n starts at zero for every sequence and gradients flow through it (the TF
original, where n lives in the unrolled graph). OpenSTL keeps n as a module attribute that is detached at every
step and carried over from the previous forward call (hence its equal train/validation batch sizes);
``openstl_mims_state=True`` reproduces that (carried state is reset when the batch shape changes, where OpenSTL
would fail), at the price of forecasts that depend on the previous call. Also: the discarded MIM-N call at
step 0 is skipped (no effect on any value); stride must be 1; the sampling schedule is a function of the step
with torch's RNG.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from .predrnn import SpatioTemporalLSTMCell
from .recurrent import RecurrentBaseline, gate_conv, head_conv, load_openstl, openstl_mmnist_defaults, require


class _PeepholeLSTM(nn.Module):
    """Convolutional LSTM with Hadamard peepholes (``ct_weight`` for i, f; ``oc_weight`` for o)."""

    def __init__(self, in_channels: int, hidden: int, height: int, width: int, filter_size: int, stride: int,
                 layer_norm: bool, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.forget_bias = forget_bias
        self.ct_weight = nn.Parameter(torch.zeros(2 * hidden, height, width))
        self.oc_weight = nn.Parameter(torch.zeros(hidden, height, width))
        self.conv_h_concat = gate_conv(in_channels, 4 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_x_concat = gate_conv(in_channels, 4 * hidden, filter_size, stride, layer_norm, height, width)

    def peephole(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hi, hg, hf, ho = torch.split(self.conv_h_concat(h), self.hidden, dim=1)
        xi, xg, xf, xo = torch.split(self.conv_x_concat(x), self.hidden, dim=1)
        wi, wf = torch.split(self.ct_weight, self.hidden, dim=0)
        i = torch.sigmoid(hi + wi * c + xi)
        f = torch.sigmoid(hf + wf * c + xf + self.forget_bias)
        c_new = f * c + i * torch.tanh(hg + xg)
        h_new = torch.sigmoid(ho + xo + self.oc_weight * c_new) * torch.tanh(c_new)
        return h_new, c_new


class MIMN(_PeepholeLSTM):
    """Non-stationarity module (a peephole LSTM on differences); ``conv_last`` is OpenSTL's unused conv."""

    def __init__(self, in_channels: int, hidden: int, height: int, width: int, filter_size: int, stride: int,
                 layer_norm: bool) -> None:
        super().__init__(in_channels, hidden, height, width, filter_size, stride, layer_norm)
        self.conv_last = head_conv(2 * hidden, hidden)  # unused

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.peephole(x, h, c)


class MIMBlock(_PeepholeLSTM):
    """MIM block; its own ``ct_weight``/``oc_weight``/``conv_{h,x}_concat`` form the MIM-S peephole LSTM."""

    def __init__(self, in_channels: int, hidden: int, height: int, width: int, filter_size: int, stride: int,
                 layer_norm: bool) -> None:
        super().__init__(hidden, hidden, height, width, filter_size, stride, layer_norm)
        self.conv_t_cc = gate_conv(in_channels, 3 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_s_cc = gate_conv(hidden, 4 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_x_cc = gate_conv(hidden, 4 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_last = head_conv(2 * hidden, hidden)

    def forward(self, x: torch.Tensor, diff: torch.Tensor, h: torch.Tensor, c: torch.Tensor, m: torch.Tensor,
                n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ti, tg, to = torch.split(self.conv_t_cc(h), self.hidden, dim=1)
        si, sg, sf, so = torch.split(self.conv_s_cc(m), self.hidden, dim=1)
        xi, xg, xf, xo = torch.split(self.conv_x_cc(x), self.hidden, dim=1)
        m_new = torch.sigmoid(xf + sf + self.forget_bias) * m + torch.sigmoid(xi + si) * torch.tanh(xg + sg)
        stationary, n_new = self.peephole(diff, c, n)  # MIM-S: input D, hidden = previous temporal memory
        c_new = stationary + torch.sigmoid(xi + ti) * torch.tanh(xg + tg)
        h_new = torch.sigmoid(xo + to + so) * torch.tanh(self.conv_last(torch.cat([c_new, m_new], dim=1)))
        return h_new, c_new, m_new, n_new


class MIM(RecurrentBaseline):
    """Memory In Memory (OpenSTL's ``MIM`` at the defaults); needs ≥ 2 layers of equal width."""

    DEFAULTS: ClassVar[dict[str, Any]] = openstl_mmnist_defaults("MIM.py", 5e-4, drop_last=True,
                                                                 val_batch_size=16)

    def __init__(self, frame_shape: tuple[int, int, int] = (1, 64, 64), cond_frames: int = 10,
                 train_horizon: int = 10, *, num_hidden: tuple[int, ...] | list[int] = (128, 128, 128, 128),
                 filter_size: int = 5, stride: int = 1, patch_size: int = 4, layer_norm: bool = False,
                 openstl_mims_state: bool = False, **sampling: Any) -> None:
        """``openstl_mims_state``: OpenSTL's carried-over, per-step-detached MIM-S cell (see the module
        docstring); ``sampling``: scheduled-sampling settings of :class:`.recurrent.RecurrentBaseline`."""
        super().__init__(frame_shape, cond_frames, train_horizon, num_hidden=num_hidden, filter_size=filter_size,
                         stride=stride, patch_size=patch_size, layer_norm=layer_norm, equal_hidden=True,
                         min_layers=2, **sampling)
        hw = (self.patch_height, self.patch_width)
        args = (self.filter_size, self.stride, self.layer_norm)
        layers: list[nn.Module] = [SpatioTemporalLSTMCell(self.patch_channels, self.num_hidden[0], *hw, *args)]
        layers += [MIMBlock(self.num_hidden[i - 1], self.num_hidden[i], *hw, *args) for i in range(1, self.num_layers)]
        self.stlstm_layer = nn.ModuleList(layers)
        self.stlstm_layer_diff = nn.ModuleList(
            MIMN(self.num_hidden[i], self.num_hidden[i + 1], *hw, *args) for i in range(self.num_layers - 1))
        self.conv_last = head_conv(self.num_hidden[-1], self.patch_channels)
        self.openstl_mims_state = bool(openstl_mims_state)
        self._carried: list[torch.Tensor] | None = None

    def unused_parameter_names(self) -> set[str]:
        return {name for name, _ in self.named_parameters() if name.startswith("stlstm_layer_diff.")
                and name.split(".")[2] == "conv_last"}

    def reset_mims_state(self) -> None:
        """Forget OpenSTL-style carried MIM-S cells (only used with ``openstl_mims_state``)."""
        self._carried = None

    def init_state(self, batch: int, like: torch.Tensor) -> dict[str, Any]:
        zeros = [self._zeros(batch, n, like) for n in self.num_hidden]
        n_state = [z.clone() for z in zeros[1:]]
        if self.openstl_mims_state and self._carried is not None \
                and all(a.shape == b.shape for a, b in zip(self._carried, n_state, strict=False)):
            n_state = [a.to(device=like.device, dtype=like.dtype) for a in self._carried]
        return {"h": [z.clone() for z in zeros], "c": [z.clone() for z in zeros], "m": zeros[0].clone(),
                "n": n_state, "diff_h": [z.clone() for z in zeros[1:]], "diff_c": [z.clone() for z in zeros[1:]],
                "t": 0}

    def step(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        h, c, n, dh, dc = state["h"], state["c"], state["n"], state["diff_h"], state["diff_c"]
        previous_h0 = h[0]
        h[0], c[0], state["m"], _, _ = self.stlstm_layer[0](x, h[0], c[0], state["m"])
        for i in range(1, self.num_layers):
            if state["t"] > 0:
                difference = h[0] - previous_h0 if i == 1 else dh[i - 2]
                dh[i - 1], dc[i - 1] = self.stlstm_layer_diff[i - 1](difference, dh[i - 1], dc[i - 1])
            n_in = n[i - 1].detach() if self.openstl_mims_state else n[i - 1]
            h[i], c[i], state["m"], n[i - 1] = self.stlstm_layer[i](h[i - 1], dh[i - 1], h[i], c[i], state["m"], n_in)
        state["t"] += 1
        if self.openstl_mims_state:
            self._carried = [v.detach() for v in n]
        return self.conv_last(h[-1]), state


def _infer(sd: dict[str, torch.Tensor]) -> MIM:
    first = require(sd, "stlstm_layer.0.conv_h.0.weight", "MIM")
    blocks = 0
    while f"stlstm_layer.{blocks + 1}.conv_s_cc.0.weight" in sd:
        blocks += 1
    hidden = [int(first.shape[1])] + [int(sd[f"stlstm_layer.{j}.conv_s_cc.0.weight"].shape[1])
                                      for j in range(1, blocks + 1)]
    kernel = int(first.shape[-1])
    channels = int(require(sd, "conv_last.weight", "MIM").shape[0])
    layer_norm = "stlstm_layer.0.conv_h.1.weight" in sd
    peephole = require(sd, "stlstm_layer_diff.0.oc_weight", "MIM")
    h, w = peephole.shape[1:]
    if blocks < 1 or len(set(hidden)) != 1:
        raise ValueError(f"MIM checkpoint with layer widths {hidden}: needs ≥ 2 layers of equal width")
    return MIM((channels, int(h), int(w)), 1, 1, num_hidden=hidden, filter_size=kernel, patch_size=1,
               layer_norm=layer_norm)


def from_openstl_state_dict(state_dict: dict[str, Any], model: MIM | None = None) -> dict[str, torch.Tensor]:
    """Map an OpenSTL MIM checkpoint to this module's keys (the names are OpenSTL's, so only ``model.`` /
    ``module.`` prefixes are stripped). Checked against ``model`` when given, else against the architecture read
    off the checkpoint; a ValueError names every missing or unexpected key and every shape mismatch."""
    return load_openstl(state_dict, model, _infer, "MIM")

"""PredRNN++: Causal LSTM cells with a Gradient Highway Unit.

Paper: Yunbo Wang, Zhifeng Gao, Mingsheng Long, Jianmin Wang, Philip S. Yu, "PredRNN++: Towards a Resolution
of the Deep-in-Time Dilemma in Spatiotemporal Predictive Learning", ICML 2018. Official code: Yunbo426/predrnn-pp
(TensorFlow; its defaults: hidden 128,64,64,64, layer norm on, lr 1e-3, batch 8). Parameter-count reference:
OpenSTL (chengtan9907/OpenSTL c74deb5, ``openstl/models/predrnnpp_model.py``,
``openstl/modules/predrnnpp_modules.py``): 38.6 M in the OpenSTL, Moving MNIST 10→10 benchmark table
(computed 38,584,320).

Reference configuration (OpenSTL ``configs/mmnist/PredRNNpp.py``): patch 4 (1×64×64 → 16×16×16), 4 Causal
LSTM layers of 128 channels, 5×5 kernels, stride 1, no layer norm, one GHU between layers 0 and 1, 10 → 10
frames, bias-free 1×1 head. Training: standard scheduled sampling, MSE over all 19 one-step predictions,
Adam + OneCycle, **lr 1e-4**, batch 16, 200 epochs.

Causal LSTM (C channels, bias-free 'same' convs, forget bias +1; own code): conv_x(x) → 7C (i, f, g, i', f',
g', o), conv_h(h) → 4C (i, f, g, o), conv_c(c) → 3C (i, f, g), conv_m(M) → 3C (i', f', m̃).
1. c' = σ(f_x+f_h+f_c+1)⊙c + σ(i_x+i_h+i_c)⊙tanh(g_x+g_h+g_c);
2. conv_c2m(c') → 4C (i'', g'', f'', o''); M' = σ(f'_x+f'_m+f''+1)⊙tanh(m̃) + σ(i'_x+i'_m+i'')⊙tanh(g'_x+g'');
3. o = tanh(o_x + o_h + o'' + conv_om(M')); h' = o⊙tanh(conv_last([c', M'])) (1×1).
GHU: z' = u⊙p + (1 − u)⊙z with (p, u) = (tanh, σ) of x_concat(x) + z_concat(z) (C → 2C convs, weights
initialised uniform(−0.001, 0.001)); x = layer 0's new hidden state, z its own state (zero at the start);
layer 1 reads z' instead of layer 0's h. The memory M flows zigzag as in PredRNN.

Follows OpenSTL: all of the above (including the tanh output gate, also in the TF original), the submodule
names (``gradient_highway.{z,x}_concat.0``, ``cell_list.i.conv_*``, ``conv_last``), the rollout and objective
of :mod:`.recurrent`. Each Causal cell also owns ``conv_o`` (2C → C, k×k), which OpenSTL creates but never
uses; it is kept (3,276,800 parameters at the reference configuration) for the published count and strict
checkpoint loading, and receives no gradient.
Deviations: with ``layer_norm`` the GHU's LayerNorms normalise over (2C, h, w) — OpenSTL declares (C, h, w)
for a 2C-channel output, which fails at the first forward, so no such checkpoint exists; stride must be 1;
the sampling schedule is a function of the step and its coin flips use torch's RNG. The TF original's
defaults (widths 128,64,64,64, layer norm) are not the defaults here — OpenSTL's are.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from .recurrent import (
    RecurrentBaseline,
    gate_conv,
    head_conv,
    load_openstl,
    openstl_mmnist_defaults,
    stacked_cell_settings,
)


class CausalLSTMCell(nn.Module):
    """One Causal LSTM layer (see the module docstring); ``conv_o`` is OpenSTL's unused conv."""

    def __init__(self, in_channels: int, hidden: int, height: int, width: int, filter_size: int, stride: int,
                 layer_norm: bool, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.forget_bias = forget_bias

        def conv(i: int, o: int) -> nn.Sequential:
            return gate_conv(i, o, filter_size, stride, layer_norm, height, width)

        self.conv_x = conv(in_channels, 7 * hidden)
        self.conv_h = conv(hidden, 4 * hidden)
        self.conv_c = conv(hidden, 3 * hidden)
        self.conv_m = conv(hidden, 3 * hidden)
        self.conv_o = conv(2 * hidden, hidden)  # unused
        self.conv_c2m = conv(hidden, 4 * hidden)
        self.conv_om = conv(hidden, hidden)
        self.conv_last = head_conv(2 * hidden, hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, m: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xi, xf, xg, xi2, xf2, xg2, xo = torch.split(self.conv_x(x), self.hidden, dim=1)
        hi, hf, hg, ho = torch.split(self.conv_h(h), self.hidden, dim=1)
        ci, cf, cg = torch.split(self.conv_c(c), self.hidden, dim=1)
        mi, mf, mm = torch.split(self.conv_m(m), self.hidden, dim=1)
        c_new = (torch.sigmoid(xf + hf + cf + self.forget_bias) * c
                 + torch.sigmoid(xi + hi + ci) * torch.tanh(xg + hg + cg))
        ki, kg, kf, ko = torch.split(self.conv_c2m(c_new), self.hidden, dim=1)
        m_new = (torch.sigmoid(xf2 + mf + kf + self.forget_bias) * torch.tanh(mm)
                 + torch.sigmoid(xi2 + mi + ki) * torch.tanh(xg2 + kg))
        o = torch.tanh(xo + ho + ko + self.conv_om(m_new))
        h_new = o * torch.tanh(self.conv_last(torch.cat([c_new, m_new], dim=1)))
        return h_new, c_new, m_new


class GHU(nn.Module):
    """Gradient Highway Unit: z' = u⊙p + (1 − u)⊙z, (p, u) = (tanh, σ)(x_concat(x) + z_concat(z))."""

    def __init__(self, in_channels: int, hidden: int, height: int, width: int, filter_size: int, stride: int,
                 layer_norm: bool, init_range: float = 0.001) -> None:
        super().__init__()
        if in_channels != hidden:
            raise ValueError(f"the GHU's state has its input's width; got {in_channels} → {hidden}")
        self.hidden = hidden
        self.z_concat = gate_conv(hidden, 2 * hidden, filter_size, stride, layer_norm, height, width)
        self.x_concat = gate_conv(in_channels, 2 * hidden, filter_size, stride, layer_norm, height, width)
        for seq in (self.z_concat, self.x_concat):
            nn.init.uniform_(seq[0].weight, -init_range, init_range)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        p, u = torch.split(self.x_concat(x) + self.z_concat(z), self.hidden, dim=1)
        u = torch.sigmoid(u)
        return u * torch.tanh(p) + (1 - u) * z


class PredRNNpp(RecurrentBaseline):
    """PredRNN++ (OpenSTL's ``PredRNNpp`` at the defaults); needs ≥ 2 layers of equal width."""

    DEFAULTS: ClassVar[dict[str, Any]] = openstl_mmnist_defaults("PredRNNpp.py", 1e-4)

    def __init__(self, frame_shape: tuple[int, int, int] = (1, 64, 64), cond_frames: int = 10,
                 train_horizon: int = 10, *, num_hidden: tuple[int, ...] | list[int] = (128, 128, 128, 128),
                 filter_size: int = 5, stride: int = 1, patch_size: int = 4, layer_norm: bool = False,
                 **sampling: Any) -> None:
        """``sampling``: scheduled-sampling settings of :class:`.recurrent.RecurrentBaseline` (OpenSTL's)."""
        super().__init__(frame_shape, cond_frames, train_horizon, num_hidden=num_hidden, filter_size=filter_size,
                         stride=stride, patch_size=patch_size, layer_norm=layer_norm, equal_hidden=True,
                         min_layers=2, **sampling)
        hw = (self.patch_height, self.patch_width)
        self.gradient_highway = GHU(self.num_hidden[0], self.num_hidden[0], *hw, self.filter_size, self.stride,
                                    self.layer_norm)
        self.cell_list = nn.ModuleList(
            CausalLSTMCell(self.patch_channels if i == 0 else self.num_hidden[i - 1], n, *hw, self.filter_size,
                           self.stride, self.layer_norm)
            for i, n in enumerate(self.num_hidden))
        self.conv_last = head_conv(self.num_hidden[-1], self.patch_channels)

    def unused_parameter_names(self) -> set[str]:
        return {name for name, _ in self.named_parameters()
                if name.startswith("cell_list.") and name.split(".")[2] == "conv_o"}

    def init_state(self, batch: int, like: torch.Tensor) -> dict[str, Any]:
        return {"h": [self._zeros(batch, n, like) for n in self.num_hidden],
                "c": [self._zeros(batch, n, like) for n in self.num_hidden],
                "m": self._zeros(batch, self.num_hidden[0], like),
                "z": self._zeros(batch, self.num_hidden[0], like)}

    def step(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        h, c = state["h"], state["c"]
        inp = x
        for i, cell in enumerate(self.cell_list):
            h[i], c[i], state["m"] = cell(inp, h[i], c[i], state["m"])
            inp = h[i]
            if i == 0:
                state["z"] = self.gradient_highway(h[0], state["z"])
                inp = state["z"]
        return self.conv_last(h[-1]), state


def _infer(sd: dict[str, torch.Tensor]) -> PredRNNpp:
    found = stacked_cell_settings(sd, "PredRNN++")
    hidden = found["hidden"]
    if len(hidden) < 2 or len(set(hidden)) != 1:
        raise ValueError(f"PredRNN++ checkpoint with layer widths {hidden}: needs ≥ 2 layers of equal width")
    return PredRNNpp(found["frame"], 1, 1, num_hidden=hidden, filter_size=found["kernel"], patch_size=1,
                     layer_norm=found["layer_norm"])


def from_openstl_state_dict(state_dict: dict[str, Any], model: PredRNNpp | None = None) -> dict[str, torch.Tensor]:
    """Map an OpenSTL PredRNN++ checkpoint to this module's keys (the names are OpenSTL's, so only ``model.`` /
    ``module.`` prefixes are stripped). Checked against ``model`` when given, else against the architecture read
    off the checkpoint; a ValueError names every missing or unexpected key and every shape mismatch."""
    return load_openstl(state_dict, model, _infer, "PredRNN++")

"""ConvLSTM baseline (stacked next-frame predictor, OpenSTL's "ConvLSTM-S").

Paper: Xingjian Shi, Zhourong Chen, Hao Wang, Dit-Yan Yeung, Wai-kin Wong, Wang-chun Woo, "Convolutional LSTM
Network: A Machine Learning Approach for Precipitation Nowcasting", NeurIPS 2015. The authors released no code;
the reference implementation is OpenSTL's (chengtan9907/OpenSTL, commit c74deb5,
``openstl/models/convlstm_model.py``, ``openstl/modules/convlstm_modules.py``), which gives the published
parameter count (15.0 M, OpenSTL, Moving MNIST 10→10 benchmark table; 15,083,520 computed).

Reference configuration (OpenSTL ``configs/mmnist/ConvLSTM.py``): frames 1×64×64 folded into 16×16×16 patches
(patch 4), 4 stacked ConvLSTM layers of 128 channels, 5×5 kernels, stride 1, no layer norm, 10 → 10 frames,
a bias-free 1×1 head from the top hidden state to the 16 patch channels. Training: scheduled sampling, MSE over
all 19 one-step predictions, Adam + OneCycle, lr 5e-4, batch 16, 200 epochs (see ``DEFAULTS``).

Cell (as OpenSTL; own code): gates from bias-free 'same' convolutions of the input and of the hidden state,
split in the order (i, f, g, o): c' = σ(f)⊙c + σ(i)⊙tanh(g), h' = σ(o)⊙tanh(c'). Layer 0 reads the patched
frame, layer l > 0 reads layer l − 1's new hidden state; all states start at zero for every sequence.

Follows OpenSTL: the cell equations above, the stacking, the head, the gate split order and submodule names
(``cell_list.i.conv_x.0`` …, ``conv_last``), the rollout and objective of :mod:`.recurrent`. Each cell also
owns ``conv_o`` (2C→C, k×k) and ``conv_last`` (2C→C, 1×1), which OpenSTL's cell creates but never uses; they
are kept (3,407,872 of the 15,083,520 parameters at the reference configuration) so the count matches the
published one and OpenSTL checkpoints load strictly. They receive no gradient.

Deviations from the paper: no peephole (Hadamard) terms W_c∘c in the gates, no biases, no forget-gate bias,
and a stacked next-frame predictor instead of the paper's encoder–forecaster (all as OpenSTL).
Deviations from OpenSTL: none in the computation. Constructor arguments are plain numbers (stride must be 1,
OpenSTL would fail at any other stride); forecasting any horizon is a longer rollout of the same loop; the
scheduled-sampling eta is a function of the step (:func:`.recurrent.scheduled_sampling_eta`) instead of a
decremented attribute, and the coin flips use torch's RNG instead of numpy's.
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


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer (see the module docstring); ``conv_o`` and ``conv_last`` are OpenSTL's unused convs."""

    def __init__(self, in_channels: int, hidden: int, height: int, width: int, filter_size: int, stride: int,
                 layer_norm: bool) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv_x = gate_conv(in_channels, 4 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_h = gate_conv(hidden, 4 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_o = gate_conv(2 * hidden, hidden, filter_size, stride, layer_norm, height, width)  # unused
        self.conv_last = head_conv(2 * hidden, hidden)  # unused

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates = self.conv_x(x) + self.conv_h(h)
        i, f, g, o = torch.split(gates, self.hidden, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return h_new, c_new


class ConvLSTM(RecurrentBaseline):
    """Stacked ConvLSTM next-frame predictor (OpenSTL's ConvLSTM-S at the defaults)."""

    DEFAULTS: ClassVar[dict[str, Any]] = openstl_mmnist_defaults("ConvLSTM.py", 5e-4)

    def __init__(self, frame_shape: tuple[int, int, int] = (1, 64, 64), cond_frames: int = 10,
                 train_horizon: int = 10, *, num_hidden: tuple[int, ...] | list[int] = (128, 128, 128, 128),
                 filter_size: int = 5, stride: int = 1, patch_size: int = 4, layer_norm: bool = False,
                 **sampling: Any) -> None:
        """``sampling``: the scheduled-sampling settings of :class:`.recurrent.RecurrentBaseline`
        (``scheduled_sampling``, ``sampling_stop_iter``, ``sampling_changing_rate``, ``sampling_start_value``,
        ``reverse_scheduled_sampling``, ``r_sampling_step_1/2``, ``r_exp_alpha``); defaults = OpenSTL's."""
        super().__init__(frame_shape, cond_frames, train_horizon, num_hidden=num_hidden, filter_size=filter_size,
                         stride=stride, patch_size=patch_size, layer_norm=layer_norm, **sampling)
        self.cell_list = nn.ModuleList(
            ConvLSTMCell(self.patch_channels if i == 0 else self.num_hidden[i - 1], n, self.patch_height,
                         self.patch_width, self.filter_size, self.stride, self.layer_norm)
            for i, n in enumerate(self.num_hidden))
        self.conv_last = head_conv(self.num_hidden[-1], self.patch_channels)

    def unused_parameter_names(self) -> set[str]:
        return {name for name, _ in self.named_parameters()
                if name.startswith("cell_list.") and name.split(".")[2] in ("conv_o", "conv_last")}

    def init_state(self, batch: int, like: torch.Tensor) -> dict[str, Any]:
        return {"h": [self._zeros(batch, n, like) for n in self.num_hidden],
                "c": [self._zeros(batch, n, like) for n in self.num_hidden]}

    def step(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        h, c = state["h"], state["c"]
        inp = x
        for i, cell in enumerate(self.cell_list):
            h[i], c[i] = cell(inp, h[i], c[i])
            inp = h[i]
        return self.conv_last(h[-1]), state


def _infer(sd: dict[str, torch.Tensor]) -> ConvLSTM:
    found = stacked_cell_settings(sd, "ConvLSTM")
    hidden = found["hidden"]
    return ConvLSTM(found["frame"], 1, 1, num_hidden=hidden, filter_size=found["kernel"], patch_size=1,
                    layer_norm=found["layer_norm"])


def from_openstl_state_dict(state_dict: dict[str, Any], model: ConvLSTM | None = None) -> dict[str, torch.Tensor]:
    """Map an OpenSTL ConvLSTM checkpoint (bare state dict, Lightning ``.ckpt`` with ``model.`` keys, or
    ``{'state_dict': …}``) to this module's keys (the names are OpenSTL's, so only prefixes are stripped).

    Checked against ``model`` when given, else against the architecture read off the checkpoint; a ValueError
    names every missing or unexpected key and every shape mismatch. Use ``model.load_state_dict(result)``.
    """
    return load_openstl(state_dict, model, _infer, "ConvLSTM")

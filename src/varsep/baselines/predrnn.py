"""PredRNN (spatiotemporal LSTM with a zigzag memory) and its V2 options.

Papers: Yunbo Wang, Mingsheng Long, Jianmin Wang, Zhifeng Gao, Philip S. Yu, "PredRNN: Recurrent Neural
Networks for Predictive Learning using Spatiotemporal LSTMs", NeurIPS 2017; PredRNN-V2: Yunbo Wang, Haixu Wu,
Jianjin Zhang, Zhifeng Gao, Jianmin Wang, Philip S. Yu, Mingsheng Long, "PredRNN: A Recurrent Neural Network
for Spatiotemporal Predictive Learning", IEEE TPAMI 2022. Official code: thuml/predrnn-pytorch (PyTorch, both
versions; the 2017 release was TensorFlow). Parameter-count reference: OpenSTL (chengtan9907/OpenSTL c74deb5,
``openstl/models/predrnn_model.py``, ``predrnnv2_model.py``, ``openstl/modules/predrnn_modules.py``):
PredRNN 23.8 M, PredRNN.V2 23.9 M in the OpenSTL, Moving MNIST 10→10 benchmark table (computed 23,838,720 and
23,855,104).

Reference configuration (OpenSTL ``configs/mmnist/PredRNN.py``): patch 4 (1×64×64 → 16×16×16), 4 ST-LSTM
layers of 128 channels, 5×5 kernels, stride 1, no layer norm, 10 → 10 frames, bias-free 1×1 head. Training:
standard scheduled sampling, MSE over all 19 one-step predictions, Adam + OneCycle, lr 5e-4, batch 16,
200 epochs. V2 (``configs/mmnist/PredRNNv2.py``): the same plus reverse scheduled sampling and the decoupling
loss with weight 0.1 (:class:`PredRNNv2`).

ST-LSTM cell (C channels, bias-free 'same' convs; own code): conv_x(x) → 7C split (i, f, g, i', f', g', o),
conv_h(h) → 4C (i, f, g, o), conv_m(M) → 3C (i', f', g'), forget bias +1 on both forget gates:
c' = σ(f_x+f_h+1)⊙c + σ(i_x+i_h)⊙tanh(g_x+g_h); M' = σ(f'_x+f'_m+1)⊙M + σ(i'_x+i'_m)⊙tanh(g'_x+g'_m);
o = σ(o_x + o_h + conv_o([c', M'])), h' = o⊙tanh(conv_last([c', M'])) (conv_o k×k, conv_last 1×1).
The memory M flows zigzag: up through the layers within a step, from the top layer to layer 0 at the next step.

V2 decoupling loss (thuml / OpenSTL): the increments Δc = i⊙g and ΔM = i'⊙g' of every layer and step go
through one shared bias-free 1×1 ``adapter``; per sample and channel, the |cosine| between the two (flattened
over space) is averaged, then averaged over all steps and layers; loss = MSE + ``decouple_beta``·that.

Follows OpenSTL: all of the above, submodule names (``cell_list.i.conv_x.0`` …, ``conv_last``, ``adapter``;
thuml's checkpoints use the same), no unused parameters, the rollout and objective of :mod:`.recurrent`
(V2: reverse scheduled sampling with OpenSTL's r_exp_alpha = 5,000).
Deviations: the eta / r_eta schedules are functions of the step and the coin flips use torch's RNG (OpenSTL:
a decremented attribute and numpy); stride must be 1; the decoupling loss is computed only in
``training_terms`` (forecasts skip it); thuml's own Moving MNIST recipe (lr 3e-4, batch 8, 80k iterations,
r_exp_alpha 2,500, extra time-reversed training copies ``reverse_input``) is not reproduced — the defaults are
OpenSTL's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .recurrent import (
    RSS_EXP_ALPHA,
    RSS_STEP_1,
    RSS_STEP_2,
    RecurrentBaseline,
    gate_conv,
    head_conv,
    load_openstl,
    openstl_mmnist_defaults,
    stacked_cell_settings,
)


class SpatioTemporalLSTMCell(nn.Module):
    """One ST-LSTM layer; returns (h', c', M', Δc, ΔM) — the increments feed PredRNN-V2's decoupling loss."""

    def __init__(self, in_channels: int, hidden: int, height: int, width: int, filter_size: int, stride: int,
                 layer_norm: bool, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.forget_bias = forget_bias
        self.conv_x = gate_conv(in_channels, 7 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_h = gate_conv(hidden, 4 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_m = gate_conv(hidden, 3 * hidden, filter_size, stride, layer_norm, height, width)
        self.conv_o = gate_conv(2 * hidden, hidden, filter_size, stride, layer_norm, height, width)
        self.conv_last = head_conv(2 * hidden, hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, m: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        xi, xf, xg, xi2, xf2, xg2, xo = torch.split(self.conv_x(x), self.hidden, dim=1)
        hi, hf, hg, ho = torch.split(self.conv_h(h), self.hidden, dim=1)
        mi, mf, mg = torch.split(self.conv_m(m), self.hidden, dim=1)
        delta_c = torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
        c_new = torch.sigmoid(xf + hf + self.forget_bias) * c + delta_c
        delta_m = torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg)
        m_new = torch.sigmoid(xf2 + mf + self.forget_bias) * m + delta_m
        both = torch.cat([c_new, m_new], dim=1)
        o = torch.sigmoid(xo + ho + self.conv_o(both))
        h_new = o * torch.tanh(self.conv_last(both))
        return h_new, c_new, m_new, delta_c, delta_m


class PredRNN(RecurrentBaseline):
    """PredRNN: stacked ST-LSTMs with a zigzag spatiotemporal memory (OpenSTL's PredRNN at the defaults).

    ``reverse_scheduled_sampling`` (V2) swaps the sampling schedule; ``decouple_beta`` (V2, None = off) adds
    the shared ``adapter`` (num_hidden[0]² parameters) and the decoupling term ``decouple`` to the loss.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = openstl_mmnist_defaults("PredRNN.py", 5e-4)

    def __init__(self, frame_shape: tuple[int, int, int] = (1, 64, 64), cond_frames: int = 10,
                 train_horizon: int = 10, *, num_hidden: tuple[int, ...] | list[int] = (128, 128, 128, 128),
                 filter_size: int = 5, stride: int = 1, patch_size: int = 4, layer_norm: bool = False,
                 decouple_beta: float | None = None, **sampling: Any) -> None:
        """``sampling``: scheduled-sampling settings of :class:`.recurrent.RecurrentBaseline` (OpenSTL's by
        default; ``reverse_scheduled_sampling=True`` for V2's schedule)."""
        super().__init__(frame_shape, cond_frames, train_horizon, num_hidden=num_hidden, filter_size=filter_size,
                         stride=stride, patch_size=patch_size, layer_norm=layer_norm, equal_hidden=True, **sampling)
        self.cell_list = nn.ModuleList(
            SpatioTemporalLSTMCell(self.patch_channels if i == 0 else self.num_hidden[i - 1], n, self.patch_height,
                                   self.patch_width, self.filter_size, self.stride, self.layer_norm)
            for i, n in enumerate(self.num_hidden))
        self.conv_last = head_conv(self.num_hidden[-1], self.patch_channels)
        self.decouple_beta = None if decouple_beta is None else float(decouple_beta)
        if self.decouple_beta is not None:
            self.adapter = head_conv(self.num_hidden[0], self.num_hidden[0])

    def loss_weights(self) -> dict[str, float]:
        return {} if self.decouple_beta is None else {"decouple": self.decouple_beta}

    def init_state(self, batch: int, like: torch.Tensor) -> dict[str, Any]:
        return {"h": [self._zeros(batch, n, like) for n in self.num_hidden],
                "c": [self._zeros(batch, n, like) for n in self.num_hidden],
                "m": self._zeros(batch, self.num_hidden[0], like), "decouple": []}

    def _decoupling(self, delta_c: torch.Tensor, delta_m: torch.Tensor) -> torch.Tensor:
        b, c = delta_c.shape[:2]
        a = F.normalize(self.adapter(delta_c).reshape(b, c, -1), dim=2)
        m = F.normalize(self.adapter(delta_m).reshape(b, c, -1), dim=2)
        return torch.cosine_similarity(a, m, dim=2).abs().mean()

    def step(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        h, c = state["h"], state["c"]
        collect = self.decouple_beta is not None and state.get("collect", False)
        inp = x
        for i, cell in enumerate(self.cell_list):
            h[i], c[i], state["m"], delta_c, delta_m = cell(inp, h[i], c[i], state["m"])
            if collect:
                state["decouple"].append(self._decoupling(delta_c, delta_m))
            inp = h[i]
        return self.conv_last(h[-1]), state

    def auxiliary_terms(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.decouple_beta is None:
            return {}
        return {"decouple": torch.stack(state["decouple"]).mean()}


class PredRNNv2(PredRNN):
    """PredRNN-V2 (TPAMI 2022) as OpenSTL's ``PredRNNv2``: PredRNN + reverse scheduled sampling + decoupling
    loss (weight 0.1, shared 1×1 ``adapter``)."""

    DEFAULTS: ClassVar[dict[str, Any]] = openstl_mmnist_defaults(
        "PredRNNv2.py", 5e-4, decouple_beta=0.1,
        loss="MSE of all Tc + Th - 1 one-step predictions + 0.1 * decoupling loss",
        scheduled_sampling={"reverse": True, "r_sampling_step_1": RSS_STEP_1, "r_sampling_step_2": RSS_STEP_2,
                            "r_exp_alpha": RSS_EXP_ALPHA})

    def __init__(self, frame_shape: tuple[int, int, int] = (1, 64, 64), cond_frames: int = 10,
                 train_horizon: int = 10, *, decouple_beta: float | None = 0.1, reverse_scheduled_sampling: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(frame_shape, cond_frames, train_horizon, decouple_beta=decouple_beta,
                         reverse_scheduled_sampling=reverse_scheduled_sampling, **kwargs)


def _infer(sd: dict[str, torch.Tensor]) -> PredRNN:
    found = stacked_cell_settings(sd, "PredRNN")
    hidden = found["hidden"]
    if len(set(hidden)) != 1:
        raise ValueError(f"PredRNN checkpoint with unequal layer widths {hidden}: the zigzag memory needs equal ones")
    cls = PredRNNv2 if "adapter.weight" in sd else PredRNN
    return cls(found["frame"], 1, 1, num_hidden=hidden, filter_size=found["kernel"], patch_size=1,
               layer_norm=found["layer_norm"])


def from_openstl_state_dict(state_dict: dict[str, Any], model: PredRNN | None = None) -> dict[str, torch.Tensor]:
    """Map an OpenSTL PredRNN / PredRNNv2 checkpoint (or a thuml/predrnn-pytorch one, ``{'net_param': …}``) to
    this module's keys (the names are OpenSTL's, so only ``model.`` / ``module.`` prefixes are stripped).

    Checked against ``model`` when given, else against the architecture read off the checkpoint (PredRNN-V2
    when it holds ``adapter.weight``); a ValueError names every missing or unexpected key and every shape
    mismatch (a V2 checkpoint into a PredRNN without ``decouple_beta`` reports ``adapter.weight`` as unexpected).
    """
    return load_openstl(state_dict, model, _infer, "PredRNN")

"""Shared machinery of the recurrent next-frame baselines (ConvLSTM, PredRNN / PredRNN-V2, PredRNN++, MIM).

These four methods share one training and inference protocol, introduced by the PredRNN code base
(thuml/predrnn-pytorch) and kept by OpenSTL (chengtan9907/OpenSTL, commit c74deb5, the reference for the
parameter counts and the Moving MNIST 10→10 configuration):

- **Patching.** A frame (C, H, W) is folded into (p·p·C, H/p, W/p): pixel (c, i·p + a, j·p + b) goes to
  channel (a·p + b)·C + c at position (i, j) — the layout of OpenSTL's ``reshape_patch`` on channels-last
  tensors, so OpenSTL weights act on the same channels here. :func:`patchify` / :func:`unpatchify`.
- **Next-frame rollout.** One recurrent step per frame: step t reads frame t (ground truth, or the previous
  step's prediction) and predicts frame t + 1. A clip of T frames gives T − 1 one-step predictions.
  Forecasting ``horizon`` frames after ``Tc`` conditioning frames runs Tc + horizon − 1 steps, feeding ground
  truth while it exists and the model's own output afterwards, and keeps the last ``horizon`` predictions.
  :func:`rollout`.
- **Training objective.** MSE of all T − 1 one-step predictions (the Tc − 1 reconstructions of the
  conditioning part included) against frames[1:], with a *scheduled-sampling* mask deciding per sample and
  per step whether the input is the ground-truth frame or the previous prediction.
- **Scheduled sampling** (PredRNN, OpenSTL ``schedule_sampling``): the probability of feeding ground truth at
  the Th − 1 future input steps decreases linearly from 1 by 2e-5 per optimiser step and is 0 from step
  50,000 on; the Tc conditioning steps always get ground truth. :func:`scheduled_sampling_eta`.
- **Reverse scheduled sampling** (PredRNN-V2, OpenSTL ``reserve_schedule_sampling_exp``): the conditioning
  steps 1 … Tc − 1 get ground truth with a probability rising from 0.5 to 1 (exponentially, steps 25k–50k) and
  the future steps with a probability falling from 0.5 to 0 (linearly, steps 25k–50k).
  :func:`reverse_sampling_probs`.

Everything here is written from the papers and from reading OpenSTL's code, not copied from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import Baseline, check_state_dict, unwrap_checkpoint

# OpenSTL configs/mmnist/{ConvLSTM,PredRNN,PredRNNpp,MIM,PredRNNv2}.py (identical sampling block in all five).
SS_STOP_ITER = 50_000
SS_CHANGING_RATE = 2e-5
SS_START_VALUE = 1.0  # OpenSTL hard-codes eta = 1.0 in the method's __init__ (sampling_start_value is not read)
RSS_STEP_1 = 25_000
RSS_STEP_2 = 50_000
RSS_EXP_ALPHA = 5_000  # OpenSTL; thuml/predrnn-pytorch's Moving MNIST script uses 2,500

OPENSTL_TABLE = "OpenSTL docs/en/model_zoos/video_benchmarks.md, Moving MNIST 10→10 benchmark table"


# ------------------------------------------------------------------------------------------------ patches
def patchify(frames: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, T, C, H, W) → (B, T, p·p·C, H/p, W/p); channel (a·p + b)·C + c holds pixel (c, i·p + a, j·p + b)."""
    b, t, c, h, w = frames.shape
    p = int(patch_size)
    if h % p or w % p:
        raise ValueError(f"frame size {h}×{w} is not divisible by patch_size {p}")
    x = frames.reshape(b, t, c, h // p, p, w // p, p)
    # axes: 0 b, 1 t, 2 c, 3 i, 4 a, 5 j, 6 b' → (b, t, a, b', c, i, j)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, t, p * p * c, h // p, w // p)


def unpatchify(patches: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, T, p·p·C, h, w) → (B, T, C, h·p, w·p)."""
    b, t, k, h, w = patches.shape
    p = int(patch_size)
    if k % (p * p):
        raise ValueError(f"{k} channels are not a multiple of patch_size² = {p * p}")
    c = k // (p * p)
    x = patches.reshape(b, t, p, p, c, h, w)
    # axes: 0 b, 1 t, 2 a, 3 b', 4 c, 5 i, 6 j → (b, t, c, i, a, j, b')
    return x.permute(0, 1, 4, 5, 2, 6, 3).reshape(b, t, c, h * p, w * p)


# ---------------------------------------------------------------------------------------------- schedules
def scheduled_sampling_eta(step: int, *, stop_iter: int = SS_STOP_ITER, changing_rate: float = SS_CHANGING_RATE,
                           start_value: float = SS_START_VALUE) -> float:
    """Probability of feeding ground truth at a future input step during optimiser step ``step`` (0-based).

    OpenSTL keeps eta on the method (1.0 at start) and, before drawing the mask of step ``itr``, subtracts
    ``changing_rate`` while ``itr < stop_iter`` and sets it to 0 afterwards. With one call per step this is
    eta(step) = start − (step + 1)·rate for step < stop_iter, 0 from stop_iter on (clipped at 0).
    """
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be ≥ 0, got {step}")
    if step >= stop_iter:
        return 0.0
    return max(0.0, start_value - (step + 1) * changing_rate)


def reverse_sampling_probs(step: int, *, step_1: int = RSS_STEP_1, step_2: int = RSS_STEP_2,
                           exp_alpha: float = RSS_EXP_ALPHA) -> tuple[float, float]:
    """PredRNN-V2's reverse scheduled sampling at optimiser step ``step``: (r_eta, eta).

    r_eta: probability of ground truth at the conditioning steps 1 … Tc − 1 — 0.5 before ``step_1``,
    1 − 0.5·exp(−(step − step_1)/exp_alpha) until ``step_2``, 1 afterwards.
    eta: probability of ground truth at the future steps — 0.5 before ``step_1``, falling linearly to 0 at
    ``step_2``, 0 afterwards.
    """
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be ≥ 0, got {step}")
    if step < step_1:
        return 0.5, 0.5
    if step < step_2:
        r_eta = 1.0 - 0.5 * math.exp(-float(step - step_1) / exp_alpha)
        eta = 0.5 - (0.5 / (step_2 - step_1)) * (step - step_1)
        return r_eta, eta
    return 1.0, 0.0


def teacher_mask(step: int, batch: int, cond_frames: int, train_horizon: int, *, scheduled_sampling: bool = True,
                 reverse: bool = False, stop_iter: int = SS_STOP_ITER, changing_rate: float = SS_CHANGING_RATE,
                 start_value: float = SS_START_VALUE, r_step_1: int = RSS_STEP_1, r_step_2: int = RSS_STEP_2,
                 r_exp_alpha: float = RSS_EXP_ALPHA, device: torch.device | str | None = None) -> torch.Tensor:
    """The (B, Tc + Th − 1) 0/1 mask of one training step: entry t = 1 → step t reads ground-truth frame t.

    Standard mode: steps 0 … Tc − 1 are 1; steps Tc … Tc + Th − 2 are Bernoulli(eta(step)) per sample and step
    (all 0 when ``scheduled_sampling`` is off, as OpenSTL's zero mask). Reverse mode (PredRNN-V2): step 0 is 1;
    steps 1 … Tc − 1 are Bernoulli(r_eta), the future steps Bernoulli(eta) (:func:`reverse_sampling_probs`).
    Coin flips come from torch's global RNG (conditioning part first, then the future part).
    """
    steps = cond_frames + train_horizon - 1
    mask = torch.ones(batch, steps, device=device)
    if reverse:
        r_eta, eta = reverse_sampling_probs(step, step_1=r_step_1, step_2=r_step_2, exp_alpha=r_exp_alpha)
        r_flips = torch.rand(batch, cond_frames - 1, device=device)
        flips = torch.rand(batch, train_horizon - 1, device=device)
        mask[:, 1:cond_frames] = (r_flips < r_eta).float()
        mask[:, cond_frames:] = (flips < eta).float()
    elif scheduled_sampling:
        eta = scheduled_sampling_eta(step, stop_iter=stop_iter, changing_rate=changing_rate, start_value=start_value)
        flips = torch.rand(batch, train_horizon - 1, device=device)
        mask[:, cond_frames:] = (flips < eta).float()
    else:
        mask[:, cond_frames:] = 0.0
    return mask


# ------------------------------------------------------------------------------------------------ rollout
def rollout(step_fn: Callable[[torch.Tensor], torch.Tensor], frames: torch.Tensor, steps: int,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``steps`` recurrent steps; returns the stacked one-step predictions (B, steps, K, h, w).

    ``frames`` (B, T_known, K, h, w): the known (patched) frames. Step t's input is ``frames[:, t]`` or the
    previous prediction: without ``mask`` ground truth while t < T_known, the prediction afterwards (pure
    autoregression, as at test time); with ``mask`` (B, steps) of 0/1, ``m·frames[:, t] + (1 − m)·previous``
    per sample (step 0 always reads ground truth). ``step_fn(x)`` advances the model's own state.
    """
    known = frames.shape[1]
    if known < 1 or steps < 1:
        raise ValueError(f"rollout needs ≥ 1 known frame and ≥ 1 step, got {known} and {steps}")
    if mask is not None and (mask.shape[0] != frames.shape[0] or mask.shape[1] < steps):
        raise ValueError(f"mask {tuple(mask.shape)} does not cover {frames.shape[0]} samples × {steps} steps")
    outputs: list[torch.Tensor] = []
    previous: torch.Tensor | None = None
    for t in range(steps):
        if previous is None:
            x = frames[:, 0]
        elif mask is None:
            x = frames[:, t] if t < known else previous
        else:
            m = mask[:, t]
            if bool((m == 0).all()):
                x = previous
            elif t >= known:
                raise ValueError(f"mask asks for ground truth at step {t}, but only {known} frames are known")
            elif bool((m == 1).all()):
                x = frames[:, t]
            else:
                m = m.to(frames.dtype).view(-1, 1, 1, 1)
                x = m * frames[:, t] + (1 - m) * previous
        previous = step_fn(x)
        outputs.append(previous)
    return torch.stack(outputs, dim=1)


# ------------------------------------------------------------------------------------------------- layers
def gate_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, layer_norm: bool,
              height: int, width: int) -> nn.Sequential:
    """A bias-free 'same' convolution, followed by LayerNorm over (out, h, w) when ``layer_norm``.

    Wrapped in ``nn.Sequential`` like OpenSTL's, so the weights are ``<name>.0.weight`` (LayerNorm: ``.1.``).
    """
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                         padding=kernel_size // 2, bias=False)]
    if layer_norm:
        layers.append(nn.LayerNorm([out_channels, height, width]))
    return nn.Sequential(*layers)


def head_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A bias-free 1×1 convolution (OpenSTL's ``conv_last`` of cells and models)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0, bias=False)


# --------------------------------------------------------------------------------------------- base model
class RecurrentBaseline(Baseline):
    """Common frame of the four recurrent baselines: validation, patching, rollout, objective, loading.

    A subclass builds its layers and implements :meth:`init_state` (the zero state for a batch) and
    :meth:`step` (one recurrent step on a patched frame, returning the next patched frame and the new state).
    """

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int, *,
                 num_hidden: tuple[int, ...] | list[int], filter_size: int, stride: int, patch_size: int,
                 layer_norm: bool, scheduled_sampling: bool = True, reverse_scheduled_sampling: bool = False,
                 sampling_stop_iter: int = SS_STOP_ITER, sampling_changing_rate: float = SS_CHANGING_RATE,
                 sampling_start_value: float = SS_START_VALUE, r_sampling_step_1: int = RSS_STEP_1,
                 r_sampling_step_2: int = RSS_STEP_2, r_exp_alpha: float = RSS_EXP_ALPHA,
                 equal_hidden: bool = False, min_layers: int = 1) -> None:
        super().__init__(frame_shape, cond_frames, train_horizon)
        c, h, w = self.frame_shape
        p = int(patch_size)
        if p < 1 or h % p or w % p:
            raise ValueError(f"patch_size {p} must divide the frame size {h}×{w}")
        if int(stride) != 1:
            raise ValueError(f"only stride 1 keeps the recurrent state's size; got stride {stride}")
        if int(filter_size) < 1 or int(filter_size) % 2 == 0:
            raise ValueError(f"filter_size must be odd (same padding), got {filter_size}")
        num_hidden = tuple(int(n) for n in num_hidden)
        if len(num_hidden) < min_layers or min(num_hidden) < 1:
            raise ValueError(f"{type(self).__name__} needs ≥ {min_layers} layers of ≥ 1 channel, got {num_hidden}")
        if equal_hidden and len(set(num_hidden)) != 1:
            raise ValueError(f"{type(self).__name__} threads one memory through all layers, so all layers need "
                             f"the same width; got num_hidden={num_hidden}")
        if self.cond_frames < 1 or self.train_horizon < 1:
            raise ValueError("cond_frames and train_horizon must be ≥ 1")
        self.num_hidden = num_hidden
        self.num_layers = len(num_hidden)
        self.filter_size = int(filter_size)
        self.stride = int(stride)
        self.patch_size = p
        self.layer_norm = bool(layer_norm)
        self.patch_channels = p * p * c
        self.patch_height, self.patch_width = h // p, w // p
        self.scheduled_sampling = bool(scheduled_sampling)
        self.reverse_scheduled_sampling = bool(reverse_scheduled_sampling)
        self.sampling_stop_iter = int(sampling_stop_iter)
        self.sampling_changing_rate = float(sampling_changing_rate)
        self.sampling_start_value = float(sampling_start_value)
        self.r_sampling_step_1 = int(r_sampling_step_1)
        self.r_sampling_step_2 = int(r_sampling_step_2)
        self.r_exp_alpha = float(r_exp_alpha)

    # ------------------------------------------------------------------------------------- to implement
    def init_state(self, batch: int, like: torch.Tensor) -> Any:
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def auxiliary_terms(self, state: Any) -> dict[str, torch.Tensor]:
        """Extra named loss terms collected in the state during a training rollout (default: none)."""
        return {}

    def loss_weights(self) -> dict[str, float]:
        """Weights of :meth:`auxiliary_terms` in ``loss`` (default: none)."""
        return {}

    def unused_parameter_names(self) -> set[str]:
        """Names of the parameters that OpenSTL creates (and counts) but whose forward never uses."""
        return set()

    # ---------------------------------------------------------------------------------------- machinery
    def _zeros(self, batch: int, channels: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, channels, self.patch_height, self.patch_width)

    def run(self, patched: torch.Tensor, steps: int, mask: torch.Tensor | None = None,
            training: bool = False) -> tuple[torch.Tensor, Any]:
        """Roll the model over patched frames (B, T_known, K, h, w) for ``steps`` steps → (predictions, state)."""
        state = self.init_state(patched.shape[0], patched)
        if isinstance(state, dict):
            state["collect"] = training

        def advance(x: torch.Tensor) -> torch.Tensor:
            nonlocal state
            out, state = self.step(x, state)
            return out

        predictions = rollout(advance, patched, steps, mask)
        return predictions, state

    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        """The next ``horizon`` frames after ``cond`` (B, Tc, C, H, W): ground truth for the Tc conditioning
        steps, then the model's own predictions (no teacher forcing); any horizon ≥ 1."""
        self.check_cond(cond)
        horizon = int(horizon)
        if horizon < 1:
            raise ValueError(f"horizon must be ≥ 1, got {horizon}")
        patched = patchify(cond, self.patch_size)
        predictions, _ = self.run(patched, self.cond_frames + horizon - 1)
        return unpatchify(predictions[:, -horizon:], self.patch_size)

    def sampling_mask(self, step: int, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The (B, Tc + Th − 1) teacher mask of optimiser step ``step`` (see :func:`teacher_mask`)."""
        return teacher_mask(step, batch, self.cond_frames, self.train_horizon,
                            scheduled_sampling=self.scheduled_sampling, reverse=self.reverse_scheduled_sampling,
                            stop_iter=self.sampling_stop_iter, changing_rate=self.sampling_changing_rate,
                            start_value=self.sampling_start_value, r_step_1=self.r_sampling_step_1,
                            r_step_2=self.r_sampling_step_2, r_exp_alpha=self.r_exp_alpha, device=device)

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        """OpenSTL's objective on the clip [cond, target] of T = Tc + Th frames.

        The model runs T − 1 steps; step t reads ground-truth frame t or its own previous prediction as the
        mask of optimiser step ``step`` says (:meth:`sampling_mask`, one Bernoulli flag per sample and step):
        - standard scheduled sampling (ConvLSTM, PredRNN, PredRNN++, MIM): steps 0 … Tc − 1 ground truth; steps
          Tc … T − 2 ground truth with probability eta = 1 − 2e-5·(step + 1), 0 from step 50,000;
        - reverse scheduled sampling (PredRNN-V2): step 0 ground truth; steps 1 … Tc − 1 with probability
          r_eta (0.5 → 1, exponential between steps 25k and 50k, alpha 5,000); steps Tc … T − 2 with eta
          (0.5 → 0, linear between steps 25k and 50k).
        ``loss`` = MSE of all T − 1 one-step predictions against frames 1 … T − 1 (the Tc − 1 reconstructions
        of the conditioning frames included), plus weighted auxiliary terms (PredRNN-V2: 0.1·``decouple``).
        ``mse_all_steps`` = that MSE alone. ``mse`` = MSE of the last Th predictions against ``target``; they
        are the model's own forecast wherever the mask feeds predictions (all of them once eta is 0).
        """
        self.check_cond(cond)
        expected = (cond.shape[0], self.train_horizon, *self.frame_shape)
        if tuple(target.shape) != expected:
            raise ValueError(f"{type(self).__name__} expects targets {expected}, got {tuple(target.shape)}")
        frames = torch.cat([cond, target], dim=1)
        patched = patchify(frames, self.patch_size)
        mask = self.sampling_mask(step, frames.shape[0], device=frames.device)
        predictions, state = self.run(patched, frames.shape[1] - 1, mask, training=True)
        terms: dict[str, torch.Tensor] = {}
        loss = F.mse_loss(predictions, patched[:, 1:])
        terms["mse_all_steps"] = loss.detach()
        for name, value in self.auxiliary_terms(state).items():
            terms[name] = value
            loss = loss + self.loss_weights()[name] * value
        terms["mse"] = F.mse_loss(unpatchify(predictions[:, -self.train_horizon:], self.patch_size), target)
        terms["loss"] = loss
        return terms


# ------------------------------------------------------------------------------------ training defaults
def openstl_mmnist_defaults(config: str, lr: float, **extra: Any) -> dict[str, Any]:
    """Reference training hyperparameters of OpenSTL's Moving MNIST 10→10 runs (200-epoch table rows)."""
    defaults: dict[str, Any] = {
        "optimizer": "adam",
        "lr": lr,
        "weight_decay": 0.0,
        "betas": (0.9, 0.999),  # beta1 is cycled by OneCycleLR (0.95 → 0.85 → 0.95)
        "batch_size": 16,
        "epochs": 200,
        "steps_per_epoch": 625,  # 10,000 training sequences / 16
        "lr_schedule": {"name": "onecycle", "max_lr": lr, "total_steps": 200 * 625, "pct_start": 0.3,
                        "anneal_strategy": "cos", "div_factor": 25.0, "final_div_factor": 1e4,
                        "cycle_momentum": True, "base_momentum": 0.85, "max_momentum": 0.95,
                        "stepped": "per optimiser step"},
        "grad_clip": None,
        "loss": "MSE of all Tc + Th - 1 one-step predictions against frames[1:]",
        "scheduled_sampling": {"reverse": False, "start_value": SS_START_VALUE, "stop_iter": SS_STOP_ITER,
                               "changing_rate": SS_CHANGING_RATE},
        "source": (f"OpenSTL (chengtan9907/OpenSTL c74deb5) configs/mmnist/{config}; optimiser, epochs and "
                   "OneCycle settings from openstl/utils/parser.py defaults and openstl/core/optim_scheduler.py; "
                   f"results in {OPENSTL_TABLE}"),
    }
    defaults.update(extra)
    return defaults


def expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def require(state_dict: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in state_dict:
        raise ValueError(f"cannot read the {what} architecture from the checkpoint: missing key {key!r}")
    return state_dict[key]


def stacked_cell_settings(sd: Mapping[str, torch.Tensor], what: str) -> dict[str, Any]:
    """What an OpenSTL state dict of stacked ``cell_list`` layers (ConvLSTM, PredRNN, PredRNN++) says about
    its model: frame shape (patched channels, height, width), per-layer widths, kernel size, layer norm.

    The map size is only stored by layer norm's weights; without them the kernel size stands in for it
    (the cells' weights do not depend on it)."""
    layers = count_layers(sd, "cell_list.{}.conv_h.0.weight")
    if layers == 0:
        require(sd, "cell_list.0.conv_h.0.weight", what)
    hidden = [int(sd[f"cell_list.{i}.conv_h.0.weight"].shape[1]) for i in range(layers)]
    kernel = int(sd["cell_list.0.conv_h.0.weight"].shape[-1])
    channels = int(require(sd, "conv_last.weight", what).shape[0])
    layer_norm = "cell_list.0.conv_h.1.weight" in sd
    h, w = (tuple(sd["cell_list.0.conv_h.1.weight"].shape[1:]) if layer_norm else (kernel, kernel))
    return {"frame": (channels, int(h), int(w)), "hidden": hidden, "kernel": kernel, "layer_norm": layer_norm}


def count_layers(state_dict: Mapping[str, torch.Tensor], template: str) -> int:
    """Number of consecutive layers i = 0, 1, … for which ``template.format(i)`` is a key."""
    n = 0
    while template.format(n) in state_dict:
        n += 1
    return n


def describe(model: RecurrentBaseline) -> str:
    return (f"{type(model).__name__}(frame_shape={model.frame_shape}, num_hidden={list(model.num_hidden)}, "
            f"filter_size={model.filter_size}, patch_size={model.patch_size}, layer_norm={model.layer_norm})")


def load_openstl(state_dict: Mapping[str, Any], model: RecurrentBaseline | None,
                 infer: Callable[[dict[str, torch.Tensor]], RecurrentBaseline], name: str,
                 rename: Callable[[str], str] | None = None) -> dict[str, torch.Tensor]:
    """Shared body of the modules' ``from_openstl_state_dict``: unwrap, rename, and check against ``model``
    (or, without one, against a meta-device model built from the architecture ``infer`` reads off the keys)."""
    sd = unwrap_checkpoint(state_dict)
    if rename is not None:
        sd = {rename(k): v for k, v in sd.items()}
    if model is None:
        with torch.device("meta"):
            model = infer(sd)
        what = f"the {name} architecture read off its keys ({describe(model)})"
    else:
        what = describe(model)
    check_state_dict(sd, expected_shapes(model), what)
    return sd

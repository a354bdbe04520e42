"""DrNet: disentangled content/pose autoencoder with a pose LSTM for forecasting.

Paper: Emily Denton and Vighnesh Birodkar, "Unsupervised Learning of Disentangled Representations from
Video", NeurIPS 2017. Official code: github.com/edenton/drnet (Lua Torch, the paper's code) and
github.com/edenton/drnet-py (the author's PyTorch port, the reference here: ``train_drnet.py``,
``train_lstm.py``, ``models/``).

Model. A content encoder E_c and a pose encoder E_p map a frame to a content vector (``content_dim``, tanh)
and a pose vector (``pose_dim``, tanh, optionally L2-normalised); the decoder D maps their concatenation back
to a frame (sigmoid), with skip connections from the content encoder's feature maps (``dcgan_unet`` and
``vgg_unet``). A scene discriminator C (MLP on two pose vectors) tells whether two poses come from the same
clip. A pose LSTM (linear embedding, stacked LSTM cells, linear + tanh output) predicts the next pose from
[previous pose, content].

Training (drnet trains in two stages, selected by the ``stage`` constructor option; ``set_stage`` switches):

- ``"autoencoder"`` (stage 1, ``train_drnet.py``). From four frames of each clip (x_c1, x_c2, x_p1, x_p2):
  L = ||D(E_c(x_c1), E_p(x_p1)) − x_p1||² + ||E_c(x_c1) − sg(E_c(x_c2))||² + sd_weight · BCE(C(E_p(x_p1),
  sg(E_p(x_p2))), ½) (MSEs are means; sg = stop-gradient). The last term pushes C towards maximal
  uncertainty so that pose vectors carry no clip identity. C itself is trained by ``adversary_terms`` with
  its own optimiser on (detached) poses of two frames: half the batch with the second pose shuffled among
  that half (label 1, "different clips"), the other half same-clip pairs (label 0). Trained: E_c, E_p, D.
- ``"lstm"`` (stage 2, ``train_lstm.py``). Content h_c = E_c(last conditioning frame) and all poses are fixed
  (no gradient); L = Σ_{i=1}^{T−1} ||LSTM([E_p(x_{i−1}), h_c]) − E_p(x_i)||² over the whole clip (conditioning
  + target, teacher forcing). Trained: the pose LSTM only; E_c, E_p, D are frozen (``requires_grad`` off, kept
  in eval mode) and C is not used.
- ``"joint"`` (not in the official code; a one-run convenience): the sum of both stages' losses, every
  network but C trained by ``training_terms`` (the LSTM still sees detached codes, so its loss does not
  shape the encoders).

Forecast: content vector and skip maps of the last conditioning frame; the LSTM is run over the conditioning
poses (true poses in), then on its own predictions; each predicted pose is decoded with that content. Any
horizon. Content swap: ``swap_forecast(cond, content_cond, h)`` decodes the pose trajectory that
``forecast(cond, h)`` predicts (LSTM conditioned on cond's own content) with the content vector and skip maps
of the last frame of ``content_cond``; ``encode_content`` returns that content vector.

Follows drnet-py: the architectures (``dcgan_unet`` content / ``dcgan`` pose at 64×64 by default; ``dcgan``
content without skips, ``vgg_unet`` content and ``resnet`` pose optional; the 128×128 versions come from the
same rule of one down-sampling level per factor 2), sizes (content 128, pose 10, sd_nf 100, LSTM 256 × 2), the
losses and weights, the stage-1 frame choice on Moving MNIST (frames 0, 1 for content, 2, 3 for pose; C on
poses of frames 0, 1), the discriminator's half-shuffle, the LSTM's input order [pose, content], the
initialisation (conv/linear weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0, LSTM cells PyTorch
default) and per-frame encoder calls (BatchNorm batch statistics over one frame of the batch in train mode).

Does not follow (deviations):
- C's BCE is computed from logits (``binary_cross_entropy_with_logits``; same value without BCELoss's
  log clamp at −100); the main loss's adversarial term uses C with detached weights, so the main loss leaves
  no gradient on C (drnet-py zeroes C's gradients before C's own step instead).
- Stage 2 keeps the frozen E_c, E_p, D in eval mode (running BatchNorm statistics); drnet-py leaves them in
  train mode (batch statistics) during LSTM training and generation.
- ``frame_sampling="random"`` draws four independent frames per clip (drnet-py's KTH loader) from torch's
  global RNG; ``"first"`` (default) is drnet-py's Moving MNIST choice.
- The ``"mse"`` term (the contract's forecast MSE against ``target``) is monitored without gradient with the
  free-running forecast (in train mode its encoder calls also update BatchNorm running statistics); drnet-py
  does not compute it during training.
- Stage 2's pose MSE compares predicted and encoded poses element by element (the evident intent);
  drnet-py passes a (B, pose) and a (B, pose, 1, 1) tensor to ``MSELoss``, which recent PyTorch broadcasts
  to (B, pose, B, pose) with a warning.
- Frames any power of two ≥ 8 and square (drnet-py: 64 and 128); ``"joint"`` stage is an addition.

Reference configuration (parameter counts, see /work/notes/issue18_baselines_spec.md §10): Moving MNIST as
drnet-py generates it (64×64, ``channels=3``: digit n drawn into channel n), dcgan_unet/dcgan, content 128,
pose 10, sd_nf 100, LSTM 256 × 2: E_c 3,807,424 + E_p 2,840,414 + D 6,644,547 + C 12,301 + LSTM 1,090,826 =
14,395,512 (one channel: 14,387,318).

Checkpoints: drnet-py saves pickled whole modules (``{'netD', 'netEP', 'netEC', 'opt'}``, ``{'lstm', 'opt'}``),
not state dicts, so no import function is provided.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import Baseline, init_dcgan_

STAGES = ("autoencoder", "lstm", "joint")
CONTENT_MODELS = ("dcgan_unet", "dcgan", "vgg_unet")
POSE_MODELS = ("dcgan", "resnet")


# ---------------------------------------------------------------------------------------------- blocks
def _levels(size: int) -> int:
    """Number of stride-2 levels from ``size`` down to 4 pixels (64 → 4, 128 → 5)."""
    if size < 8 or size & (size - 1):
        raise ValueError(f"DrNet takes square frames whose side is a power of two ≥ 8, got {size}")
    return int(math.log2(size)) - 2


def _widths(size: int, cap: int | None = 512) -> list[int]:
    """Channel width per level: 64, 128, 256, 512, then 512 (dcgan/vgg) or doubling (resnet, ``cap=None``)."""
    return [64 * 2**i if cap is None else min(64 * 2**i, cap) for i in range(_levels(size))]


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


def _vgg(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


def _vgg_depths(levels: int) -> list[int]:
    """Convolutions per VGG level: 2, 2, then 3 for every deeper level."""
    return [2 if i < 2 else 3 for i in range(levels)]


def _head(cin: int, dim: int) -> nn.Sequential:
    """4×4 valid convolution from the 4×4 map to a vector, BatchNorm, tanh."""
    return nn.Sequential(nn.Conv2d(cin, dim, 4, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())


def _stem(cin: int, cout: int) -> nn.Sequential:
    """Transposed 4×4 convolution from the 1×1 code to the 4×4 map, BatchNorm, LeakyReLU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 1, 0), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


class DcganEncoder(nn.Module):
    """Stride-2 conv levels, then a 4×4 head to a ``dim`` vector; returns (vector, feature maps per level)."""

    def __init__(self, channels: int, size: int, dim: int) -> None:
        super().__init__()
        widths = _widths(size)
        ins = [channels] + widths[:-1]
        self.levels = nn.ModuleList(_down(cin, cout) for cin, cout in zip(ins, widths, strict=True))
        self.head = _head(widths[-1], dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = []
        for level in self.levels:
            x = level(x)
            maps.append(x)
        return self.head(x).flatten(1), maps


class VggEncoder(nn.Module):
    """VGG levels of 3×3 convs (2, 2, 3, 3, …) with 2×2 max-pooling in between, then the 4×4 head."""

    def __init__(self, channels: int, size: int, dim: int) -> None:
        super().__init__()
        widths = _widths(size)
        self.levels = nn.ModuleList()
        cin = channels
        for width, depth in zip(widths, _vgg_depths(len(widths)), strict=True):
            self.levels.append(nn.Sequential(*(_vgg(cin if k == 0 else width, width) for k in range(depth))))
            cin = width
        self.head = _head(widths[-1], dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = []
        for k, level in enumerate(self.levels):
            x = level(x if k == 0 else F.max_pool2d(x, 2))
            maps.append(x)
        return self.head(F.max_pool2d(x, 2)).flatten(1), maps


class DcganDecoder(nn.Module):
    """1×1 code → 4×4 stem → transposed-conv levels (input concatenated with the encoder map when ``skips``)."""

    def __init__(self, code_dim: int, channels: int, size: int, skips: bool = True) -> None:
        super().__init__()
        widths = _widths(size)
        self.skips = skips
        k = 2 if skips else 1
        self.stem = _stem(code_dim, widths[-1])
        self.levels = nn.ModuleList(_up(k * widths[i], widths[i - 1]) for i in range(len(widths) - 1, 0, -1))
        self.out = nn.Sequential(nn.ConvTranspose2d(k * widths[0], channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, code: torch.Tensor, maps: list[torch.Tensor] | None = None) -> torch.Tensor:
        x = self.stem(code[:, :, None, None])
        layers = list(self.levels) + [self.out]
        for i, layer in enumerate(layers):
            if self.skips:
                x = torch.cat([x, maps[len(maps) - 1 - i]], 1)
            x = layer(x)
        return x


class VggDecoder(nn.Module):
    """1×1 code → 4×4 stem → per level: ×2 nearest upsampling, concat the encoder map, VGG convs."""

    def __init__(self, code_dim: int, channels: int, size: int) -> None:
        super().__init__()
        widths = _widths(size)
        depths = _vgg_depths(len(widths))
        self.stem = _stem(code_dim, widths[-1])
        self.levels = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            w, depth = widths[i], depths[i]
            convs = [_vgg(2 * w, w)] + [_vgg(w, w) for _ in range(depth - 2)] + [_vgg(w, widths[i - 1])]
            self.levels.append(nn.Sequential(*convs))
        self.out = nn.Sequential(_vgg(2 * widths[0], widths[0]), nn.ConvTranspose2d(widths[0], channels, 3, 1, 1),
                                 nn.Sigmoid())

    def forward(self, code: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        x = self.stem(code[:, :, None, None])
        for i, layer in enumerate(list(self.levels) + [self.out]):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = layer(torch.cat([x, maps[len(maps) - 1 - i]], 1))
        return x


class _BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convs with bias, BatchNorm, ReLU; 1×1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.project = None
        if stride != 1 or cin != cout:
            self.project = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.project is None else self.project(x)))


class ResNetPoseEncoder(nn.Module):
    """drnet-py's ``resnet`` pose network: 5×5/2 stem, 3×3/2 max-pool, two basic blocks per level, 3×3 head."""

    def __init__(self, channels: int, size: int, dim: int) -> None:
        super().__init__()
        widths = _widths(size, cap=None)
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 5, 2, 3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        self.levels = nn.ModuleList()
        cin = 64
        for i, w in enumerate(widths):
            self.levels.append(nn.Sequential(_BasicBlock(cin, w, 1 if i == 0 else 2), _BasicBlock(w, w, 1)))
            cin = w
        self.head = nn.Sequential(nn.Conv2d(widths[-1], dim, 3), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for level in self.levels:
            x = level(x)
        return self.head(x).flatten(1)


class DcganPoseEncoder(nn.Module):
    """The DCGAN trunk with a ``dim`` head, no skips (drnet-py's ``dcgan`` pose network)."""

    def __init__(self, channels: int, size: int, dim: int) -> None:
        super().__init__()
        self.net = DcganEncoder(channels, size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


class SceneDiscriminator(nn.Module):
    """MLP on [pose_a, pose_b] → logit that the two poses come from different clips."""

    def __init__(self, pose_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * pose_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, pose_a: torch.Tensor, pose_b: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([pose_a, pose_b], 1)).squeeze(1)


class PoseLSTM(nn.Module):
    """Linear embedding → stacked LSTM cells → linear + tanh (optionally L2-normalised); explicit state."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int, normalize: bool = False) -> None:
        super().__init__()
        self.hidden = hidden
        self.normalize = normalize
        self.embed = nn.Linear(in_dim, hidden)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, out_dim)

    def initial_state(self, ref: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        zeros = ref.new_zeros(ref.shape[0], self.hidden)
        return [(zeros, zeros) for _ in self.cells]

    def forward(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        h = self.embed(x)
        new_state = []
        for cell, hc in zip(self.cells, state, strict=True):
            hc = cell(h, hc)
            new_state.append(hc)
            h = hc[0]
        y = torch.tanh(self.out(h))
        return (F.normalize(y, p=2, dim=1) if self.normalize else y), new_state


# ----------------------------------------------------------------------------------------------- model
class DrNet(Baseline):
    """DrNet (Denton & Birodkar, NeurIPS 2017) after edenton/drnet-py; see the module docstring."""

    supports_swap: ClassVar[bool] = True

    output_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)  # its frames come out of a sigmoid
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "source": "edenton/drnet-py train_drnet.py (stage 1) and train_lstm.py (stage 2) argparse defaults",
        "stages": ("autoencoder", "lstm"),  # trained one after the other; top-level keys = stage 1
        "optimizer": "adam", "lr": 2e-3, "betas": (0.5, 0.999), "batch_size": 100,
        "epochs": 200, "steps_per_epoch": 600,
        "loss_weights": {"rec": 1.0, "sim": 1.0, "adv": 1e-4},
        "adversary": {"optimizer": "adam", "lr": 2e-3, "betas": (0.5, 0.999),
                      "order": "each step: one discriminator step, then one main step, on the same batch"},
        "autoencoder": {"optimizer": "adam", "lr": 2e-3, "betas": (0.5, 0.999), "batch_size": 100,
                        "epochs": 200, "steps_per_epoch": 600, "clip_frames": 20,
                        "loss_weights": {"rec": 1.0, "sim": 1.0, "adv": 1e-4}},
        "lstm": {"optimizer": "adam", "lr": 2e-4, "betas": (0.9, 0.999), "batch_size": 100,
                 "epochs": 200, "steps_per_epoch": 600, "cond_frames": 10, "train_horizon": 10,
                 "loss": "sum over the clip's steps of the per-step pose MSE, teacher forcing"},
        "joint": "no official setting (drnet-py trains the two stages one after the other)",
        "data": "Moving MNIST as drnet-py renders it: 2 digits, 64x64, channels=3 (digit n in channel n)",
    }

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int, *,
                 content_dim: int = 128, pose_dim: int = 10, content_model: str = "dcgan_unet",
                 pose_model: str = "dcgan", sd_nf: int = 100, sd_weight: float = 1e-4, rnn_size: int = 256,
                 rnn_layers: int = 2, normalize: bool = False, stage: str = "autoencoder",
                 frame_sampling: str = "first") -> None:
        super().__init__(frame_shape, cond_frames, train_horizon)
        channels, height, width = self.frame_shape
        if height != width:
            raise ValueError(f"DrNet takes square frames, got {height}×{width}")
        if content_model not in CONTENT_MODELS:
            raise ValueError(f"content_model must be one of {CONTENT_MODELS}, got {content_model!r}")
        if pose_model not in POSE_MODELS:
            raise ValueError(f"pose_model must be one of {POSE_MODELS}, got {pose_model!r}")
        if frame_sampling not in ("first", "random"):
            raise ValueError(f"frame_sampling must be 'first' or 'random', got {frame_sampling!r}")
        self.content_dim, self.pose_dim = int(content_dim), int(pose_dim)
        self.content_model, self.pose_model = content_model, pose_model
        self.sd_weight = float(sd_weight)
        self.normalize = bool(normalize)
        self.frame_sampling = frame_sampling
        code = self.content_dim + self.pose_dim
        if content_model == "vgg_unet":
            self.content_encoder = VggEncoder(channels, width, self.content_dim)
            self.decoder = VggDecoder(code, channels, width)
        else:
            self.content_encoder = DcganEncoder(channels, width, self.content_dim)
            self.decoder = DcganDecoder(code, channels, width, skips=content_model == "dcgan_unet")
        if pose_model == "resnet":
            self.pose_encoder = ResNetPoseEncoder(channels, width, self.pose_dim)
        else:
            self.pose_encoder = DcganPoseEncoder(channels, width, self.pose_dim)
        self.discriminator = SceneDiscriminator(self.pose_dim, sd_nf)
        self.pose_lstm = PoseLSTM(code, self.pose_dim, rnn_size, rnn_layers, normalize=self.normalize)
        init_dcgan_(self)
        self.stage = ""
        self.set_stage(stage)

    # ------------------------------------------------------------------------------------------ stages
    def _autoencoder(self) -> tuple[nn.Module, ...]:
        return (self.content_encoder, self.pose_encoder, self.decoder)

    def set_stage(self, stage: str) -> DrNet:
        """Select what ``training_terms`` trains (see the module docstring); freezes the rest."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        for m in self._autoencoder():
            m.requires_grad_(stage != "lstm")
        self.pose_lstm.requires_grad_(stage != "autoencoder")
        self.discriminator.requires_grad_(stage != "lstm")
        return self.train(self.training)

    def train(self, mode: bool = True) -> DrNet:
        super().train(mode)
        if self.stage == "lstm":  # frozen networks keep their running statistics
            for m in self._autoencoder():
                m.eval()
        return self

    # ---------------------------------------------------------------------------------------- encoding
    def _pose(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pose_encoder(x)
        return F.normalize(p, p=2, dim=1) if self.normalize else p

    def _poses(self, frames: torch.Tensor) -> torch.Tensor:
        """Poses (B, T, pose_dim) of frames (B, T, C, H, W); one encoder call per frame in train mode."""
        b, t = frames.shape[:2]
        if self.pose_encoder.training:
            return torch.stack([self._pose(frames[:, i]) for i in range(t)], 1)
        return self._pose(frames.flatten(0, 1)).view(b, t, -1)

    def _content(self, frame: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.content_encoder(frame)

    def _decode(self, content: tuple[torch.Tensor, list[torch.Tensor]], pose: torch.Tensor) -> torch.Tensor:
        vec, maps = content
        return self.decoder(torch.cat([vec, pose], 1), maps)

    def encode_content(self, cond: torch.Tensor) -> torch.Tensor:
        """Content vector (B, content_dim) of the last conditioning frame (its skip maps go with it)."""
        self.check_cond(cond)
        return self._content(cond[:, -1])[0]

    # ----------------------------------------------------------------------------------------- rollout
    def _lstm_warmup(self, poses: torch.Tensor, content_vec: torch.Tensor) -> list:
        """LSTM state after consuming the conditioning poses 0 … Tc−2 (the last one is the next input)."""
        state = self.pose_lstm.initial_state(content_vec)
        for i in range(poses.shape[1] - 1):
            _, state = self.pose_lstm(torch.cat([poses[:, i], content_vec], 1), state)
        return state

    def _rollout(self, state: list, last_pose: torch.Tensor, lstm_content: torch.Tensor,
                 decode_content: tuple[torch.Tensor, list[torch.Tensor]], horizon: int) -> torch.Tensor:
        pose, frames = last_pose, []
        for _ in range(horizon):
            pose, state = self.pose_lstm(torch.cat([pose, lstm_content], 1), state)
            frames.append(self._decode(decode_content, pose))
        return torch.stack(frames, 1)

    def _pose_forecast(self, cond: torch.Tensor, decode_content, horizon: int) -> torch.Tensor:
        own = self._content(cond[:, -1])
        poses = self._poses(cond)
        state = self._lstm_warmup(poses, own[0])
        return self._rollout(state, poses[:, -1], own[0], own if decode_content is None else decode_content,
                             horizon)

    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        self.check_cond(cond)
        return self._pose_forecast(cond, None, int(horizon))

    def swap_forecast(self, cond: torch.Tensor, content_cond: torch.Tensor, horizon: int) -> torch.Tensor:
        """``forecast(cond, horizon)``'s pose trajectory decoded with the content of ``content_cond``."""
        self.check_cond(cond)
        self.check_cond(content_cond)
        return self._pose_forecast(cond, self._content(content_cond[:, -1]), int(horizon))

    # ---------------------------------------------------------------------------------------- training
    def _clip(self, cond: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_cond(cond)
        if target.dim() != 5 or tuple(target.shape[2:]) != self.frame_shape or target.shape[0] != cond.shape[0]:
            raise ValueError(f"DrNet expects target frames (B, T, {', '.join(map(str, self.frame_shape))}), "
                             f"got {tuple(target.shape)}")
        return torch.cat([cond, target], 1)

    def _pick(self, x: torch.Tensor, count: int) -> list[torch.Tensor]:
        """``count`` frames per clip: the first ones (Moving MNIST) or uniform draws per clip (KTH)."""
        b, t = x.shape[:2]
        if self.frame_sampling == "first":
            if t < count:
                raise ValueError(f"DrNet's stage 1 needs {count} frames per clip, got {t}")
            return [x[:, i] for i in range(count)]
        idx = torch.randint(t, (count, b), device=x.device)
        rows = torch.arange(b, device=x.device)
        return [x[rows, idx[k]] for k in range(count)]

    def _discriminate(self, pose_a: torch.Tensor, pose_b: torch.Tensor, detach_weights: bool) -> torch.Tensor:
        if not detach_weights:
            return self.discriminator(pose_a, pose_b)
        params = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return torch.func.functional_call(self.discriminator, params, (pose_a, pose_b))

    def _autoencoder_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x_c1, x_c2, x_p1, x_p2 = self._pick(x, 4)
        content = self._content(x_c1)
        with torch.no_grad():
            content_other = self._content(x_c2)[0]
        pose = self._pose(x_p1)
        pose_other = self._pose(x_p2).detach()
        rec = F.mse_loss(self._decode(content, pose), x_p1)
        sim = F.mse_loss(content[0], content_other)
        logits = self._discriminate(pose, pose_other, detach_weights=True)
        adv = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))
        return {"rec": rec, "sim": sim, "adv": adv, "loss": rec + sim + self.sd_weight * adv}

    def _lstm_terms(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], list, torch.Tensor, tuple]:
        tc = self.cond_frames
        with torch.no_grad():
            content = self._content(x[:, tc - 1])
            poses = self._poses(x)
        vec = content[0]
        state = self.pose_lstm.initial_state(vec)
        loss = x.new_zeros(())
        cond_state = state
        for i in range(1, x.shape[1]):
            pred, state = self.pose_lstm(torch.cat([poses[:, i - 1], vec], 1), state)
            loss = loss + F.mse_loss(pred, poses[:, i])
            if i == tc - 1:
                cond_state = state
        if tc == 1:
            cond_state = self.pose_lstm.initial_state(vec)
        return {"pose_mse": loss, "loss": loss}, cond_state, poses, content

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        """One step of the selected stage; ``"mse"``: the free-running forecast of ``target`` (no gradient)."""
        x = self._clip(cond, target)
        horizon = target.shape[1]
        terms: dict[str, torch.Tensor] = {}
        if self.stage in ("autoencoder", "joint"):
            terms.update(self._autoencoder_terms(x))
        if self.stage in ("lstm", "joint"):
            lstm_terms, cond_state, poses, content = self._lstm_terms(x)
            terms["pose_mse"] = lstm_terms["pose_mse"]
            terms["loss"] = terms.get("loss", 0.0) + lstm_terms["loss"]
            with torch.no_grad():
                pred = self._rollout([(h.detach(), c.detach()) for h, c in cond_state], poses[:, self.cond_frames - 1],
                                     content[0], content, horizon)
        else:
            with torch.no_grad():
                pred = self._pose_forecast(cond, None, horizon)
        terms["mse"] = F.mse_loss(pred, target)
        return terms

    # ---------------------------------------------------------------------------------------- adversary
    def adversary_parameters(self) -> list[nn.Parameter]:
        return [] if self.stage == "lstm" else list(self.discriminator.parameters())

    def adversary_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        """The scene discriminator's BCE on detached poses of two frames per clip (half the pairs shuffled)."""
        if self.stage == "lstm":
            return super().adversary_terms(cond, target, step=step)
        x = self._clip(cond, target)
        x1, x2 = self._pick(x, 2)
        with torch.no_grad():
            pose_a, pose_b = self._pose(x1), self._pose(x2)
        b = x.shape[0]
        half = b // 2
        pose_b = torch.cat([pose_b[:half][torch.randperm(half, device=x.device)], pose_b[half:]], 0)
        labels = torch.cat([x.new_ones(half), x.new_zeros(b - half)])
        logits = self._discriminate(pose_a, pose_b, detach_weights=False)
        bce = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).to(labels.dtype) == labels).to(labels.dtype).mean().detach()
        return {"loss": bce, "bce": bce, "accuracy": accuracy}

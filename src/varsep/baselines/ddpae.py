"""DDPAE: the decompositional disentangled predictive auto-encoder.

Paper: Jun-Ting Hsieh, Bingbin Liu, De-An Huang, Li Fei-Fei, Juan Carlos Niebles, "Learning to Decompose and
Disentangle Representations for Video Prediction", NeurIPS 2018. Official code:
github.com/jthsieh/DDPAE-video-prediction (``models/DDPAE.py``, ``models/pose_rnn.py``, ``models/networks/``,
``utils/DDPAE_utils.py``; Pyro 0.2, which needs PyTorch 0.4.0, though its README names 0.3.1), which produced
the published numbers.

Model. A frame is the sum of N components (2 for two digits), clamped at 1. Component i has one
time-invariant **content** z_i (128-D) and a **pose** p_t,i = (s, x, y) at every frame; a decoder turns z_i into
an object image (half the frame's side, sigmoid) and a spatial transformer places it with θ = [[s, 0, x],
[0, s, y]] (an output pixel at u ∈ [−1, 1]² samples the object at s·u + (x, y)).

Pose. p_t,i is the running sum of per-frame transitions, raw_t = p0_i + Σ_{k ≤ t} β_k,i (frame 1 already
includes β_1), constrained after the sum: s = clamp(raw_s, S − 1, S + 1) with the scale prior S (2 for
Moving MNIST), x = tanh(raw_x)·(s − ½), y = tanh(raw_y)·(s − ½).

Inference (all from the conditioning frames only):
- a frame encoder (DCGAN-like, bias-free convs, ngf 8) gives a 256-D code r_t of each conditioning frame;
- the pose encoder, an LSTM cell (256 + 64 → 64), runs over the frames for each component in turn, fed
  [r_t, h_t of the previous component] (zeros for the first) and started from zeros: a recurrence over time and
  components; linear heads give q(β_t) = N(μ, softplus(σ̃)) from its outputs;
- an LSTM over the **components axis**, on each component's first-frame hidden state, gives q(p0_i);
- a predictor LSTM cell (64 + 64 → 64), started from each component's final encoder state and fed [its own
  previous output (the encoder's last one at first), h of the previous component at the same step], rolls out
  the future transitions' q(β) through the same heads — for any horizon; it never sees sampled β, so the future
  poses are a function of the conditioning frames;
- each conditioning frame is cropped at each component's (sampled) pose by the inverse transformer (θ⁻¹ =
  [[1/s, 0, −x/s], [0, 1/s, −y/s]]); an object encoder codes the crops, an LSTM over the frames (shared by the
  components) and a linear layer give q(z_i) = N(μ, softplus(σ̃)).

Generative model: fixed priors β ~ N(0, 0.1²), p0 ~ N((S, 0, 0), diag(0.2, 1, 1)²), z ~ N(0, I); likelihood
N(x̂, 0.3²) per pixel over **every** frame (conditioning and targets). Training minimises the negative ELBO
as the official code's Pyro ``Trace_ELBO`` estimates it: one reparameterised sample of every latent, and

    −ELBO = −log N(x | x̂, 0.3²) + Σ_sites [log q(site) − log p(site)]   (summed over all elements),

i.e. a single-sample Monte-Carlo KL, not the analytic one (``kl="analytic"`` takes the closed form).
The noise of one pass is drawn from torch's global RNG in the official order: the conditioning transitions,
the future transitions, the initial poses, then the contents.

Forecast: every latent at its posterior mean (crops at the mean poses), the output clamped to [0, 1], as the
official ``test``; ``forecast_samples`` draws every latent from q. ``swap_forecast`` keeps one sequence's poses
and takes each component's content from another (component i for component i).

Training (``DEFAULTS``, the official ``scripts/train_mnist.sh`` and argparse defaults): Adam lr 1e-3, betas
(0.5, 0.999), batch 64, 1273 epochs of 157 iterations (≈ 200 k), the learning rate ×0.1 from epoch 636, no
clipping, 10 conditioning and 10 target frames.

Parameters for 64×64×1 frames and 2 components: **706,364**, as the official model instantiated (frame
encoder 305,504, pose encoder 98,816, predictor 49,664, four heads 780, initial-pose LSTM 33,280, content LSTM
and head 66,304, object encoder 76,000, object decoder 76,016).

Terms: ``"loss"`` is the −ELBO per sequence (the official sum over the batch, divided by its size; Adam takes the
same steps but for its ε, negligible at either scale), ``"nll"`` and ``"kl"`` its two parts,
``"loss_per_element"`` the value the official code logs, ``"mse"`` and ``"rec"`` the MSE of the sampled
reconstruction of the target and of the conditioning frames.

Official checkpoints (four state dicts per epoch) map onto this module in :mod:`varsep.baselines.ddpae_official`
(``varsep import-weights --model ddpae``).

Not provided: the official options ``independent_components`` (the predictor without its neighbour's state)
and ``when_to_predict_only`` (the likelihood on the targets only after some training), which its scripts
leave off.

Deviations (docs/baselines.md): the −ELBO divided by the batch size (above); the object decoder runs once
per sequence and component, not once per frame on identical copies (the same outputs and BatchNorm batch
statistics; its running variance's n/(n−1) factor uses the smaller n); square frames
whose side is a power of two ≥ 16 and any number of channels (the official code: 64×64, one channel for
Moving MNIST); the transformers use ``align_corners=True``, PyTorch 0.3/0.4's behaviour, explicitly; the
posterior heads, poses, spatial transformer and loss run in float32 under any autocast.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import Baseline, init_dcgan_

KL_ESTIMATORS = ("sample", "analytic")
OBS_STD = 0.3
BETA_PRIOR_STD = 0.1
INITIAL_POSE_PRIOR_STD = (0.2, 1.0, 1.0)


# ------------------------------------------------------------------------------------------------ networks
def _layers(size: int) -> int:
    """The official ``n_layers`` of a square image of side ``size``: log2(size) − 1 convs down to 1×1."""
    if size < 8 or size & (size - 1):
        raise ValueError(f"DDPAE's image networks take square images whose side is a power of two ≥ 8, got {size}")
    return int(math.log2(size)) - 1


class ImageEncoder(nn.Module):
    """Image (C, S, S) → code: a bias-free 4×4 stride-2 conv + LeakyReLU(0.2), then stride-2 convs + BatchNorm +
    LeakyReLU doubling the width from ``ngf``, then a 4×4 conv from 4×4 to 1×1 (no activation)."""

    def __init__(self, channels: int, size: int, dim: int, ngf: int = 8) -> None:
        super().__init__()
        n = _layers(size)
        layers: list[nn.Module] = [nn.Conv2d(channels, ngf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        width = ngf
        for _ in range(n - 2):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        layers.append(nn.Conv2d(width, dim, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


class ImageDecoder(nn.Module):
    """Code → image (C, S, S) in (0, 1): a bias-free 4×4 transposed conv to 4×4, stride-2 transposed convs
    halving the width down to ``ngf`` (BatchNorm + ReLU after each), a last one to C channels and a sigmoid."""

    def __init__(self, dim: int, channels: int, size: int, ngf: int = 8) -> None:
        super().__init__()
        n = _layers(size)
        width = ngf * 2 ** (n - 2)
        layers: list[nn.Module] = [nn.ConvTranspose2d(dim, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True)]
        for _ in range(n - 2):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                       nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


def place(objects: torch.Tensor, pose: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Objects (M, C, s, s) placed in frames of ``size`` at poses (M, 3) = (scale, x, y): θ = [[s, 0, x], [0, s, y]].

    In float32 under any autocast (a bf16 grid would misplace objects by a fraction of a pixel)."""
    with torch.autocast(objects.device.type, enabled=False):
        pose = pose.float()
        zero = torch.zeros_like(pose[:, 0])
        theta = torch.stack([pose[:, 0], zero, pose[:, 1], zero, pose[:, 0], pose[:, 2]], dim=1).view(-1, 2, 3)
        grid = F.affine_grid(theta, [objects.shape[0], objects.shape[1], *size], align_corners=True)
        return F.grid_sample(objects.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def crop(frames: torch.Tensor, pose: torch.Tensor, size: int) -> torch.Tensor:
    """The inverse of :func:`place`: the (M, C, size, size) windows of frames (M, C, H, W) at poses (M, 3)."""
    inverse = torch.stack([1 / pose[:, 0], -pose[:, 1] / pose[:, 0], -pose[:, 2] / pose[:, 0]], dim=1)
    return place(frames, inverse, (size, size))


def constrain(raw: torch.Tensor, scale_prior: float) -> torch.Tensor:
    """Raw poses (…, 3) → (s, x, y): s clamped to [S − 1, S + 1], x, y = tanh(·)·(s − ½)."""
    s = raw[..., 0].clamp(scale_prior - 1, scale_prior + 1)
    return torch.stack([s, torch.tanh(raw[..., 1]) * (s - 0.5), torch.tanh(raw[..., 2]) * (s - 0.5)], dim=-1)


class Gaussian:
    """A diagonal Gaussian site: its mean, its standard deviation and (after :meth:`draw`) its value."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean, std
        self.value = mean

    def draw(self, sample: bool) -> torch.Tensor:
        self.value = self.mean + self.std * torch.randn_like(self.mean) if sample else self.mean
        return self.value

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return _normal_log_prob(value, self.mean, self.std)


def _normal_log_prob(value: torch.Tensor, mean: torch.Tensor | float, std: torch.Tensor | float) -> torch.Tensor:
    """Σ log N(value | mean, std²) over every element."""
    std = torch.as_tensor(std, dtype=value.dtype, device=value.device)
    return (-((value - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum()


def _normal_kl(q: Gaussian, mean: torch.Tensor | float, std: torch.Tensor | float) -> torch.Tensor:
    """Σ KL(N(q.mean, q.std²) ‖ N(mean, std²)) over every element."""
    std = torch.as_tensor(std, dtype=q.mean.dtype, device=q.mean.device)
    return (torch.log(std / q.std) + (q.std**2 + (q.mean - mean) ** 2) / (2 * std**2) - 0.5).sum()


# ---------------------------------------------------------------------------------------------------- model
class DDPAE(Baseline):
    """Hsieh et al.'s decompositional predictive auto-encoder (see the module docstring)."""

    output_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)  # its frames come out of a sigmoid
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "optimizer": "Adam", "lr": 1e-3, "betas": (0.5, 0.999), "batch_size": 64, "epochs": 1273,
        "batches_per_epoch": 157, "lr_milestones": [636], "gamma": 0.1, "cond_frames": 10, "train_horizon": 10,
        "loss": "−ELBO (single-sample Monte-Carlo, Gaussian likelihood σ 0.3 over all frames), KL weight 1",
        "source": "jthsieh/DDPAE-video-prediction scripts/train_mnist.sh, args/, models/DDPAE.py, models/pose_rnn.py",
    }
    supports_swap: ClassVar[bool] = True

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int, *,
                 components: int = 2, content_dim: int = 128, image_dim: int = 256, hidden: int = 64,
                 ngf: int = 8, scale_prior: float = 2.0, kl: str = "sample") -> None:
        super().__init__(frame_shape, cond_frames, train_horizon)
        c, h, w = self.frame_shape
        if h != w or h < 16 or h & (h - 1):
            raise ValueError(f"DDPAE takes square frames whose side is a power of two ≥ 16, got {h}×{w}")
        if kl not in KL_ESTIMATORS:
            raise ValueError(f"kl must be one of {KL_ESTIMATORS}, got {kl!r}")
        if components < 1 or scale_prior <= 1:
            raise ValueError(f"DDPAE needs components ≥ 1 and scale_prior > 1, got {components}, {scale_prior}")
        self.components, self.content_dim, self.hidden = int(components), int(content_dim), int(hidden)
        self.object_size = h // 2
        self.scale_prior = float(scale_prior)
        self.kl = kl
        # pose inference
        self.frame_encoder = ImageEncoder(c, h, image_dim, ngf)
        self.pose_encoder = nn.LSTMCell(image_dim + hidden, hidden)
        self.pose_predictor = nn.LSTMCell(2 * hidden, hidden)
        self.beta_mean, self.beta_std = nn.Linear(hidden, 3), nn.Linear(hidden, 3)
        self.initial_pose_rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.initial_pose_mean, self.initial_pose_std = nn.Linear(hidden, 3), nn.Linear(hidden, 3)
        # content inference and rendering
        self.object_encoder = ImageEncoder(c, self.object_size, content_dim, ngf)
        self.content_rnn = nn.LSTM(content_dim, hidden, batch_first=True)
        self.content_head = nn.Linear(hidden, 2 * content_dim)
        self.object_decoder = ImageDecoder(content_dim, c, self.object_size, ngf)
        init_dcgan_(self)  # the official initialisation

    # ------------------------------------------------------------------------------------ inference
    def _gaussian(self, mean: nn.Linear, std: nn.Linear, features: torch.Tensor) -> Gaussian:
        """A posterior site from its two heads, in float32 under any autocast: poses are running sums of these
        means that place objects to a fraction of a pixel (bf16 heads misplace them by ~0.1 pixel)."""
        with torch.autocast(features.device.type, enabled=False):
            features = features.float()
            return Gaussian(mean(features), F.softplus(std(features)))

    def _beta(self, out: torch.Tensor) -> Gaussian:
        return self._gaussian(self.beta_mean, self.beta_std, out)

    def infer_poses(self, cond: torch.Tensor, horizon: int) -> tuple[Gaussian, Gaussian, Gaussian]:
        """q of the conditioning transitions (B, Tc, N, 3), the future ones (B, horizon, N, 3) and the initial
        poses (B, N, 3)."""
        b, tc = cond.shape[:2]
        codes = self.frame_encoder(cond.flatten(0, 1)).view(b, tc, -1)
        zeros = codes.new_zeros(b, self.hidden)
        above = [zeros] * tc  # the previous component's hidden state at each frame
        outputs, firsts, finals = [], [], []
        for _ in range(self.components):
            state = (zeros, zeros)
            column = []
            for t in range(tc):
                state = self.pose_encoder(torch.cat([codes[:, t], above[t]], dim=1), state)
                column.append(state[0])
            above = column
            outputs.append(torch.stack(column, dim=1))
            firsts.append(column[0])
            finals.append(state)
        beta_cond = self._beta(torch.stack(outputs, dim=2))  # (B, Tc, N, ·)
        initial = self.initial_pose_rnn(torch.stack(firsts, dim=1))[0]  # over the components
        p0 = self._gaussian(self.initial_pose_mean, self.initial_pose_std, initial)
        above = [zeros] * horizon
        future = []
        for i in range(self.components):
            state, previous = finals[i], finals[i][0]
            column = []
            for t in range(horizon):
                state = self.pose_predictor(torch.cat([previous, above[t]], dim=1), state)
                previous = state[0]
                column.append(previous)
            above = column
            future.append(torch.stack(column, dim=1))
        beta_future = self._beta(torch.stack(future, dim=2))  # (B, horizon, N, ·)
        return beta_cond, beta_future, p0

    def poses(self, beta_cond: torch.Tensor, beta_future: torch.Tensor, p0: torch.Tensor) -> torch.Tensor:
        """Constrained poses (B, Tc + horizon, N, 3) from transitions and initial poses."""
        raw = p0[:, None] + torch.cumsum(torch.cat([beta_cond, beta_future], dim=1), dim=1)
        return constrain(raw, self.scale_prior)

    def infer_content(self, cond: torch.Tensor, cond_poses: torch.Tensor) -> Gaussian:
        """q of each component's content (B, N, content_dim) from the crops of the conditioning frames at
        the poses (B, Tc, N, 3)."""
        b, tc, n = cond_poses.shape[:3]
        frames = cond[:, :, None].expand(-1, -1, n, -1, -1, -1).flatten(0, 2)
        crops = crop(frames, cond_poses.flatten(0, 2), self.object_size)
        codes = self.object_encoder(crops).view(b, tc, n, -1).transpose(1, 2).flatten(0, 1)  # (B·N, Tc, ·)
        last = self.content_rnn(codes)[0][:, -1]
        with torch.autocast(cond.device.type, enabled=False):
            head = self.content_head(last.float()).view(b, n, -1)
        return Gaussian(head[..., :self.content_dim], F.softplus(head[..., self.content_dim:]))

    def render(self, content: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, C, H, W): the sum over components of each decoded object placed at its pose, clamped
        at 1."""
        b, t, n = poses.shape[:3]
        objects = self.object_decoder(content.flatten(0, 1)).view(b, 1, n, *self.frame_shape[:1],
                                                                  self.object_size, self.object_size)
        objects = objects.expand(-1, t, -1, -1, -1, -1).flatten(0, 2)
        placed = place(objects, poses.flatten(0, 2), self.frame_shape[1:]).view(b, t, n, *self.frame_shape)
        return placed.sum(dim=2).clamp(max=1.0)

    def infer(self, cond: torch.Tensor, horizon: int, *, sample: bool) -> dict[str, Any]:
        """Every posterior site, drawn (``sample``) or at its mean, in the official order, and the poses."""
        beta_cond, beta_future, p0 = self.infer_poses(cond, horizon)
        for site in (beta_cond, beta_future, p0):
            site.draw(sample)
        poses = self.poses(beta_cond.value, beta_future.value, p0.value)
        content = self.infer_content(cond, poses[:, :cond.shape[1]])
        content.draw(sample)
        return {"beta_cond": beta_cond, "beta_future": beta_future, "p0": p0, "content": content, "poses": poses}

    # ------------------------------------------------------------------------------------ the contract
    def _future(self, content: torch.Tensor, poses: torch.Tensor, cond_frames: int) -> torch.Tensor:
        """The frames after the conditioning ones, clamped to [0, 1] as the official ``test``."""
        return self.render(content, poses[:, cond_frames:]).clamp(0.0, 1.0)

    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        self.check_cond(cond)
        sites = self.infer(cond, horizon, sample=False)
        return self._future(sites["content"].value, sites["poses"], cond.shape[1])

    def forecast_samples(self, cond: torch.Tensor, horizon: int, samples: int) -> torch.Tensor:
        self.check_cond(cond)
        draws = []
        for _ in range(samples):
            sites = self.infer(cond, horizon, sample=True)
            draws.append(self._future(sites["content"].value, sites["poses"], cond.shape[1]))
        return torch.stack(draws)

    def encode_content(self, cond: torch.Tensor) -> torch.Tensor:
        """Each component's posterior-mean content (B, N, content_dim)."""
        self.check_cond(cond)
        return self.infer(cond, 1, sample=False)["content"].mean

    def swap_forecast(self, cond: torch.Tensor, content_cond: torch.Tensor, horizon: int) -> torch.Tensor:
        self.check_cond(cond)
        poses = self.infer(cond, horizon, sample=False)["poses"]
        return self._future(self.encode_content(content_cond), poses, cond.shape[1])

    def negative_elbo(self, sites: dict[str, Any], frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """−ELBO summed over every element of ``frames`` (B, Tc + horizon, C, H, W), its likelihood and KL terms."""
        recon = self.render(sites["content"].value, sites["poses"])
        nll = -_normal_log_prob(frames, recon, OBS_STD)
        prior_mean0 = frames.new_tensor([self.scale_prior, 0.0, 0.0])
        priors = {"beta_cond": (0.0, BETA_PRIOR_STD), "beta_future": (0.0, BETA_PRIOR_STD),
                  "p0": (prior_mean0, frames.new_tensor(INITIAL_POSE_PRIOR_STD)), "content": (0.0, 1.0)}
        kl = frames.new_zeros(())
        for name, (mean, std) in priors.items():
            site: Gaussian = sites[name]
            if self.kl == "analytic":
                kl = kl + _normal_kl(site, mean, std)
            else:  # Pyro's Trace_ELBO: log q − log p at the one sample drawn
                kl = kl + site.log_prob(site.value) - _normal_log_prob(site.value, mean, std)
        return {"neg_elbo": nll + kl, "nll": nll, "kl": kl, "recon": recon}

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        del step  # no schedule
        self.check_cond(cond)
        frames = torch.cat([cond, target], dim=1).float()
        sites = self.infer(cond, target.shape[1], sample=True)
        terms = self.negative_elbo(sites, frames)
        batch, recon = frames.shape[0], terms["recon"]
        # per sequence: the official sum over the batch, divided by its size (Adam's steps are the same but for ε)
        return {"loss": terms["neg_elbo"] / batch, "nll": terms["nll"] / batch, "kl": terms["kl"] / batch,
                "loss_per_element": terms["neg_elbo"].detach() / frames.numel(),  # what the official code logs
                "mse": ((recon[:, cond.shape[1]:] - target) ** 2).mean(),
                "rec": ((recon[:, :cond.shape[1]] - cond) ** 2).mean()}


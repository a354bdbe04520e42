"""SVG-LP: stochastic video generation with a learned prior.

Paper: Emily Denton and Rob Fergus, "Stochastic Video Generation with a Learned Prior", ICML 2018.
Official code: github.com/edenton/svg (``train_svg_lp.py``, ``generate_svg_lp.py``, ``models/``).

Model. An encoder E maps a frame to g_t (``g_dim``, tanh) and its feature maps; a decoder D maps a predicted
code back to a frame (sigmoid) with skip connections to those maps. Three LSTMs (each: linear embedding,
stacked LSTM cells): the frame predictor ([g_{t−1}, z_t] → ĝ_t, linear + tanh output, 2 layers), the
posterior q(z_t | x_{≤t}) (input E(x_t), 1 layer) and the learned prior p(z_t | x_{<t}) (input E(x_{t−1}),
1 layer), the Gaussian LSTMs with linear heads for μ and log σ².

Training (``training_terms``, teacher forcing throughout, as in ``train_svg_lp.py``): on the clip
x_0 … x_{T−1} = [cond, target], for t = 1 … T−1: g = E(x_{t−1}), z_t ~ q(·|E(x_t)) (reparameterised, torch's
global RNG), x̂_t = D(predictor([g, z_t]), skips), with the skip maps of x_{t−1} while t < Tc and from then
on those of x_{Tc−2}, the last ones the code's loop takes (not the last conditioning frame x_{Tc−1};
``last_frame_skip=True``: always x_{t−1}). Loss = Σ_t MSE(x̂_t, x_t) + β Σ_t KL(q_t ‖ p_t), the Gaussian KL
summed over z and averaged over the batch; every network is trained. Terms: ``"rec"`` (the Σ_t MSE in the
loss, conditioning frames included), ``"kl"``, ``"loss"`` and ``"mse"``: the mean MSE of the teacher-forced
one-step predictions of the ``target`` frames (what this step predicts for them; not a free-running
forecast).

Forecast. Conditioning phase (t < Tc): posterior on the true frame, prior stepped on the previous one, the
predictor fed [E(x_{t−1}), z_t]. Then the prior gives z_t from the encoding of the previous (predicted) frame
and each decoded frame is encoded again for the next step (same skip rule as in training); any horizon.
``forecast`` is deterministic: the posterior's mean in the conditioning phase (as the code's "approx.
posterior" reconstruction) and the learned prior's mean μ_p afterwards. ``forecast_samples`` draws z from the
posterior (conditioning) and from the learned prior (prediction) with torch's global RNG, all samples folded
into the batch in one pass. Evaluation protocol of the paper / ``generate_svg_lp.py``: N = 100 samples per
test sequence, each scored against the ground truth (per-frame SSIM and PSNR, averaged over channels) and
the best sample reported, the best being the one with the highest mean SSIM over the predicted frames (the
script ranks the samples by it).

Follows the official code: the dcgan (64×64, SM-MNIST default) and vgg (KTH, BAIR) encoder/decoder families
(128×128 and other powers of two by the same rule), sizes (g 128, z 10, rnn 256, predictor 2 layers,
posterior/prior 1 layer), β = 1e-4, the loss (sum over steps of per-frame mean MSE, KL / batch), teacher
forcing, the skip-frame rule, the input order [g, z] and initialisation (conv/linear N(0, .02), BatchNorm
N(1, .02), biases 0, LSTM cells PyTorch default), one encoder call per frame in train mode (BatchNorm batch
statistics over one frame of the batch).

Does not follow (deviations):
- Each frame is encoded once per step and reused as target and as next input (the code encodes it twice;
  same values and gradients, BatchNorm running averages updated fewer times).
- Evaluation runs in whatever mode the module is in; ``generate_svg_lp.py`` keeps encoder/decoder in train
  mode (batch statistics) when sampling. With Tc = 1 (impossible in the code, whose skips would be
  undefined) the skips of the single conditioning frame are used.
- ``forecast`` (prior mean) is an addition for the deterministic contract; the paper only samples.

Reference configuration (parameter counts, /work/notes/issue18_baselines_spec.md §11): SM-MNIST, the README
command (2 digits, 64×64×1, dcgan, g_dim 128, z_dim 10, rnn 256, β 1e-4, 5 → 10 frames): encoder 3,805,376 +
decoder 6,558,529 + predictor 1,121,152 + posterior 564,500 + prior 564,500 = 12,614,057.

Checkpoints: the official code saves pickled whole modules (``{'encoder', 'decoder', 'frame_predictor',
'posterior', 'prior', 'opt'}``), not state dicts, so no import function is provided.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import Baseline, init_dcgan_

MODELS = ("dcgan", "vgg")


# ---------------------------------------------------------------------------------------------- blocks
def _levels(size: int) -> int:
    if size < 8 or size & (size - 1):
        raise ValueError(f"SVG takes square frames whose side is a power of two ≥ 8, got {size}")
    return int(math.log2(size)) - 2


def _widths(size: int) -> list[int]:
    return [min(64 * 2**i, 512) for i in range(_levels(size))]


def _depths(levels: int) -> list[int]:
    return [2 if i < 2 else 3 for i in range(levels)]


def _block(kind: str, cin: int, cout: int) -> nn.Sequential:
    """Conv + BatchNorm + LeakyReLU(0.2): 4×4 stride 2 (down), transposed 4×4 stride 2 (up), 3×3 (vgg)."""
    conv = {"down": lambda: nn.Conv2d(cin, cout, 4, 2, 1), "up": lambda: nn.ConvTranspose2d(cin, cout, 4, 2, 1),
            "vgg": lambda: nn.Conv2d(cin, cout, 3, 1, 1)}[kind]()
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


class Encoder(nn.Module):
    """Frame → (g vector, feature map of each level); dcgan: stride-2 convs, vgg: 3×3 convs + max-pooling."""

    def __init__(self, kind: str, channels: int, size: int, dim: int) -> None:
        super().__init__()
        widths = _widths(size)
        self.pool = kind == "vgg"
        self.levels = nn.ModuleList()
        cin = channels
        for w, depth in zip(widths, _depths(len(widths)), strict=True):
            if kind == "vgg":
                self.levels.append(nn.Sequential(*(_block("vgg", cin if k == 0 else w, w) for k in range(depth))))
            else:
                self.levels.append(_block("down", cin, w))
            cin = w
        self.head = nn.Sequential(nn.Conv2d(widths[-1], dim, 4, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = []
        for k, level in enumerate(self.levels):
            x = level(F.max_pool2d(x, 2) if self.pool and k > 0 else x)
            maps.append(x)
        return self.head(F.max_pool2d(x, 2) if self.pool else x).flatten(1), maps


class Decoder(nn.Module):
    """Code → 4×4 map → levels that each take [previous output, encoder map]; sigmoid output."""

    def __init__(self, kind: str, channels: int, size: int, dim: int) -> None:
        super().__init__()
        widths = _widths(size)
        depths = _depths(len(widths))
        self.upsample = kind == "vgg"
        self.stem = nn.Sequential(nn.ConvTranspose2d(dim, widths[-1], 4, 1, 0), nn.BatchNorm2d(widths[-1]),
                                  nn.LeakyReLU(0.2, inplace=True))
        self.levels = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            w = widths[i]
            if kind == "vgg":
                convs = [_block("vgg", 2 * w, w)] + [_block("vgg", w, w) for _ in range(depths[i] - 2)]
                self.levels.append(nn.Sequential(*convs, _block("vgg", w, widths[i - 1])))
            else:
                self.levels.append(_block("up", 2 * w, widths[i - 1]))
        if kind == "vgg":
            self.out = nn.Sequential(_block("vgg", 2 * widths[0], widths[0]),
                                     nn.ConvTranspose2d(widths[0], channels, 3, 1, 1), nn.Sigmoid())
        else:
            self.out = nn.Sequential(nn.ConvTranspose2d(2 * widths[0], channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, code: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        x = self.stem(code[:, :, None, None])
        for i, layer in enumerate(list(self.levels) + [self.out]):
            if self.upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = layer(torch.cat([x, maps[len(maps) - 1 - i]], 1))
        return x


class _Recurrent(nn.Module):
    """Linear embedding followed by stacked LSTM cells; state passed explicitly."""

    def __init__(self, in_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Linear(in_dim, hidden)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))

    def initial_state(self, ref: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        zeros = ref.new_zeros(ref.shape[0], self.hidden)
        return [(zeros, zeros) for _ in self.cells]

    def run(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        h = self.embed(x)
        new_state = []
        for cell, hc in zip(self.cells, state, strict=True):
            hc = cell(h, hc)
            new_state.append(hc)
            h = hc[0]
        return h, new_state


class FramePredictor(_Recurrent):
    """[g_{t−1}, z_t] → ĝ_t (linear + tanh head)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int) -> None:
        super().__init__(in_dim, hidden, layers)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        h, state = self.run(x, state)
        return torch.tanh(self.out(h)), state


class GaussianLSTM(_Recurrent):
    """Code → (μ, log σ²) of z_t (two linear heads)."""

    def __init__(self, in_dim: int, z_dim: int, hidden: int, layers: int) -> None:
        super().__init__(in_dim, hidden, layers)
        self.mu = nn.Linear(hidden, z_dim)
        self.logvar = nn.Linear(hidden, z_dim)

    def forward(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, torch.Tensor, list]:
        h, state = self.run(x, state)
        return self.mu(h), self.logvar(h), state


def _sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) summed over every element and divided by the batch size."""
    kl = 0.5 * (logvar_p - logvar_q) + (logvar_q.exp() + (mu_q - mu_p) ** 2) / (2 * logvar_p.exp()) - 0.5
    return kl.sum() / mu_q.shape[0]


# ----------------------------------------------------------------------------------------------- model
class SVGLP(Baseline):
    """SVG-LP (Denton & Fergus, ICML 2018) after edenton/svg; see the module docstring."""

    stochastic: ClassVar[bool] = True

    output_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)  # its frames come out of a sigmoid
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "source": "edenton/svg train_svg_lp.py argparse defaults and the README's SM-MNIST command",
        "optimizer": "adam", "lr": 2e-3, "betas": (0.9, 0.999), "batch_size": 100,
        "epochs": 300, "steps_per_epoch": 600,
        "loss_weights": {"rec": 1.0, "kl": 1e-4},  # beta
        "cond_frames": 5, "train_horizon": 10, "eval_frames": 30,  # n_past, n_future, n_eval (SM-MNIST)
        "teacher_forcing": "always: ground-truth previous frame and posterior z during training",
        "evaluation": {"samples": 100, "select": "best sample per sequence by mean SSIM over the predicted frames",
                       "source": "generate_svg_lp.py --nsample 100; paper, quantitative evaluation"},
        "datasets": {
            "smmnist": {"model": "dcgan", "frame_shape": (1, 64, 64), "g_dim": 128, "z_dim": 10, "beta": 1e-4,
                        "cond_frames": 5, "train_horizon": 10},
            "bair": {"model": "vgg", "frame_shape": (3, 64, 64), "g_dim": 128, "z_dim": 64, "beta": 1e-4,
                     "cond_frames": 2, "train_horizon": 10},
            "kth": {"model": "vgg", "frame_shape": (1, 64, 64), "g_dim": 128, "z_dim": 24, "beta": 1e-6,
                    "cond_frames": 10, "train_horizon": 10, "lr": 8e-4,
                    "note": "the README's KTH command is for SVG-FP"},
        },
    }

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int, *,
                 model: str = "dcgan", g_dim: int = 128, z_dim: int = 10, rnn_size: int = 256,
                 predictor_rnn_layers: int = 2, posterior_rnn_layers: int = 1, prior_rnn_layers: int = 1,
                 beta: float = 1e-4, last_frame_skip: bool = False) -> None:
        super().__init__(frame_shape, cond_frames, train_horizon)
        channels, height, width = self.frame_shape
        if height != width:
            raise ValueError(f"SVG takes square frames, got {height}×{width}")
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        self.model, self.g_dim, self.z_dim = model, int(g_dim), int(z_dim)
        self.beta = float(beta)
        self.last_frame_skip = bool(last_frame_skip)
        self.encoder = Encoder(model, channels, width, self.g_dim)
        self.decoder = Decoder(model, channels, width, self.g_dim)
        self.frame_predictor = FramePredictor(self.g_dim + self.z_dim, self.g_dim, rnn_size, predictor_rnn_layers)
        self.posterior = GaussianLSTM(self.g_dim, self.z_dim, rnn_size, posterior_rnn_layers)
        self.prior = GaussianLSTM(self.g_dim, self.z_dim, rnn_size, prior_rnn_layers)
        init_dcgan_(self)

    # ---------------------------------------------------------------------------------------- helpers
    def _encode(self, frames: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """(g, maps) of each frame of (B, T, C, H, W); one encoder call per frame in train mode."""
        b, t = frames.shape[:2]
        if self.encoder.training:
            return [self.encoder(frames[:, i]) for i in range(t)]
        g, maps = self.encoder(frames.flatten(0, 1))
        g, maps = g.view(b, t, -1), [m.view(b, t, *m.shape[1:]) for m in maps]
        return [(g[:, i], [m[:, i] for m in maps]) for i in range(t)]

    def _states(self, ref: torch.Tensor) -> tuple[list, list, list]:
        return self.frame_predictor.initial_state(ref), self.posterior.initial_state(ref), self.prior.initial_state(ref)

    def _generate(self, cond: torch.Tensor, horizon: int, sample: bool, repeats: int = 1) -> torch.Tensor:
        self.check_cond(cond)
        tc = cond.shape[1]
        enc = self._encode(cond)
        if repeats > 1:
            enc = [(g.repeat(repeats, 1), [m.repeat(repeats, 1, 1, 1) for m in maps]) for g, maps in enc]
        pred_state, post_state, prior_state = self._states(enc[0][0])
        skips = None
        for i in range(1, tc):
            g, skips = enc[i - 1]
            mu, logvar, post_state = self.posterior(enc[i][0], post_state)
            _, _, prior_state = self.prior(g, prior_state)
            z = _sample(mu, logvar) if sample else mu
            _, pred_state = self.frame_predictor(torch.cat([g, z], 1), pred_state)
        g, maps = enc[tc - 1]
        if skips is None or self.last_frame_skip:
            skips = maps
        frames = []
        for k in range(int(horizon)):
            mu_p, logvar_p, prior_state = self.prior(g, prior_state)
            z = _sample(mu_p, logvar_p) if sample else mu_p
            code, pred_state = self.frame_predictor(torch.cat([g, z], 1), pred_state)
            frame = self.decoder(code, skips)
            frames.append(frame)
            if k + 1 < horizon:
                g, maps = self.encoder(frame)
                if self.last_frame_skip:
                    skips = maps
        return torch.stack(frames, 1)

    # ------------------------------------------------------------------------------------------ contract
    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        """Deterministic forecast: posterior mean on the conditioning frames, learned prior's mean after."""
        return self._generate(cond, horizon, sample=False)

    def forecast_samples(self, cond: torch.Tensor, horizon: int, samples: int) -> torch.Tensor:
        """(samples, B, horizon, C, H, W): z from the posterior (conditioning) and the learned prior (after)."""
        b = cond.shape[0]
        out = self._generate(cond, horizon, sample=True, repeats=int(samples))
        return out.view(int(samples), b, *out.shape[1:])

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        self.check_cond(cond)
        if target.dim() != 5 or tuple(target.shape[2:]) != self.frame_shape or target.shape[0] != cond.shape[0]:
            raise ValueError(f"SVGLP expects target frames (B, T, {', '.join(map(str, self.frame_shape))}), "
                             f"got {tuple(target.shape)}")
        x = torch.cat([cond, target], 1)
        tc, t_all = cond.shape[1], x.shape[1]
        enc = self._encode(x)
        pred_state, post_state, prior_state = self._states(enc[0][0])
        rec = x.new_zeros(())
        kl = x.new_zeros(())
        target_mse = x.new_zeros(())
        skips = None
        for i in range(1, t_all):
            g, maps = enc[i - 1]
            if self.last_frame_skip or i < tc or skips is None:
                skips = maps
            mu, logvar, post_state = self.posterior(enc[i][0], post_state)
            mu_p, logvar_p, prior_state = self.prior(g, prior_state)
            code, pred_state = self.frame_predictor(torch.cat([g, _sample(mu, logvar)], 1), pred_state)
            frame_mse = F.mse_loss(self.decoder(code, skips), x[:, i])
            rec = rec + frame_mse
            kl = kl + gaussian_kl(mu, logvar, mu_p, logvar_p)
            if i >= tc:
                target_mse = target_mse + frame_mse.detach()
        return {"loss": rec + self.beta * kl, "mse": target_mse / (t_all - tc), "rec": rec, "kl": kl}

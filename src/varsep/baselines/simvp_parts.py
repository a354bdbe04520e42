"""Shared pieces of SimVP and TAU (private module; see ``simvp.py`` and ``tau.py`` for the papers and sources).

Both models are "encoder → translator → decoder" networks: every conditioning frame is encoded on its own by a
stack of strided convolutions, the per-frame latents of all frames are stacked along the channel axis and
mixed by a translator (IncepU U-Net for SimVP, a stack of temporal attention blocks for TAU), and the decoder
turns each frame's slice back into pixels, with a skip connection from the first encoder block of the same
input frame. Layout and state-dict names follow OpenSTL (commit c74deb5, ``openstl/models/simvp_model.py`` and
``openstl/modules/simvp_modules.py``) so that OpenSTL checkpoints load; the code here is written from scratch.

Output length: the translator's width is ``cond_frames · hid_S`` on both sides and the decoder's skip comes
from the input frame at the same position, so one network call always maps ``cond_frames`` frames to
``cond_frames`` frames (OpenSTL ties T_out = T_in the same way). Any horizon is produced as OpenSTL's
``SimVP.forward`` does it: truncate when the horizon is shorter, otherwise call the network again on its own
previous chunk (which is exactly the last ``cond_frames`` frames, predicted ones included) and keep
``horizon`` frames in total. ``train_horizon`` only fixes the length of the training target, which is
produced by the same chunked rollout (gradients flow through all chunks, as in OpenSTL's training step).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .base import Baseline

VARIANTS = ("openstl", "original")


def _halving_flags(n_blocks: int) -> list[bool]:
    """Encoder blocks 1, 3, 5, … (0-based) halve the resolution; the decoder mirrors the list."""
    return [i % 2 == 1 for i in range(n_blocks)]


class _ConvNormAct(nn.Module):
    """Conv (same size, stride-2 down, or ×2 up) → GroupNorm(2 groups) → SiLU (OpenSTL) / LeakyReLU(0.2) (original).

    ×2 upsampling is conv to 4·C_out channels + PixelShuffle(2) in OpenSTL and a stride-2 transposed conv in
    the original SimVP code. OpenSTL initialises these convs truncated-normal(std 0.02) with zero bias; the
    original code keeps PyTorch's default initialisation.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, resample: str, variant: str) -> None:
        super().__init__()
        half = kernel // 2
        if resample == "down":
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride=2, padding=(kernel - 1) // 2)
        elif resample == "up" and variant == "openstl":
            self.conv = nn.Sequential(nn.Conv2d(c_in, 4 * c_out, kernel, padding=half), nn.PixelShuffle(2))
        elif resample == "up":
            self.conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=half, output_padding=1)
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel, padding=half)
        self.norm = nn.GroupNorm(2, c_out)
        self.act: nn.Module = nn.SiLU() if variant == "openstl" else nn.LeakyReLU(0.2)
        if variant == "openstl":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class _SpatialBlock(nn.Module):
    """One encoder/decoder block (OpenSTL's ``ConvSC``; it only wraps the conv so that key names match)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, resample: str, variant: str) -> None:
        super().__init__()
        self.conv = _ConvNormAct(c_in, c_out, kernel, resample, variant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FrameEncoder(nn.Module):
    """Per-frame encoder: N_S blocks, every second one halving H and W; returns (latent, first block's output)."""

    def __init__(self, c_in: int, hid: int, n_blocks: int, kernel: int, variant: str) -> None:
        super().__init__()
        flags = _halving_flags(n_blocks)
        self.enc = nn.Sequential(*[
            _SpatialBlock(c_in if i == 0 else hid, hid, kernel, "down" if f else "same", variant)
            for i, f in enumerate(flags)
        ])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.enc[0](x)
        z = first
        for block in list(self.enc)[1:]:
            z = block(z)
        return z, first


class FrameDecoder(nn.Module):
    """Mirror of the encoder plus a 1×1 readout; the last block also receives the skip from the first encoder block
    (added in OpenSTL, concatenated in the original SimVP code, whose last block therefore takes 2·hid channels)."""

    def __init__(self, hid: int, c_out: int, n_blocks: int, kernel: int, variant: str) -> None:
        super().__init__()
        flags = _halving_flags(n_blocks)[::-1]
        last_in = hid if variant == "openstl" else 2 * hid
        self.variant = variant
        self.dec = nn.Sequential(*[
            _SpatialBlock(last_in if i == n_blocks - 1 else hid, hid, kernel, "up" if f else "same", variant)
            for i, f in enumerate(flags)
        ])
        self.readout = nn.Conv2d(hid, c_out, 1)

    def forward(self, z: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        blocks = list(self.dec)
        for block in blocks[:-1]:
            z = block(z)
        z = z + skip if self.variant == "openstl" else torch.cat([z, skip], dim=1)
        return self.readout(blocks[-1](z))


class SimVPFamily(Baseline):
    """Common skeleton: ``enc`` (per-frame encoder), ``hid`` (translator, set by the subclass), ``dec`` (decoder).

    The subclass must assign ``self.hid`` (a module whose forward takes ``(x, stochastic)`` on
    ``(B, cond_frames·hid_S, h, w)`` and returns the same shape) right after calling this constructor.
    """

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int, *, hid_S: int,
                 N_S: int, spatio_kernel_enc: int, spatio_kernel_dec: int, variant: str = "openstl") -> None:
        super().__init__(frame_shape, cond_frames, train_horizon)
        c, h, w = self.frame_shape
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if self.cond_frames < 1 or self.train_horizon < 1:
            raise ValueError("cond_frames and train_horizon must be ≥ 1")
        if N_S < 2 or N_S % 2:
            raise ValueError(f"N_S must be an even number ≥ 2 (OpenSTL silently drops the last block of an odd "
                             f"N_S), got {N_S}")
        if hid_S < 2 or hid_S % 2:
            raise ValueError(f"hid_S must be even (GroupNorm with 2 groups), got {hid_S}")
        for name, k in (("spatio_kernel_enc", spatio_kernel_enc), ("spatio_kernel_dec", spatio_kernel_dec)):
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be odd, got {k}")
        factor = 2 ** (N_S // 2)
        if h % factor or w % factor:
            raise ValueError(f"frame size {h}×{w} must be divisible by 2**(N_S/2) = {factor}")
        self.variant = variant
        self.hid_S = int(hid_S)
        self.N_S = int(N_S)
        self.latent_hw = (h // factor, w // factor)
        self.enc = FrameEncoder(c, hid_S, N_S, spatio_kernel_enc, variant)
        self.dec = FrameDecoder(hid_S, c, N_S, spatio_kernel_dec, variant)
        self.hid: nn.Module

    # ------------------------------------------------------------------------------------------ network
    def predict_chunk(self, frames: torch.Tensor, *, stochastic: bool = False) -> torch.Tensor:
        """One network call: (B, cond_frames, C, H, W) → the next cond_frames frames, same shape."""
        b, t, c, h, w = frames.shape
        latent, skip = self.enc(frames.reshape(b * t, c, h, w))
        _, ch, lh, lw = latent.shape
        mixed = self.hid(latent.reshape(b, t * ch, lh, lw), stochastic)
        out = self.dec(mixed.reshape(b * t, ch, lh, lw), skip)
        return out.reshape(b, t, c, h, w)

    def rollout(self, cond: torch.Tensor, horizon: int, *, stochastic: bool = False) -> torch.Tensor:
        """Chunked forecast (see the module docstring): chunks of cond_frames, each fed the previous chunk."""
        horizon = int(horizon)
        if horizon < 1:
            raise ValueError(f"horizon must be ≥ 1, got {horizon}")
        chunks = []
        produced = 0
        window = cond
        while produced < horizon:
            window = self.predict_chunk(window, stochastic=stochastic)
            chunks.append(window)
            produced += window.shape[1]
        return torch.cat(chunks, dim=1)[:, :horizon]

    # ------------------------------------------------------------------------------------------ contract
    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        """Deterministic forecast of any horizon. Drop path / dropout are never applied here; BatchNorm (TAU)
        follows the module's mode as usual, so call ``eval()`` for test-time forecasts (as OpenSTL does)."""
        self.check_cond(cond)
        return self.rollout(cond, horizon, stochastic=False)

    def check_target(self, cond: torch.Tensor, target: torch.Tensor) -> None:
        self.check_cond(cond)
        want = (cond.shape[0], self.train_horizon, *self.frame_shape)
        if tuple(target.shape) != want:
            raise ValueError(f"{type(self).__name__} expects targets {want}, got {tuple(target.shape)}")

    # ------------------------------------------------------------------------------------------ checkpoints
    def from_openstl_state_dict(self, state_dict: Mapping[str, Any]) -> SimVPFamily:
        """Load an OpenSTL checkpoint into this model (in place; returns ``self``).

        Accepts a plain state dict (the released model-zoo ``.pth`` files), or a checkpoint dict holding one
        under ``"state_dict"`` (Lightning ``.ckpt``, pre-Lightning ``latest.pth``); leading ``model.`` /
        ``module.`` prefixes are stripped. Raises ``ValueError`` listing missing keys, unexpected keys or shape
        mismatches before anything is loaded (``TypeError`` if it is not a mapping of tensors).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"expected a state dict (mapping), got {type(state_dict).__name__}")
        inner = state_dict.get("state_dict")
        if isinstance(inner, Mapping):
            state_dict = inner
        cleaned: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            name = str(key)
            while name.startswith(("model.", "module.")):
                name = name.split(".", 1)[1]
            if name in cleaned:
                raise ValueError(f"key {name!r} appears twice after stripping prefixes (from {key!r})")
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"value of {key!r} is a {type(value).__name__}, not a tensor")
            cleaned[name] = value
        own = self.state_dict()
        missing = sorted(set(own) - set(cleaned))
        unexpected = sorted(set(cleaned) - set(own))
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing key(s): {_preview(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s): {_preview(unexpected)}")
        mismatched = [f"{k}: checkpoint {tuple(cleaned[k].shape)} vs model {tuple(v.shape)}"
                      for k, v in own.items() if k in cleaned and cleaned[k].shape != v.shape]
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatch(es): {_preview(mismatched)}")
        if problems:
            raise ValueError(f"cannot load this checkpoint into {type(self).__name__}: " + "; ".join(problems))
        self.load_state_dict(cleaned, strict=True)
        return self


def _preview(items: list[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", … ({len(items) - n} more)" if len(items) > n else "")

"""The separable model v̂_t = D(S, T_t) of Dona et al. (2021); its definition is docs/model.md.

S = E_S(V_τ(t0)) is the content code (a vector, a feature map, and optionally the encoder's skip maps);
T_t0 = E_T(V_τ(t0)) the initial dynamic code, evolved by a learned ODE. A window holds τ+1 observations
(B, τ+1, *frame); frames decode as (B, n, *frame).

Time bookkeeping: code number k of a rollout stands for the frame ``first_index + k`` of the window
(frame 0 = v_t0). With ``reconstruct_cond`` (the official "offset τ+1", default) T_t0 stands for v_t0 and
the conditioning frames are reconstructed too; without it (SST, Appendix E.4) T_t0 stands for the first
frame after the conditioning window.

Anchoring: the paper decodes frames, v̂_t = D(S, T_t) (``anchor="none"``). Two anchors tie the forecast to
the last conditioning frame v_last, so that it starts where the observations end — what a small field's
forecast needs to match repeating the last frame at short lead times:

- ``"last_residual"``: v̂_t = D(S, T_t) + (v_last − D(S, T_last)). D still renders frames; the model's own
  error on the last observed frame (T_last: the code of that frame, which needs ``reconstruct_cond``) is
  carried to every forecast frame, so at short lead times only the change D(S, T_t) − D(S, T_last) counts;
- ``"last_frame"``: v̂_t = v_last + D(S, T_t), D rendering each frame's departure from v_last (an
  untrained D, outputs ≈ 0, is persistence).

A content swap is not defined for an anchored model (v_last carries its own sequence's content).

Masks: a model may carry ``valid_mask`` (the frame's shape, True where the field is defined — not land),
set with :meth:`SeparableModel.set_mask` and saved in its state. Invalid cells are set to 0 in every window
the encoders see and in every decoded frame, and the losses average over valid cells only, so whatever
the data hold there changes no loss, gradient or forecast.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from varsep.model.continuous import check_times, solve
from varsep.model.dynamics import Dynamics
from varsep.nets.norm import frame_groups, has_frame_norm, uses_batch_statistics, uses_frame_groups
from varsep.spec import DataSpec


class Content(NamedTuple):
    """The content variable S: a code and, for encoders with skip connections, their feature maps."""

    code: torch.Tensor
    skips: tuple[torch.Tensor, ...] = ()

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.code, *self.skips)

    def split(self, sizes: list[int]) -> list[Content]:
        parts = [t.split(sizes) for t in self.tensors()]
        return [Content(p[0], tuple(p[1:])) for p in zip(*parts, strict=True)]

    def take(self, index: torch.Tensor) -> Content:
        """The content of other sequences: row i gets the content of sequence index[i] (content swap)."""
        return Content(self.code[index], tuple(s[index] for s in self.skips))


ANCHORS = ("none", "last_residual", "last_frame")  # what decoded frames are added to (see the module docstring)
# Rows (frames × sequences) of one call of a decoder with BatchNorm (SeparableModel.decode). A Moving MNIST
# step in fp32 on 2 Zen 4 cores: 10.9 s at two frames of a batch of 128 a call, 10.8 s at one, 17.7 s with
# every frame in one call; in bf16 all three within noise. In inference it bounds a long forecast's memory.
GROUPED_ROWS = 256


def has_batchnorm(module: nn.Module | None) -> bool:
    return module is not None and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class SeparableModel(nn.Module):
    """E_S, E_T, the dynamics of T and the decoder D, with the combination of S and T.

    The trained model users load is :class:`varsep.Forecaster`, which wraps this module with its config,
    input checks and precision; this is the ``nn.Module`` that training and evaluation run."""

    def __init__(
        self,
        *,
        content_encoder: nn.Module | None,
        dynamic_encoder: nn.Module,
        decoder: nn.Module,
        dynamics: Dynamics,
        combine: str,
        spec: DataSpec,
        reconstruct_cond: bool = True,
        skips: bool = False,
        anchor: str = "none",
    ) -> None:
        super().__init__()
        if combine not in ("concat", "mul"):
            raise ValueError(f"combine must be 'concat' or 'mul', got {combine!r}")
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
        if anchor == "last_residual" and not reconstruct_cond:
            raise ValueError("anchor 'last_residual' needs the code of the last conditioning frame, i.e. "
                             "reconstruct_cond=True")
        self.anchor = anchor
        self.content_encoder = content_encoder
        self.dynamic_encoder = dynamic_encoder
        self.decoder = decoder
        self.dynamics = dynamics
        self.combine = combine
        self.spec = spec  # every window calculation (conditioning span, splits) is the spec's
        self.reconstruct_cond = reconstruct_cond
        self.skips = skips
        # BatchNorm statistics depend on what shares a batch: encode the windows of one sequence in separate
        # calls when an encoder normalises over the batch. A decoder without BatchNorm decodes the forecast
        # and the auto-encoded frame in one call; one with per-frame BatchNorm (varsep.nets.norm, the
        # authors' statistics, default) too, frame by frame in its statistics; one with plain BatchNorm
        # (model.batch_stats: pooled) pools the forecast frames and decodes the auto-encoded frame apart.
        self.batch_encoders = not (has_batchnorm(content_encoder) or has_batchnorm(dynamic_encoder))
        self.batch_decoder = not has_batchnorm(decoder)
        self.frame_norm = has_frame_norm(decoder)
        self.register_buffer("valid_mask", None)  # (*frame) bool; set_mask makes it part of the state

    def set_mask(self, valid: torch.Tensor | None) -> None:
        """Cells (the frame's shape, True = valid) that the model sees and forecasts; None: every cell."""
        if valid is not None:
            valid = torch.as_tensor(valid, dtype=torch.bool)
            if tuple(valid.shape) != tuple(self.spec.frame_shape):
                raise ValueError(f"a mask of shape {tuple(valid.shape)} for frames {tuple(self.spec.frame_shape)}")
            if bool(valid.all()):
                valid = None
        self.valid_mask = valid

    def mask_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` (…, *frame) with the invalid cells set to 0 (unchanged without a mask)."""
        if self.valid_mask is None:
            return frames
        return frames.masked_fill(~self.valid_mask, 0)

    def anchor_frame(self, window: torch.Tensor, content: Content | None = None,
                     t0: torch.Tensor | None = None) -> torch.Tensor | None:
        """What decoded frames are added to, (B, 1, *frame), for the conditioning window (B, τ+1, *frame) the
        codes come from: its last frame v_last (``last_frame``), v_last − D(S, T_last) (``last_residual``;
        ``content`` and ``t0``: the window's S and T_t0 when already encoded), or None (``none``)."""
        if self.anchor == "none":
            return None
        last = self.mask_frames(window[:, -1:])
        if self.anchor == "last_frame":
            return last
        if t0 is None:
            content, t0 = self.encode(window)
        t_last = self.rollout(t0, self.last_cond_time)[:, -1:]  # reconstruct_cond: T_t0 stands for frame 0
        return last - self.decode(content, t_last)

    stochastic = False  # the separable model is deterministic (the evaluation asks every model)

    @property
    def uses_content(self) -> bool:
        return self.content_encoder is not None

    @property
    def swappable(self) -> bool:
        """Whether the content swap applies: a content code, and frames decoded whole (not anchored)."""
        return self.uses_content and self.anchor == "none"

    @property
    def cond_frames(self) -> int:
        """τ+1: the observations the encoders see."""
        return self.spec.cond_frames

    @property
    def time_stride(self) -> int:
        """Conditioning frames are observed every ``time_stride`` frames."""
        return self.spec.time_stride

    @property
    def first_index(self) -> int:
        """The observed frame (index in the window, from 0) that T_t0 stands for."""
        return 0 if self.reconstruct_cond else self.cond_frames

    @property
    def first_time(self) -> int:
        """The time (in frames from the window's first frame) that T_t0 stands for."""
        return self.first_index * self.time_stride

    @property
    def last_cond_time(self) -> int:
        """The time of the last conditioning frame (in frames from the window's first frame)."""
        return self.spec.last_cond_time

    # ------------------------------------------------------------------------------------------ parts
    def encode_content(self, window: torch.Tensor) -> Content | None:
        if self.content_encoder is None:
            return None
        out = self.content_encoder(self.mask_frames(window))
        return Content(out[0], tuple(out[1])) if self.skips else Content(out)

    def encode_dynamics(self, window: torch.Tensor) -> torch.Tensor:
        return self.dynamic_encoder(self.mask_frames(window))

    def encode(self, cond: torch.Tensor) -> tuple[Content | None, torch.Tensor]:
        """(S, T_t0) from conditioning windows (B, τ+1, *frame)."""
        self._check_window(cond)
        return self.encode_content(cond), self.encode_dynamics(cond)

    def decode(self, content: Content | None, codes: torch.Tensor) -> torch.Tensor:
        """Frames (B, n, *frame) from S (one per sequence) and a trajectory of codes T (B, n, …).

        A decoder without BatchNorm (the MLPs) decodes all n frames in one call. One with BatchNorm (every
        convolutional decoder) decodes them in order, at most :data:`GROUPED_ROWS` rows a call (two frames
        of a batch of 128): one call of every frame holds activations of B·n frames — 512 MiB a layer for
        Moving MNIST in fp32 — and made that fp32 step 60 % slower (docs/performance.md). With per-frame
        BatchNorm in training mode each call's frames are stacked frame-major, so that each frame is
        normalised with its own batch statistics and the running statistics are updated frame after frame
        (the authors' one call per frame, varsep.nets.norm); with pooled statistics in training
        (``model.batch_stats: pooled``) every frame is in the one call whose statistics they share."""
        batch, n = codes.shape[:2]
        grouped = self.frame_norm and uses_frame_groups(self.decoder)
        pooled = not grouped and uses_batch_statistics(self.decoder)
        if self.batch_decoder or pooled or batch * n <= GROUPED_ROWS:
            return self._decode(content, codes, grouped=grouped)
        per_call = max(1, GROUPED_ROWS // batch)
        return torch.cat([self._decode(content, codes[:, lo:lo + per_call], grouped=grouped)
                          for lo in range(0, n, per_call)], dim=1)

    def _decode(self, content: Content | None, codes: torch.Tensor, *, grouped: bool) -> torch.Tensor:
        batch, n = codes.shape[:2]
        grouped = grouped and n > 1

        def stack(x: torch.Tensor) -> torch.Tensor:  # one per sequence (B, …) → one per frame (B·n, …)
            if grouped:
                return x.unsqueeze(0).expand(n, *x.shape).flatten(0, 1)
            return x.unsqueeze(1).expand(batch, n, *x.shape[1:]).flatten(0, 1)

        t = codes.transpose(0, 1).flatten(0, 1) if grouped else codes.flatten(0, 1)
        skips: tuple[torch.Tensor, ...] = ()
        if content is None:
            z = t
        else:
            s = stack(content.code)
            z = s * t if self.combine == "mul" else torch.cat([s, t], dim=1)
            skips = tuple(stack(m) for m in content.skips)
        if grouped:
            with frame_groups(self.decoder, n):
                frames = self.decoder(z, skips) if self.skips else self.decoder(z)
            return self.mask_frames(frames.reshape(n, batch, *frames.shape[1:]).transpose(0, 1))
        frames = self.decoder(z, skips) if self.skips else self.decoder(z)
        return self.mask_frames(frames.reshape(batch, n, *frames.shape[1:]))

    def decode_frame(self, content: Content | None, code: torch.Tensor) -> torch.Tensor:
        """One frame per sequence (B, *frame) from S and a code T (B, …)."""
        return self.decode(content, code.unsqueeze(1))[:, 0]

    def rollout(self, t0: torch.Tensor, steps: int) -> torch.Tensor:
        return self.dynamics.rollout(t0, steps)

    # -------------------------------------------------------------------------------------- forecasting
    @property
    def cond_span(self) -> int:
        """Frames spanned by the conditioning window (τ+1 observed every time_stride frames)."""
        return self.spec.cond_span

    def split_window(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An evaluation window (B, cond_span + h, *frame) → (conditioning frames, the h frames after)."""
        return self.spec.split(frames)

    def forecast(self, cond: torch.Tensor, horizon: int | None = None, *, times: torch.Tensor | None = None,
                 method: str = "residual", step_size: float | None = None, rtol: float = 1e-6,
                 atol: float = 1e-7, include_cond: bool = False, content: Content | None = None) -> torch.Tensor:
        """Frames after the conditioning window (B, τ+1, *frame) → (B, n, *frame).

        ``horizon=h`` gives the h frames that follow the window (the paper's forecast). ``times`` gives
        frames at any times after the last conditioning frame, in frame intervals — fractional and
        irregular allowed (1 = the next frame, 2.5 = half-way between the 2nd and 3rd) — integrating the
        learned dynamics with ``method`` (see varsep.model.continuous; "residual" is the paper's
        integrator and reproduces ``horizon`` exactly on integer times). ``include_cond`` also returns the
        model's reconstructions of the conditioning frames (with ``horizon`` and reconstruct_cond only).
        ``content`` replaces the sequence's own S (content swap).
        """
        if content is not None:
            self._check_swap()
        own_content, t0 = self.encode(cond)
        if self.anchor == "last_residual" and times is None and self.time_stride == 1:
            # one rollout and one decoder call: T_last is on the way to the forecast's codes
            full = self.codes(t0, horizon, include_cond=True)
            codes = full if include_cond else full[:, self.cond_frames:]
            decoded = self.decode(own_content, torch.cat([full[:, self.cond_frames - 1:self.cond_frames], codes], 1))
            return decoded[:, 1:] + (self.mask_frames(cond[:, -1:]) - decoded[:, :1])
        codes = self.codes(t0, horizon, times=times, method=method, step_size=step_size, rtol=rtol, atol=atol,
                           include_cond=include_cond)
        decoded = self.decode(own_content if content is None else content, codes)
        anchor = self.anchor_frame(cond, own_content, t0)
        return decoded if anchor is None else decoded + anchor

    def _check_swap(self) -> None:
        if self.anchor != "none":
            raise ValueError("a content swap is not defined for a model whose forecast is anchored on the last "
                             f"conditioning frame (model.anchor: {self.anchor})")

    def forecast_with_swap(self, cond: torch.Tensor, content_cond: torch.Tensor,
                           horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The forecast of ``cond``, and the same dynamics decoded with the content S of ``content_cond``
        (the content swap): the codes T are integrated once and decoded twice."""
        self._check_swap()
        own, codes = self.trajectory(cond, horizon)
        return self.decode(own, codes), self.decode(self.encode_content(content_cond), codes)

    def trajectory(self, cond: torch.Tensor, horizon: int | None = None, *, times: torch.Tensor | None = None,
                   method: str = "residual", step_size: float | None = None, rtol: float = 1e-6,
                   atol: float = 1e-7, include_cond: bool = False) -> tuple[Content | None, torch.Tensor]:
        """S and the codes T of the frames :meth:`forecast` decodes (B, n, …), before decoding: a content
        swap decodes the same codes with another S, without encoding or integrating again."""
        content, t0 = self.encode(cond)
        return content, self.codes(t0, horizon, times=times, method=method, step_size=step_size, rtol=rtol,
                                   atol=atol, include_cond=include_cond)

    def codes(self, t0: torch.Tensor, horizon: int | None = None, *, times: torch.Tensor | None = None,
              method: str = "residual", step_size: float | None = None, rtol: float = 1e-6, atol: float = 1e-7,
              include_cond: bool = False) -> torch.Tensor:
        """The codes T (B, n, …) of :meth:`trajectory`, from an initial code T_t0 already encoded."""
        if (horizon is None) == (times is None):
            raise ValueError("give either horizon (frames after the window) or times, not both")
        if times is None and self.time_stride == 1:
            codes = self.rollout(t0, self.cond_frames - 1 + horizon - self.first_index)
            if not include_cond:
                codes = codes[:, self.cond_frames - self.first_index:]
            return codes
        if include_cond:
            raise ValueError("include_cond goes with horizon (and frames observed every frame), not with times")
        if times is None:  # every frame after the window, though frames were observed every time_stride
            times = torch.arange(1, horizon + 1, dtype=torch.float64)
        elapsed = self.last_cond_time - self.first_time + check_times(times)
        return solve(self.dynamics, t0, elapsed, method=method, step_size=step_size, rtol=rtol, atol=atol)

    def _check_window(self, window: torch.Tensor) -> None:
        if window.dim() < 3 or window.shape[1] != self.cond_frames:
            raise ValueError(f"expected conditioning windows (B, {self.cond_frames}, *frame), "
                             f"got shape {tuple(window.shape)}")

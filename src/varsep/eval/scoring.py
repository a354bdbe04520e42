"""What is scored for every predicted frame, and on which scale (the definitions written into metrics.json).

Every test window is forecast from its τ+1 conditioning frames; each predicted frame gets:

- ``mse``: mean over channels and pixels of (forecast − target)², on the model's value scale (the scale
  the data set serves: [0, 1] for every data set but SST, whose values are standardised temperatures).
- ``psnr`` = 10·log10(1 / MSE) — for frames of several channels the mean of each channel's PSNR, as the
  authors' evaluation (``psnr_channels="pooled"``: the PSNR of the MSE over all channels) — and ``ssim``
  (11×11 Gaussian window, σ 1.5, K1 .01, K2 .03, data range 1, mean over the valid region), see
  :mod:`varsep.metrics`. On data in [0, 1] (``dataset.unit_interval``) they are computed on the model's
  scale. **Data not in [0, 1]** (SST): the frames — in physical units
  (°C) when the data set has them — are first mapped to [0, 1] window by window by the minimum and
  maximum of that window's *conditioning* frames, x ↦ (x − min)/(max − min), the same map for forecast and
  target, values outside the range kept. This uses only what is known at forecast time, and equals
  PSNR/SSIM on °C with data range (max − min). The official SST code instead divided °C frames by the
  min–max range of the zone's normalised values over all days (docs/data/sst.md); numbers therefore differ
  from the paper's SSIM column by construction.
- ``mse_physical``: MSE in physical units (°C² for SST, taxis² for TaxiBJ) when ``dataset.physical``
  gives them; conversions use only what is known at forecast time.
- ``mse_paper_compatible`` (SST): MSE in °C² the way the official code converts forecasts, with the
  target frames' own statistics (``dataset.paper_compatible``, where ``dataset.reports_paper_compatible``) —
  labelled, never the default.
- ``mse_paper`` (TaxiBJ): the paper's Table 3 figure, MSE on [0, 1] × 100 × 32 × 32 × 2.
- ``baseline_*``: the same metric for "repeat the last conditioning frame".
- ``climatology_*``: the same metric for the climatology forecast, where the data set has one
  (``dataset.climatology_reference``): each cell's climatological value for the target's date, known in
  advance (custom data normalised ``per_pixel``: the cell's training mean; ``climatology``: its training
  mean for the target's month or day of the year; SST with zone normalisation: the files' daily
  climatology). Scored like a forecast: masked cells excluded, ``mse_physical`` in the data's units.

Masks (``dataset.valid_mask``: land in ocean data): every metric counts the valid cells only — MSE is the
mean over them, PSNR that of this MSE, SSIM the mean over window positions centred on one, and the [0, 1]
map of non-[0, 1] data takes its min and max over them. Invalid cells are set to 0 in forecast and target
first, so nothing a model or the data put there changes a number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from varsep.data.base import SequenceDataset, WindowSet
from varsep.eval import metrics
from varsep.spec import DataSpec

SSIM_WINDOW = 11


def _as_tensor(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=torch.float64, device=like.device)


@dataclass
class FrameScorer:
    """Scores forecasts of the windows of one :class:`WindowSet` (the rules in the module docstring)."""

    dataset: SequenceDataset | None
    windows: WindowSet
    spec: DataSpec  # the model's windows: τ+1 conditioning frames observed every time_stride frames
    frame_shape: tuple[int, ...]
    unit_interval: bool = True
    has_physical: bool = False
    paper_compatible: Callable | None = None  # the data set's conversion like the official code, if any
    paper_factor: float | None = None
    definitions: dict[str, str] = field(default_factory=dict)
    with_ssim: bool = True  # SSIM costs ~0.5 ms a frame: it can be skipped when only MSE matters
    psnr_channels: str = "mean"  # several channels: mean of per-channel PSNR (the authors'), or "pooled" MSE
    valid: np.ndarray | None = None  # the frame's cells that count (dataset.valid_mask), None: all
    climatology: str | None = None  # what the data set's climatology forecast is (None: it has none)

    @classmethod
    def build(cls, dataset: SequenceDataset | None, windows: WindowSet, spec: DataSpec,
              ssim: bool = True) -> FrameScorer:
        probe = windows.take(np.array([0]))
        unit = dataset.unit_interval if dataset is not None else True
        mask = dataset.valid_mask if dataset is not None else None
        scorer = cls(dataset, windows, spec, tuple(probe.shape[2:]), unit_interval=bool(unit), with_ssim=ssim,
                     valid=None if mask is None else np.asarray(mask, dtype=bool))
        span = scorer.span
        if dataset is not None:
            scorer.has_physical = dataset.physical(probe[:, span:], windows, np.array([0]), span) is not None
            scorer.paper_compatible = dataset.paper_compatible if dataset.reports_paper_compatible else None
            scorer.paper_factor = dataset.paper_mse_factor
            scorer.climatology = dataset.climatology_reference
        scorer.definitions = scorer._definitions()
        return scorer

    @property
    def span(self) -> int:
        """Frames of the window before the first target (the conditioning window's span)."""
        return self.spec.cond_span

    def split(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A window (b, span + h, *frame) → (observed conditioning frames, the h targets)."""
        return self.spec.split(frames)

    @property
    def is_frame(self) -> bool:
        return len(self.frame_shape) == 3

    @property
    def has_ssim(self) -> bool:
        return self.with_ssim and self.is_frame and min(self.frame_shape[-2:]) >= SSIM_WINDOW

    @property
    def frame_dims(self) -> int:
        return len(self.frame_shape)

    @property
    def psnr_per_channel(self) -> bool:
        return self.is_frame and self.frame_shape[0] > 1 and self.psnr_channels == "mean"

    def _definitions(self) -> dict[str, str]:
        scale = "the model's scale"
        cells = "valid pixels (the mask's)" if self.valid is not None else "pixels"
        d = {"mse": f"mean over {cells} of squared error, on {scale}"}
        if self.unit_interval:
            rule = "on the [0, 1] scale (data range 1)"
        else:
            units = "physical units" if self.has_physical else "the model's scale"
            rule = (f"on frames in {units} mapped to [0, 1] by the min and max of each window's conditioning "
                    f"frames (data not in [0, 1])")
        per_channel = " and channel, averaged over channels" if self.psnr_per_channel else ""
        d["psnr"] = f"10·log10(1/MSE) per frame{per_channel}, {rule}"
        if self.has_ssim:
            d["ssim"] = f"SSIM (11×11 Gaussian σ 1.5, K1 .01, K2 .03, valid region) per frame, {rule}"
        if self.has_physical:
            d["mse_physical"] = "MSE in physical units, converted with what is known at forecast time"
        if self.paper_compatible is not None:
            d["mse_paper_compatible"] = ("MSE in physical units converted as the official code does, with "
                                         "the target frames' own statistics (not available at forecast time)")
        if self.paper_factor is not None:
            d["mse_paper"] = f"MSE on the [0, 1] scale × {self.paper_factor:g} (the paper's reported scale)"
        d["baseline_*"] = "the same metric for 'repeat the last conditioning frame'"
        if self.climatology is not None:
            d["climatology_*"] = f"the same metric for the climatology forecast: {self.climatology}"
        return d

    # ------------------------------------------------------------------------------------------ scoring
    def score(self, idx: np.ndarray, frames: torch.Tensor, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-frame values (b, h) of every metric for forecasts ``pred`` of windows ``idx`` (``frames``)."""
        cond, target = self.split(frames)
        last = cond[:, -1:]  # the baseline: the last conditioning frame, broadcast over the horizon
        guesses = [("", pred), ("baseline_", last)]
        if self.climatology is not None:
            assert self.dataset is not None
            clim = self.dataset.climatology_forecast(self.windows, idx, self.span, target.shape[1])
            guesses.append(("climatology_", torch.as_tensor(clim, dtype=pred.dtype, device=pred.device)))
        out: dict[str, torch.Tensor] = {}
        shared: dict[str, object] = {}  # what the forecast and the references share: the target's SSIM moments…
        ids = self.windows.frame_ids(idx, self.span + np.arange(target.shape[1]))
        if ids is not None:  # overlapping windows: each distinct target frame's SSIM moments once
            shared["frame_ids"] = torch.as_tensor(ids, device=target.device)
        for prefix, guess in guesses:
            for name, value in self.compare(idx, frames, guess, target, shared=shared).items():
                out[prefix + name] = value
        if self.paper_compatible is not None:
            pc, tc = self.paper_compatible(pred.cpu().numpy(), target.cpu().numpy(), self.windows, idx,
                                           self.span)
            out["mse_paper_compatible"] = metrics.mse(_as_tensor(pc, pred), _as_tensor(tc, pred),
                                                      frame_dims=self.frame_dims)
        return out

    def compare(self, idx: np.ndarray, frames: torch.Tensor, guess: torch.Tensor,
                target: torch.Tensor, *, shared: dict[str, object] | None = None) -> dict[str, torch.Tensor]:
        """MSE, PSNR, SSIM (and physical/paper MSE) of ``guess`` against ``target`` for windows ``idx``.

        ``frames`` are the windows' frames (their conditioning part sets the range of non-[0, 1] data).
        ``guess`` may be one frame per window, (b, 1, *frame), standing for every target frame. ``shared``
        carries what several guesses against the same target can reuse (pass the same dict for each)."""
        shared = {} if shared is None else shared
        if guess.shape != target.shape and (self.has_physical or not self.unit_interval):
            guess = guess.expand_as(target)  # converted and rescaled per target frame, like a forecast
        weight = None
        if self.valid is not None:
            valid = torch.as_tensor(self.valid, device=target.device)
            weight = valid.double()
            guess, target = self._masked(guess), self._masked(target)
        out = {"mse": metrics.mse(guess.expand_as(target), target, frame_dims=self.frame_dims, weight=weight)}
        if self.paper_factor is not None:
            out["mse_paper"] = out["mse"] * self.paper_factor
        phys_guess = phys_target = None
        if self.has_physical:
            phys_guess = self._masked(self._physical(guess, idx, self.span))
            if "physical_target" not in shared:
                shared["physical_target"] = self._masked(self._physical(target, idx, self.span))
            phys_target = shared["physical_target"]
            out["mse_physical"] = metrics.mse(phys_guess, phys_target, frame_dims=self.frame_dims, weight=weight)
        g, t = guess, target
        if not self.unit_interval:
            g, t = self._rescaled(idx, frames, guess, target, phys_guess, phys_target)
        same_scale = g is guess and t is target  # data on [0, 1]: PSNR is that of the MSE above (one channel)
        out["psnr"] = metrics.psnr_of(out["mse"]) if same_scale and not self.psnr_per_channel else \
            metrics.psnr(g.expand_as(t), t, frame_dims=self.frame_dims, channels=self.psnr_channels, weight=weight)
        if self.has_ssim:
            if "ssim_target" not in shared:  # the (rescaled) target is the same for every guess
                ids = shared.get("frame_ids") if t is target else None  # rescaled per window: not shared
                shared["ssim_target"] = metrics.SSIMTarget(t, weight=weight, frame_ids=ids)
            out["ssim"] = shared["ssim_target"](self._masked(g))
        return out

    def _masked(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` with the invalid cells set to 0 (unchanged without a mask)."""
        if self.valid is None:
            return frames
        return frames.masked_fill(~torch.as_tensor(self.valid, device=frames.device), 0)

    def _physical(self, frames: torch.Tensor, idx: np.ndarray, offset: int) -> torch.Tensor:
        assert self.dataset is not None
        values = self.dataset.physical(frames.float().cpu().numpy(), self.windows, idx, offset)
        return _as_tensor(values, frames)

    def _rescaled(self, idx: np.ndarray, frames: torch.Tensor, guess: torch.Tensor, target: torch.Tensor,
                  phys_guess: torch.Tensor | None, phys_target: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forecast and target mapped to [0, 1] by the min/max of each window's conditioning frames."""
        cond = self.split(frames)[0]
        if phys_guess is not None and phys_target is not None:
            cond = torch.cat([self._physical(cond[:, j:j + 1], idx, j * self.spec.time_stride)
                              for j in range(self.spec.cond_frames)], dim=1)
            guess, target = phys_guess, phys_target
        cond = cond.double()
        if self.valid is not None:  # the range of the valid cells only
            valid = torch.as_tensor(self.valid, device=cond.device)
            lo = cond.masked_fill(~valid, float("inf")).flatten(1).min(1).values
            hi = cond.masked_fill(~valid, float("-inf")).flatten(1).max(1).values
        else:
            flat = cond.flatten(1)
            lo, hi = flat.min(1).values, flat.max(1).values
        span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        shape = (-1,) + (1,) * (guess.dim() - 1)
        lo, span = lo.view(shape), span.view(shape)
        return self._masked((guess.double() - lo) / span), self._masked((target.double() - lo) / span)


def headline_mse(result: dict) -> str:
    """The MSE a data set reports: the paper's scale, else physical units, else the model's scale."""
    for key in ("mse_paper", "mse_physical", "mse_paper_compatible"):
        if f"{key}_mean" in result:
            return key
    return "mse"


def mse_label(key: str) -> str:
    """Axis label of an MSE key (see ``headline_mse``)."""
    return {"mse_paper": "MSE × paper scale", "mse_physical": "MSE (physical units²)",
            "mse_paper_compatible": "MSE (paper-compatible, physical units²)"}.get(key, "MSE")


@dataclass
class CurveAccumulator:
    """Running sums of per-step metric values over windows."""

    horizon: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    count: int = 0

    def add(self, name: str, values: torch.Tensor) -> None:
        """``values`` (windows, horizon) of one batch."""
        total = values.double().sum(0).cpu().numpy()
        self.sums[name] = self.sums.get(name, 0) + total

    def add_all(self, values: dict[str, torch.Tensor], count: int) -> None:
        for name, value in values.items():
            self.add(name, value)
        self.count += count

    def curves(self) -> dict[str, list[float]]:
        return {k: (v / max(self.count, 1)).tolist() for k, v in self.sums.items()}

    def result(self) -> dict[str, object]:
        """{"windows": n, name: per-step curve, name_mean: its mean over the horizon}."""
        out: dict[str, object] = {"windows": self.count}
        for name, curve in self.curves().items():
            out[name] = curve
            out[f"{name}_mean"] = float(np.mean(curve))
        return out

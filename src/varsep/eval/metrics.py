"""Per-frame forecast metrics (docs/evaluation.md): pure tensor functions, one value per frame.

Inputs are shaped (..., C, H, W) for frames — or (..., m) for vectors, for MSE/PSNR — with values on the
data range [0, 1]. Every function returns a tensor of the leading shape (...): one value per frame.

- MSE  = mean over channels and pixels of (pred − target)²;
- PSNR = 10·log10(1 / MSE) (data range 1), capped at 100 dB for a perfect frame; for frames of several
  channels, by default the mean over channels of each channel's PSNR (``channels="mean"``, the authors'
  evaluation), or the PSNR of the MSE over all channels (``channels="pooled"``); one channel: the same;
- SSIM = the structural similarity of Wang et al. (2004) with an 11×11 Gaussian window (σ = 1.5),
  K1 = 0.01, K2 = 0.03, data range 1, population (not sample) covariances, averaged over the "valid"
  region where the window fits entirely and over channels. This is scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``
  (checked against it in the tests).

Masks: every function takes an optional ``weight``, shaped like a frame (C, H, W) — or (m,) — with 1 for
the cells that count and 0 for the others (land, cells outside the field). MSE is then the mean over the
counted cells, PSNR that of this MSE, and SSIM the mean over the window positions whose centre counts.
Callers set the uncounted cells to one value in both frames (varsep.eval.scoring), so what they held
changes no SSIM window either.
"""

from __future__ import annotations

import functools
import math

import torch

PSNR_CAP = 100.0


def mse(pred: torch.Tensor, target: torch.Tensor, *, frame_dims: int = 3, chunk: int = 64,
        weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per frame over the last ``frame_dims`` dimensions (3 for C×H×W, 1 for vectors).

    In float64, about ``chunk`` frames at a time so that the float64 copies stay in the CPU's cache (8×
    faster than converting whole batches). Chunks run along the first dimension, so a ``pred`` that is an
    expanded view (one frame standing for a whole horizon) is never copied out whole. ``weight`` (see the
    module docstring) averages over the counted cells; with ``frame_dims`` 2 and a (C, H, W) weight, each
    channel over its own cells."""
    _check(pred, target)
    if weight is not None:
        return _weighted_mse(pred, target, weight, frame_dims)
    lead = pred.shape[:-frame_dims]
    dims = tuple(range(-frame_dims, 0))
    if not lead:
        return torch.linalg.vector_norm(pred.double() - target.double(), 2, dim=dims).square() / max(pred.numel(), 1)
    frame = pred.shape[len(lead):]
    if pred.is_contiguous() and target.is_contiguous():  # chunks of frames, whatever the leading shape
        pred, target = pred.reshape(-1, *frame), target.reshape(-1, *frame)
    out = torch.empty(pred.shape[:-frame_dims], dtype=torch.float64, device=pred.device)
    step = max(1, chunk // max(math.prod(out.shape[1:]), 1))
    for lo in range(0, len(out), step):
        diff = pred[lo:lo + step].double() - target[lo:lo + step].double()
        out[lo:lo + step] = torch.linalg.vector_norm(diff, 2, dim=dims).square()
    return (out / max(math.prod(frame), 1)).view(lead)


def _weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, frame_dims: int
                  ) -> torch.Tensor:
    w = torch.as_tensor(weight, dtype=torch.float64, device=pred.device)
    dims = tuple(range(-frame_dims, 0))
    err = ((pred.double() - target.double()).pow(2) * w).sum(dims)
    count = w.expand(pred.shape[-w.dim():]).sum(dims)  # per frame, or per channel (frame_dims 2)
    return err / count.clamp(min=1)


PSNR_CHANNELS = ("mean", "pooled")


def psnr(pred: torch.Tensor, target: torch.Tensor, *, frame_dims: int = 3, data_range: float = 1.0,
         channels: str = "mean", weight: torch.Tensor | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio per frame, in dB. Frames (…, C, H, W) with C > 1: ``channels="mean"``
    averages the PSNR of each channel (the authors'), ``"pooled"`` is the PSNR of the MSE over all channels
    (≤ the mean, by Jensen's inequality). Vectors (frame_dims 1) and single channels: the same."""
    if channels not in PSNR_CHANNELS:
        raise ValueError(f"channels must be one of {PSNR_CHANNELS}, got {channels!r}")
    if channels == "mean" and frame_dims == 3 and pred.dim() >= 3 and pred.shape[-3] > 1:
        return psnr_of(mse(pred, target, frame_dims=2, weight=weight), data_range).mean(-1)
    return psnr_of(mse(pred, target, frame_dims=frame_dims, weight=weight), data_range)


def psnr_of(err: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR from per-frame MSE values, capped at :data:`PSNR_CAP` for a perfect frame."""
    return (10 * torch.log10(data_range ** 2 / err)).clamp(max=PSNR_CAP)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, *, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03, data_range: float = 1.0,
         weight: torch.Tensor | None = None) -> torch.Tensor:
    """Structural similarity per frame (..., C, H, W) → (...), valid region, mean over channels.

    ``pred``'s leading dimensions may broadcast to ``target``'s (one frame compared with a whole horizon).
    See :class:`SSIMTarget`, which shares the target's work between several predictions.
    """
    return SSIMTarget(target, window=window, sigma=sigma, k1=k1, k2=k2, data_range=data_range,
                      weight=weight)(pred)


class SSIMTarget:
    """Target frames prepared for SSIM: their Gaussian moments are computed once, then any number of
    predictions are scored against them (a forecast and the repeat-last-frame baseline share them).

    Per window position, with μ, σ² and σ_xy the Gaussian-weighted means, variances and covariance,

        SSIM = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)),

    averaged over the positions of the valid region. Computed in float32 (float64 means per frame): the
    moments come from batched banded matrix products — the separable Gaussian filter on the valid region,
    far faster on CPU than 11-tap convolutions — on frames shifted by their own means, so σ² = E[x²] − μ²
    loses no digits to cancellation; it agrees with the float64 reference (scikit-image) to ~1e-8. What
    depends on the target alone (μ_y, μ_y² + C1, σ_y² + C2) is computed once, and each prediction's three
    maps (μ, E[x²], E[xy] of centred frames) go through one filter call, with in-place arithmetic after:
    the filter's matrix products are then most of the cost. Frames are processed :data:`CHUNK` at a time so
    that every intermediate map stays in the CPU's cache (5× faster than whole batches). A prediction whose
    leading dimensions broadcast to the target's, e.g. (B, 1, C, H, W) against (B, h, C, H, W), has its own
    moments computed once, not once per target frame. ``frame_ids`` (the target's leading shape; equal ids
    for equal frames, see WindowSet.frame_ids) lets overlapping windows share their target frames' moments:
    a batch of 64 windows at stride 1 over 40 steps holds 103 distinct frames in its 2,560 targets.
    """

    CHUNK = 64  # frames per pass (64 maps of 64×64 float32 = 1 MiB)

    def __init__(self, target: torch.Tensor, *, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
                 k2: float = 0.03, data_range: float = 1.0, weight: torch.Tensor | None = None,
                 frame_ids: torch.Tensor | None = None) -> None:
        if target.dim() < 3:
            raise ValueError(f"ssim needs frames (..., C, H, W), got shape {tuple(target.shape)}")
        c, h, w = target.shape[-3:]
        if h < window or w < window:
            raise ValueError(f"frames of {h}×{w} are smaller than the {window}×{window} SSIM window")
        self.shape = tuple(target.shape)
        self.c1, self.c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
        self.rows = _valid_filter(h, window, sigma, target.device)
        self.cols = self.rows if w == h else _valid_filter(w, window, sigma, target.device)
        frames = target.float().reshape(-1, h, w)
        self.slots = len(frames)
        self.index = None  # per slot (frame × channel), its row of the moments below; None: one row each
        if frame_ids is not None:
            ids = torch.as_tensor(frame_ids, device=target.device).reshape(-1)
            if ids.numel() * c != self.slots:
                raise ValueError(f"frame_ids of shape {tuple(frame_ids.shape)} do not match frames "
                                 f"{self.shape}")
            shared = _distinct_slots(ids, c)
            if shared is not None:
                kept, self.index = shared
                frames = frames[kept]
        self.centred, self.mu, self.mu_y, var = self._moments(frames)
        self.mu_y2_c1 = torch.addcmul(torch.full_like(self.mu_y, self.c1), self.mu_y, self.mu_y)
        self.var_c2 = var.add_(self.c2)
        self.centres = None  # per channel, the weights of the window positions (by their centre cell)
        if weight is not None:
            wt = torch.as_tensor(weight, dtype=torch.float32, device=target.device).expand(c, h, w)
            lo = (window - 1) // 2
            centres = wt[:, lo:lo + h - window + 1, lo:lo + w - window + 1]
            total = centres.sum((-1, -2), keepdim=True)
            # A channel without a counted window position falls back to the plain mean.
            self.centres = torch.where(total > 0, centres / total.clamp(min=1e-12),
                                       torch.full_like(centres, 1.0 / centres[0].numel()))

    def _blur(self, maps: torch.Tensor) -> torch.Tensor:
        return self.rows.T @ (maps @ self.cols)

    def _moments(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per frame: the frame minus its mean, the blurred centred frame (μ − mean), μ, and σ²."""
        mean = frames.mean((-1, -2), keepdim=True)
        centred = frames - mean
        mu = torch.empty(len(frames), *self.rows.shape[1:], self.cols.shape[1], device=frames.device)
        var = torch.empty_like(mu)
        for lo in range(0, len(frames), self.CHUNK):
            a = centred[lo:lo + self.CHUNK]
            m, second = self._blur(torch.stack([a, a * a]))
            mu[lo:lo + self.CHUNK], var[lo:lo + self.CHUNK] = m, second.addcmul_(m, m, value=-1)
        return centred, mu, mu + mean, var

    def __call__(self, pred: torch.Tensor) -> torch.Tensor:
        lead, frame = self.shape[:-3], self.shape[-3:]
        if tuple(pred.shape[-3:]) != frame or pred.dim() != len(self.shape):
            raise ValueError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {self.shape}")
        try:
            torch.broadcast_shapes(tuple(pred.shape[:-3]), lead)
        except RuntimeError:
            raise ValueError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {self.shape}") from None
        h, w = frame[-2:]
        x = pred.float().reshape(-1, h, w)
        same = tuple(pred.shape) == self.shape
        if not same:  # its moments once, then the frame standing for each target frame
            moments = self._moments(x)
            index = torch.arange(len(x), device=x.device).view(*pred.shape[:-2]).expand(*lead, frame[0]).reshape(-1)
        out = torch.empty(self.slots, dtype=torch.float64, device=x.device)
        for lo in range(0, self.slots, self.CHUNK):
            hi = min(lo + self.CHUNK, self.slots)
            rows = slice(lo, hi) if self.index is None else self.index[lo:hi]
            b, mu_b = self.centred[rows], self.mu[rows]
            if same:
                mean = x[lo:hi].mean((-1, -2), keepdim=True)
                a = x[lo:hi] - mean
                mu_a, var_a, cross = self._blur(torch.stack([a, a * a, a * b]))
                var_a.addcmul_(mu_a, mu_a, value=-1)
                mu_x = mu_a + mean
            else:
                i = index[lo:hi]
                a, mu_a, mu_x, var_a = (m[i] for m in moments)
                cross = self._blur(a * b)
            covariance_c2 = cross.mul_(2).addcmul_(mu_a, mu_b, value=-2).add_(self.c2)  # 2 σ_xy + C2
            num = (mu_x * self.mu_y[rows]).mul_(2).add_(self.c1).mul_(covariance_c2)
            den = torch.addcmul(self.mu_y2_c1[rows], mu_x, mu_x).mul_(var_a.add_(self.var_c2[rows]))
            ratio = num.div_(den)
            if self.centres is None:
                out[lo:hi] = ratio.mean(dim=(-1, -2), dtype=torch.float64)
            else:
                weights = self.centres[torch.arange(lo, hi, device=x.device) % frame[0]]
                out[lo:hi] = (ratio * weights).sum(dim=(-1, -2), dtype=torch.float64)
        return out.view(*lead, frame[0]).mean(-1)


def _distinct_slots(ids: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For frame ids (one per frame), the slots (frame × channel) of one frame per id, and for every slot the
    row of those it equals; None when no two ids are equal."""
    distinct, inverse = torch.unique(ids, return_inverse=True)
    if len(distinct) == len(ids):
        return None
    first = torch.empty(len(distinct), dtype=torch.long, device=ids.device)
    first.scatter_(0, inverse, torch.arange(len(ids), device=ids.device))  # any one of them: the frames are equal
    channel = torch.arange(channels, device=ids.device)
    return (first[:, None] * channels + channel).reshape(-1), (inverse[:, None] * channels + channel).reshape(-1)


@functools.lru_cache(maxsize=16)
def _valid_filter(size: int, window: int, sigma: float, device: torch.device) -> torch.Tensor:
    """(size, size−window+1) matrix whose column j holds the Gaussian window at rows j … j+window−1."""
    g = gaussian_window(window, sigma, dtype=torch.float32).to(device)
    out = torch.zeros(size, size - window + 1, dtype=torch.float32, device=device)
    for j in range(size - window + 1):
        out[j:j + window, j] = g
    return out


def psnr_from_mse(value: float, data_range: float = 1.0) -> float:
    return PSNR_CAP if value <= 0 else min(PSNR_CAP, 10 * math.log10(data_range ** 2 / value))


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")

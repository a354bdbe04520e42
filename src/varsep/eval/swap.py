"""Content swap: forecast the dynamics of one sequence with the content S of another (docs/evaluation.md).

Pairing rule (deterministic, the same for every data set): among the n test windows of a horizon, window
i takes its content from window ``(i + n // 2) mod n`` — the window half the test set away. For n ≥ 2 no
window is paired with itself; for even n the pairs are mutual (i gives S to its partner and takes its
partner's). Test windows are ordered by sequence, so the partner lies in another sequence (another
Moving MNIST sequence, chair, WaveEq sequence or SST zone) unless one sequence holds more than half of the
windows; ``same_sequence_pairs`` in the report counts such pairs. The pairing is defined on the whole
test set, so scoring only the first windows (``limit``) does not change any window's partner.

The official Moving MNIST protocol gave sequence i the digits of a fresh random pair on the trajectory of
sequence N−1−i as content source; ours takes an existing test sequence, which is the same distribution.

Forecast: ``S' = model.encode(cond_of_partner)[0]``, ``model.forecast(cond, h, content=S')``.

Ground truth, where the data can render it:
- Moving MNIST (``dataset.test_motion()``): the partner's digits on window i's trajectories, for both
  assignments of the two digits to the two trajectories; per sequence and per metric the better score
  (lower MSE, higher PSNR, higher SSIM, each from its mean over the horizon) is kept (Appendix D.3).
- Chairs (``windows.swap_truth``): the partner's chair at window i's views (one ground truth).
Elsewhere (WaveEq, SST, …) no ground truth exists: ``change_mse`` measures how much the forecast moves
when S is replaced (per step, model scale; 0 means S is ignored), and the figures show the scaled
difference (paper Fig. 2 swap row, Fig. 7).
"""

from __future__ import annotations

import numpy as np
import torch

from varsep.data.base import SequenceDataset, WindowSet
from varsep.eval import metrics
from varsep.eval.scoring import CurveAccumulator, FrameScorer

PAIRING = "window i takes S from window (i + n//2) mod n of the n test windows"
BETTER = {"mse": np.argmin, "psnr": np.argmax, "ssim": np.argmax}


def partners(n: int) -> np.ndarray:
    """The content source of each of ``n`` windows (see the module docstring)."""
    return (np.arange(n) + n // 2) % n


def sequence_ids(windows: WindowSet, indices: np.ndarray) -> np.ndarray | None:
    """The sequence (video, chair, zone, Moving MNIST sequence…) each window comes from, when known."""
    return windows.sequence_ids(np.asarray(indices, dtype=np.int64))


def swap_truths(dataset: SequenceDataset | None, windows: WindowSet, content: np.ndarray,
                dynamic: np.ndarray) -> np.ndarray | None:
    """Ground truths (A, n, length, *frame) float32 in [0, 1] of swaps (content → dynamic), or None.

    A is the number of admissible truths: 2 for two-digit Moving MNIST (both assignments), 1 for chairs.
    """
    rendered = windows.swap_truth(content, dynamic)
    if rendered is not None:
        return rendered[None]
    motion = dataset.test_motion() if dataset is not None else None
    if motion is None:
        return None
    truths = motion.swap_truths(content, dynamic, steps=windows.length)  # (A, n, T, H, W) uint8
    out = truths.astype(np.float32)[:, :, :, None]
    out *= np.float32(1 / 255)
    return out


def swap_forecast(model, cond: torch.Tensor, content_cond: torch.Tensor, horizon: int) -> torch.Tensor:
    """Forecasts of the windows ``cond`` with the content S of the windows ``content_cond``."""
    return model.forecast_with_swap(cond, content_cond, horizon)[1]


class SwapScorer:
    """Accumulates swap scores over batches: best-of-assignments metrics, or the change of the forecast."""

    def __init__(self, scorer: FrameScorer, dataset: SequenceDataset | None, horizon: int) -> None:
        self.scorer = scorer
        self.dataset = dataset
        self.horizon = horizon
        self.n = len(scorer.windows)
        self.partner = partners(self.n)
        self.acc = CurveAccumulator(horizon)
        self.has_truth: bool | None = None
        self.assignments = 0
        self.same_sequence = 0

    def content_indices(self, idx: np.ndarray) -> np.ndarray:
        return self.partner[idx]

    def add(self, idx: np.ndarray, frames: torch.Tensor, pred: torch.Tensor, swapped: torch.Tensor) -> None:
        """One batch: windows ``idx`` (``frames``), their forecasts and their swapped forecasts."""
        span = self.scorer.span
        content = self.partner[idx]
        ids = sequence_ids(self.scorer.windows, np.concatenate([idx, content]))
        if ids is not None:
            self.same_sequence += int((ids[:len(idx)] == ids[len(idx):]).sum())
        truths = swap_truths(self.dataset, self.scorer.windows, content, idx)
        self.has_truth = truths is not None
        values: dict[str, torch.Tensor] = {
            "change_mse": metrics.mse(swapped, pred, frame_dims=self.scorer.frame_dims)}
        if truths is not None:
            self.assignments = len(truths)
            truth = torch.from_numpy(truths[:, :, span:]).to(pred.device)
            values.update(self.best_of(idx, frames, swapped, truth))
        self.acc.add_all(values, len(idx))

    def best_of(self, idx: np.ndarray, frames: torch.Tensor, swapped: torch.Tensor,
                truths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per metric, the per-step curve (b, h) against the truth whose horizon mean scores best."""
        per_truth = [self.scorer.compare(idx, frames, swapped, t) for t in truths]
        out = {}
        for name in per_truth[0]:
            if name not in BETTER:
                continue
            stacked = torch.stack([p[name] for p in per_truth])  # (A, b, h)
            means = stacked.mean(-1).cpu().numpy()  # (A, b)
            choice = torch.from_numpy(BETTER[name](means, axis=0)).to(stacked.device)
            out[name] = stacked.gather(0, choice.view(1, -1, 1).expand(1, *stacked.shape[1:]))[0]
        return out

    def result(self) -> dict[str, object]:
        out = self.acc.result()
        out.update({"pairing": PAIRING, "ground_truth": bool(self.has_truth),
                    "assignments": self.assignments, "same_sequence_pairs": self.same_sequence})
        return out

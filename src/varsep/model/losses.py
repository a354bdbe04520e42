"""The training objective (eq. 8, 9, 11, 12, 13; docs/model.md).

For a training window v_t0 … v_t1 (ν+1 frames) with conditioning window V_τ(t0):

- L_pred  = mean over forecast frames and pixels of (v̂ − v)²; the forecast covers frames
  ``first_index`` … ν (all of them with ``reconstruct_cond``);
- L_AE    = mse(D(S, E_T(V_τ(t0 + i))), the frame that code stands for), one i per batch;
- L_reg^S = (1/d)‖E_S(V_τ(t0)) − E_S(V_τ(t1 − τ))‖² averaged over the batch — the mean squared difference;
  with skip connections ``loss.s_reg``: "concat" = one mean over the code and every skip map together
  (the authors'), "per_tensor" = the sum of one mean squared difference per tensor;
- L_reg^T = "half_sum": 0.5·Σ_dims T_t0² averaged over the batch (the authors', with λ_T = 1e-3),
            "half_mean": 0.5·mean of T_t0² over all elements (the authors' SST 2-D codes),
            "mean": mean of T_t0² over all elements, "paper": (1/p)‖T_t0‖² (eq. 12).

With ``model.anchor`` "last_residual" (reconstruct_cond only) the forecast frames are D's frames plus
v_last − D(S, T_last), the model's error on the last conditioning frame (L_AE unchanged: D renders frames);
with "last_frame" every decoded frame is D's output plus the last frame of the window its code was encoded
from (the conditioning window for the forecast, the auto-encoding window for L_AE). The terms above compare
frames either way.

With a mask (``model.valid_mask``: land, or cells outside the field) L_pred and L_AE are means over the
valid cells only, and the invalid cells of the windows are set to 0 before anything sees them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from varsep.config import LossConfig
from varsep.model.separable import Content, SeparableModel
from varsep.spec import ae_choices


def dynamic_regularizer(t0: torch.Tensor, kind: str) -> torch.Tensor:
    """L_reg^T of codes t0 (B, …) in one of the documented definitions."""
    sq = t0.float().pow(2).flatten(1)
    if kind == "half_sum":
        return 0.5 * sq.sum(1).mean()
    if kind == "half_mean":
        return 0.5 * sq.mean()
    if kind == "mean":
        return sq.mean()
    if kind == "paper":
        return sq.sum(1).mean() / sq.shape[1]
    raise ValueError(f"unknown L_reg^T definition {kind!r}")


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of (pred − target)² over the valid cells (``valid``: the frame's shape) of every frame."""
    if valid is None:
        return F.mse_loss(pred.float(), target.float())
    err = (pred.float() - target.float()).pow(2).masked_fill(~valid, 0)
    return err.sum() / (valid.sum() * (err.numel() // valid.numel()))


def content_invariance(first: Content, last: Content, kind: str = "concat") -> torch.Tensor:
    """L_reg^S: the mean squared difference of the content codes and, with skip connections, of the skip
    maps — one mean over all their elements together (``concat``, the authors') or the sum of one mean
    per tensor (``per_tensor``). Without skip maps the two are the same."""
    pairs = list(zip(first.tensors(), last.tensors(), strict=True))
    if kind == "per_tensor":
        return sum(F.mse_loss(a.float(), b.float()) for a, b in pairs)
    if kind != "concat":
        raise ValueError(f"unknown L_reg^S definition {kind!r}")
    if len(pairs) == 1:
        return F.mse_loss(pairs[0][0].float(), pairs[0][1].float())
    total = sum((a.float() - b.float()).pow(2).sum() for a, b in pairs)
    return total / sum(a.numel() for a, _ in pairs)


def loss_terms(
    model: SeparableModel, frames: torch.Tensor, ae_index: int, weights: LossConfig,
    keep: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The four loss terms and their weighted sum ``loss`` for training windows (B, span, *frame).

    Frames are observed every ``model.time_stride`` frames of the window (all of them by default); codes
    evolve one integration step per frame in between. ``keep`` (B, n) optionally lists, per sequence, the
    only forecast frames (indices into the frames from ``first_index`` on) that L_pred sees: training
    with irregular times.

    Encoder passes that can share a call are batched together (two windows through E_S, two through
    E_T) unless an encoder normalises over the batch: then each window has its own call, in the authors'
    order (E_S: first, last; E_T: the auto-encoding window, then the conditioning one). Every decoded frame
    — the auto-encoded one and the forecast — goes through D at once; with per-frame BatchNorm the frames
    are normalised one by one in that order (see SeparableModel.decode), with plain BatchNorm
    (``model.batch_stats: pooled``) the auto-encoded frame has a call of its own.
    """
    stride = model.time_stride
    frames = model.mask_frames(frames)
    observed = frames[:, ::stride] if stride > 1 else frames
    length = observed.shape[1]
    cond, first = model.cond_frames, model.first_index
    cond_window = observed[:, :cond]
    use_ae = weights.lambda_ae > 0
    use_s = model.uses_content and weights.lambda_s > 0
    i = int(ae_index)
    if use_ae and not 0 <= i < ae_choices(length, cond, first):
        raise ValueError(f"auto-encoding offset {i} does not fit windows of {length} frames")

    content, content_last = _encode_pair(model.encode_content, model.batch_encoders, cond_window,
                                         observed[:, length - cond:] if use_s else None)
    if use_ae and i == 0 and model.batch_encoders:
        t0 = t_ae = model.encode_dynamics(cond_window)  # the AE window is the conditioning window: encode once
    elif use_ae and not model.batch_encoders:  # separate calls in the authors' order: the AE window first
        t_ae = model.encode_dynamics(observed[:, i:i + cond])
        t0 = model.encode_dynamics(cond_window)
    else:
        t0, t_ae = _encode_pair(model.encode_dynamics, model.batch_encoders, cond_window,
                                observed[:, i:i + cond] if use_ae else None)

    codes = model.rollout(t0, (length - 1 - first) * stride)
    if stride > 1:
        codes = codes[:, ::stride]
    targets = observed[:, first:]
    t_last = codes[:, cond - 1:cond] if model.anchor == "last_residual" and keep is not None else None
    if keep is not None:
        codes = _gather(codes, keep)
        targets = _gather(targets, keep)
    if use_ae and model.frame_norm:  # one call, per-frame statistics in the authors' order: AE frame first
        decoded = model.decode(content, torch.cat([t_ae.unsqueeze(1), codes], dim=1))
        ae_frame, forecast = decoded[:, 0], decoded[:, 1:]
    elif use_ae and model.batch_decoder:
        decoded = model.decode(content, torch.cat([codes, t_ae.unsqueeze(1)], dim=1))
        forecast, ae_frame = decoded[:, :-1], decoded[:, -1]
    else:
        forecast = model.decode(content, codes)
        ae_frame = model.decode_frame(content, t_ae) if use_ae else None

    if model.anchor == "last_residual":  # the model's error on the last conditioning frame, carried forward
        last = forecast[:, cond - 1:cond] if t_last is None else model.decode(content, t_last)
        forecast = forecast + (cond_window[:, -1:] - last)
    elif model.anchor == "last_frame":  # D renders departures from the last frame of each code's window
        forecast = forecast + cond_window[:, -1:]
        if ae_frame is not None:
            ae_frame = ae_frame + observed[:, i + cond - 1]

    zero = frames.new_zeros((), dtype=torch.float32)
    terms = {
        "pred": masked_mse(forecast, targets, model.valid_mask),
        "ae": masked_mse(ae_frame, observed[:, i + first], model.valid_mask) if ae_frame is not None else zero,
        "reg_s": content_invariance(content, content_last, weights.s_reg) if use_s else zero,
        "reg_t": dynamic_regularizer(t0, weights.t_reg) if model.uses_content else zero,
    }
    terms["loss"] = (weights.lambda_pred * terms["pred"] + weights.lambda_ae * terms["ae"]
                     + weights.lambda_s * terms["reg_s"] + weights.lambda_t * terms["reg_t"])
    return terms


def _gather(seq: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """seq (B, n, …) → (B, k, …): row b keeps the positions index[b]."""
    idx = index.long().view(*index.shape, *([1] * (seq.dim() - 2))).expand(-1, -1, *seq.shape[2:])
    return torch.gather(seq, 1, idx)


def _encode_pair(encode, batched: bool, first: torch.Tensor, second: torch.Tensor | None):
    """encode(first), encode(second) — in one call when allowed; (x, None) when there is no second."""
    if second is None:
        return encode(first), None
    if not batched:
        return encode(first), encode(second)
    both = encode(torch.cat([first, second], dim=0))
    if both is None:
        return None, None
    n = first.shape[0]
    if isinstance(both, Content):
        return tuple(both.split([n, n]))
    return both[:n], both[n:]

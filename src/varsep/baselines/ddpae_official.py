"""The official DDPAE code's checkpoints in varsep's names: its ``base_model.save`` writes four state dicts per
epoch (``net_<name>_<epoch>.pth``: pose_model, content_lstm, object_encoder, object_decoder); this maps them
onto :class:`varsep.baselines.ddpae.DDPAE` (the files themselves are found and read by ``varsep.train.imports``)."""

from __future__ import annotations

import torch

from .base import check_state_dict
from .ddpae import DDPAE

OFFICIAL_NETS = ("pose_model", "content_lstm", "object_encoder", "object_decoder")
_OFFICIAL_PREFIXES = {  # (official net, official key prefix) → our key prefix
    ("pose_model", "image_encoder.main."): "frame_encoder.net.",
    ("pose_model", "encode_rnn."): "pose_encoder.",
    ("pose_model", "predict_rnn."): "pose_predictor.",
    ("pose_model", "beta_mu_layer."): "beta_mean.",
    ("pose_model", "beta_sigma_layer."): "beta_std.",
    ("pose_model", "initial_pose_rnn."): "initial_pose_rnn.",
    ("pose_model", "initial_pose_mu."): "initial_pose_mean.",
    ("pose_model", "initial_pose_sigma."): "initial_pose_std.",
    ("content_lstm", "encoder."): "content_rnn.",
    ("content_lstm", "out_layer."): "content_head.",
    ("object_encoder", "main."): "object_encoder.net.",
    ("object_decoder", "main."): "object_decoder.net.",
}
_CELLS = ("pose_encoder.", "pose_predictor.")  # nn.LSTM there, nn.LSTMCell here: the same tensors without "_l0"


def from_official_state_dicts(states: dict[str, dict[str, torch.Tensor]], model: DDPAE) -> dict[str, torch.Tensor]:
    """Our state dict from the official code's four (``net_<name>_<epoch>.pth``: pose_model, content_lstm,
    object_encoder, object_decoder; ``module.`` prefixes of DataParallel removed); every name and shape checked."""
    missing = [name for name in OFFICIAL_NETS if name not in states]
    if missing:
        raise ValueError(f"the official DDPAE checkpoint has four nets; missing: {', '.join(missing)}")
    out: dict[str, torch.Tensor] = {}
    for net, state in states.items():
        if net not in OFFICIAL_NETS:
            raise ValueError(f"unknown official DDPAE net {net!r} (expected {', '.join(OFFICIAL_NETS)})")
        for key, value in state.items():
            key = key.removeprefix("module.")
            ours = next((new + key[len(old):] for (n, old), new in _OFFICIAL_PREFIXES.items()
                         if n == net and key.startswith(old)), None)
            if ours is None:
                raise ValueError(f"unexpected key {net}/{key} in the official DDPAE checkpoint")
            if ours.startswith(_CELLS):
                ours = ours.removesuffix("_l0")
            out[ours] = value
    for key in model.state_dict():  # BatchNorm's step counter came with PyTorch 0.4.1, after the official code
        if key.endswith(".num_batches_tracked"):
            out.setdefault(key, torch.zeros((), dtype=torch.long))
    check_state_dict(out, {k: tuple(v.shape) for k, v in model.state_dict().items()}, "DDPAE")
    return out

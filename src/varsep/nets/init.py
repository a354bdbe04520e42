"""Weight initialisation of the paper (Appendix E.2, docs/model.md, settings per data set)."""

from __future__ import annotations

from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.InstanceNorm2d)


def init_encoder_decoder(module: nn.Module, std: float = 0.02) -> None:
    """Linear/conv weights N(0, 0.02), biases 0, normalisation weights N(1, 0.02) and biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def init_orthogonal(module: nn.Module, gain: float, *, norm_std: float | None = None) -> None:
    """Orthogonal weights with ``gain`` and zero biases for every linear/conv layer (the integrator);
    normalisation weights 1, or drawn N(1, ``norm_std``) when given (the authors' initialisation of their
    2-D integrator draws its BatchNorm weights with the integrator's gain), and biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and m.weight is not None:
            if norm_std is None:
                nn.init.ones_(m.weight)
            else:
                nn.init.normal_(m.weight, 1.0, norm_std)
            nn.init.zeros_(m.bias)

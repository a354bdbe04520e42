"""Convolutions that train fast under CPU bf16 autocast.

On this kind of CPU (AMX), oneDNN runs bf16 convolutions forward and their input gradient very fast, but
its bf16 *weight* gradient is, for many of our layer shapes (4×4 stride-2 transposed convolutions, 3×3
stride-1 convolutions), 15–100× slower than the fp32 one (measured in docs/performance.md). Under CPU bf16
autocast the convolutions of our networks therefore compute

- the output and the input gradient in bf16 (as autocast would), and
- the weight and bias gradients in fp32 from the same bf16 activations and output gradients —

the same mathematics, a more accurate weight gradient, and the fast kernel every time. Outside bf16
autocast (fp32 training, evaluation, GPUs) the layers are plain ``nn.Conv2d`` / ``nn.ConvTranspose2d``.
:func:`use_fast_bf16_convolutions` switches the layers of a built model in place: parameters, state-dict
keys and checkpoints do not change.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _bf16_autocast_on_cpu(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


class _BF16Convolution(torch.autograd.Function):
    """y = conv(x, w, b) in bf16; dL/dx in bf16; dL/dw and dL/db in fp32 (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
                padding: list[int], dilation: list[int], transposed: bool, output_padding: list[int],
                groups: int) -> torch.Tensor:
        xb = x.to(torch.bfloat16)
        wb = weight.to(torch.bfloat16)
        bb = bias.to(torch.bfloat16) if bias is not None else None
        ctx.save_for_backward(xb, wb)
        ctx.args = (stride, padding, dilation, transposed, output_padding, groups)
        ctx.has_bias = bias is not None
        ctx.x_dtype = x.dtype
        return torch.ops.aten.convolution(xb, wb, bb, stride, padding, dilation, transposed, output_padding, groups)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xb, wb = ctx.saved_tensors
        stride, padding, dilation, transposed, output_padding, groups = ctx.args
        grad_b = grad.to(torch.bfloat16)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(grad_b, xb, wb, None, stride, padding, dilation, transposed,
                                                     output_padding, groups, [True, False, False])[0]
            gx = gx.to(ctx.x_dtype)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            grad_f = grad_b.float()
            bias_sizes = [wb.shape[1] * groups if transposed else wb.shape[0]] if ctx.has_bias else None
            _, gw, gb = torch.ops.aten.convolution_backward(
                grad_f, xb.float(), wb.float(), bias_sizes, stride, padding, dilation, transposed,
                output_padding, groups, [False, bool(ctx.needs_input_grad[1]), bool(ctx.has_bias)])
        return gx, gw, gb, None, None, None, None, None, None


class FastConv2d(nn.Conv2d):
    """nn.Conv2d whose bf16-autocast backward computes the weight gradient in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _bf16_autocast_on_cpu(x) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return _BF16Convolution.apply(x, self.weight, self.bias, list(self.stride), list(self.padding),
                                          list(self.dilation), False, [0, 0], self.groups)


class FastConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d whose bf16-autocast backward computes the weight gradient in fp32."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if not _bf16_autocast_on_cpu(x) or output_size is not None or self.padding_mode != "zeros":
            return super().forward(x, output_size)
        with torch.autocast("cpu", enabled=False):
            return _BF16Convolution.apply(x, self.weight, self.bias, list(self.stride), list(self.padding),
                                          list(self.dilation), True, list(self.output_padding), self.groups)


def use_fast_bf16_convolutions(module: nn.Module) -> nn.Module:
    """Switch every Conv2d / ConvTranspose2d of ``module`` to the fast-bf16 variant, in place."""
    for m in module.modules():
        if type(m) is nn.Conv2d:
            m.__class__ = FastConv2d
        elif type(m) is nn.ConvTranspose2d:
            m.__class__ = FastConvTranspose2d
    return module


__all__ = ["FastConv2d", "FastConvTranspose2d", "use_fast_bf16_convolutions"]

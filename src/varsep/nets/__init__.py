"""Encoder and decoder networks: plain ``nn.Module`` classes built from integers and shapes.

No network here knows configs or data sets: varsep.model.families turns ``model.encoder`` /
``model.decoder`` family names and a data spec into these constructors' arguments.

- :mod:`varsep.nets.mlp` — multilayer perceptrons (WaveEq, WaveEq-100, vectors of any size);
- :mod:`varsep.nets.dcgan` — DCGAN encoder/decoder for 64×64 frames (Moving MNIST, Chairs' decoder);
- :mod:`varsep.nets.resnet` — the ResNet18 encoder of DrNet (Chairs: the authors' variant and a linear-head one);
- :mod:`varsep.nets.sst` — the authors' SST encoder/decoder (2-D codes, three skip maps);
- :mod:`varsep.nets.vgg` — VGG16-style encoders/decoders with optional skips and 2-D codes (TaxiBJ, KTH, SST);
- :mod:`varsep.nets.norm` — BatchNorm with per-frame statistics for decoders called on stacked frames;
- :mod:`varsep.nets.init` — the paper's weight initialisation.
"""

from varsep.nets.dcgan import DCGANDecoder, DCGANEncoder
from varsep.nets.init import init_encoder_decoder, init_orthogonal
from varsep.nets.mlp import MLPDecoder, MLPEncoder, mlp
from varsep.nets.norm import FrameBatchNorm2d, frame_groups, per_frame_norm
from varsep.nets.resnet import ResNet18Encoder
from varsep.nets.sst import SSTDecoder, SSTEncoder
from varsep.nets.vgg import VGG32, VGG64, VGG64_2D, VGGDecoder, VGGEncoder, VGGLayout

__all__ = ["VGG32", "VGG64", "VGG64_2D", "DCGANDecoder", "DCGANEncoder", "FrameBatchNorm2d", "MLPDecoder",
           "MLPEncoder", "ResNet18Encoder", "SSTDecoder", "SSTEncoder", "VGGDecoder", "VGGEncoder", "VGGLayout",
           "frame_groups", "init_encoder_decoder", "init_orthogonal", "mlp", "per_frame_norm"]

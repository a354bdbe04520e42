"""Every packaged paper configuration has the authors' parameter counts, sub-network by sub-network.

The authors' counts (E_S, E_T, integrator, D) are those of their networks built from their README's
command lines (JeremDona/spatiotemporal_variable_separation at 3f5e041; docs/model.md, "Where we depart").
The only differences are the biases of convolutions (and transposed convolutions) placed in front of a
BatchNorm, which the authors keep and varsep drops (BatchNorm subtracts them again; they change no
function the network can compute). Each expected difference below is that sum of output channels.
"""

from __future__ import annotations

import pytest
import torch

from varsep.config import load_config
from varsep.data import dataset_class
from varsep.model import build_model, count_parameters
from varsep.spec import DataSpec

NETS = ("content_encoder", "dynamic_encoder", "dynamics", "decoder")

# preset: (the authors' E_S, E_T, integrator, D), (the biases before BatchNorm varsep drops, per sub-network)
AUTHORS = {
    "sst": ((4_169_248, 3_251_584, 5_904_768, 2_483_523),
            # E: 64+64 | 128+128 | 3·256 | 512 + d (the last d→d conv keeps its bias); D: 256+256+128 |
            # 128+64+64 | 128+64+64 | 64+64+1; the integrator keeps its biases, as the authors'
            (64 + 64 + 128 + 128 + 3 * 256 + 512 + 196, 64 + 64 + 128 + 128 + 3 * 256 + 512 + 64, 0,
             640 + 256 + 256 + 129)),
    "chairs": ((11_786_112, 11_242_014, 273_418, 3_888_963),
               # ResNet18: stem 64, BasicBlock convs 2·(64+64), 2·(128+128)+128, 2·(256+256)+256,
               # 2·(512+512)+512 (shortcut convs); DCGAN decoder: 512+256+128+64
               (4_800, 4_800, 0, 960)),
    "mmnist": ((3_809_088, 2_924_244, 283_668, 3_968_833),
               # DCGAN: encoder convs 2–4 (128+256+512); decoder 512+256+128+64
               (896, 896, 0, 960)),
    "taxibj": ((8_692_480, 7_807_420, 283_668, 8_852_482),
               # VGG32: 13 convs (64·2+128·2+256·3+512·3 = 2688) + the code head (d = 128 / p = 20);
               # decoder: 512 (head) + 512+512+256 + 256+256+128 + 128+64 + 64
               (2_688 + 128, 2_688 + 20, 0, 2_688)),
    "waveeq": ((26_056_832, 26_056_832, 887_904, 7_841_296), (0, 0, 0, 0)),
    "waveeq100": ((7_041_632, 7_041_632, 887_904, 42_700), (0, 0, 0, 0)),
}


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_parameter_counts_equal_the_authors(name):
    config = load_config(name)
    data = dataset_class(config.data.name)
    spec = DataSpec(data.nominal_frame_shape, config.data.cond_frames, config.data.pred_frames)
    torch.manual_seed(0)
    model = build_model(config.model, spec, default_encoder=data.default_encoder,
                        default_decoder=data.default_decoder)
    counts = tuple(count_parameters(getattr(model, net)) for net in NETS)
    theirs, biases = AUTHORS[name]
    assert counts == tuple(a - b for a, b in zip(theirs, biases, strict=True)), (name, counts)

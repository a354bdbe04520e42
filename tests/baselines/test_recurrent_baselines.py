"""Tests of the recurrent baselines: ConvLSTM, PredRNN (+ V2), PredRNN++, MIM and their shared machinery.

Reference numbers: /work/notes/issue18_baselines_spec.md (§1–§5, counts computed by instantiating OpenSTL's
classes) and the OpenSTL, Moving MNIST 10→10 benchmark table (docs/en/model_zoos/video_benchmarks.md of
chengtan9907/OpenSTL: ConvLSTM-S 15.0M, PredRNN 23.8M, PredRNN.V2 23.9M, PredRNN++ 38.6M, MIM 38.0M).
The OpenSTL equivalence tests load OpenSTL's own model files from a local checkout and skip without one.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _openstl_recurrent_reference as reference

from varsep.baselines import convlstm, mim, predrnn, predrnnpp
from varsep.baselines.base import count_parameters
from varsep.baselines.recurrent import (
    patchify,
    reverse_sampling_probs,
    scheduled_sampling_eta,
    teacher_mask,
    unpatchify,
)

MODELS = {
    "ConvLSTM": (convlstm.ConvLSTM, convlstm.from_openstl_state_dict),
    "PredRNN": (predrnn.PredRNN, predrnn.from_openstl_state_dict),
    "PredRNNv2": (predrnn.PredRNNv2, predrnn.from_openstl_state_dict),
    "PredRNNpp": (predrnnpp.PredRNNpp, predrnnpp.from_openstl_state_dict),
    "MIM": (mim.MIM, mim.from_openstl_state_dict),
}
NAMES = list(MODELS)

# (computed count from the notes, OpenSTL table value in millions, unused parameters from the notes,
#  number of state-dict keys from the notes)
REFERENCE = {
    "ConvLSTM": (15_083_520, 15.0, 3_407_872, 17),
    "PredRNN": (23_838_720, 23.8, 0, 21),
    "PredRNNv2": (23_855_104, 23.9, 0, 22),
    "PredRNNpp": (38_584_320, 38.6, 3_276_800, 35),
    "MIM": (38_043_648, 38.0, 98_304, 45),
}
LR = {"ConvLSTM": 5e-4, "PredRNN": 5e-4, "PredRNNv2": 5e-4, "PredRNNpp": 1e-4, "MIM": 5e-4}

SMALL = {"frame_shape": (1, 16, 16), "cond_frames": 3, "train_horizon": 3, "num_hidden": (8, 8), "filter_size": 3,
         "patch_size": 4}

OPENSTL = reference.load()
needs_openstl = pytest.mark.skipif(OPENSTL is None, reason=f"no OpenSTL source checkout at {reference.ROOT}")

pytestmark = pytest.mark.usefixtures("one_thread")


def small(name: str, **kw):
    return MODELS[name][0](**{**SMALL, **kw})


# ------------------------------------------------------------------------------------- reference configs
@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_at_reference_config(name):
    computed, table_m, unused, n_keys = REFERENCE[name]
    with torch.device("meta"):
        model = MODELS[name][0]()
    n = count_parameters(model)
    assert n == computed
    assert abs(n - table_m * 1e6) <= 0.01 * table_m * 1e6  # OpenSTL, Moving MNIST 10→10 benchmark table
    dead = model.unused_parameter_names()
    assert sum(p.numel() for k, p in model.named_parameters() if k in dead) == unused
    assert len(model.state_dict()) == n_keys


def test_reference_defaults():
    for name, (cls, _) in MODELS.items():
        d = cls.DEFAULTS
        assert (d["optimizer"], d["lr"], d["batch_size"], d["epochs"]) == ("adam", LR[name], 16, 200)
        assert d["lr_schedule"]["name"] == "onecycle" and d["lr_schedule"]["final_div_factor"] == 1e4
        assert "OpenSTL" in d["source"]
    assert predrnn.PredRNNv2.DEFAULTS["scheduled_sampling"]["reverse"] is True
    assert predrnn.PredRNNv2.DEFAULTS["decouple_beta"] == 0.1
    assert predrnn.PredRNN.DEFAULTS["scheduled_sampling"]["reverse"] is False


def test_single_step_at_reference_size():
    model = predrnnpp.PredRNNpp()  # the largest of the four; one recurrent step only
    x = torch.rand(1, 16, 16, 16)
    with torch.no_grad():
        y, _ = model.step(x, model.init_state(1, x))
    assert y.shape == (1, 16, 16, 16) and torch.isfinite(y).all()


# ------------------------------------------------------------------------------------------- machinery
def test_patchify_layout_and_inverse():
    b, t, c, h, w, p = 2, 3, 2, 8, 12, 4
    x = torch.randn(b, t, c, h, w)
    y = patchify(x, p)
    assert y.shape == (b, t, p * p * c, h // p, w // p)
    for a in range(p):
        for bb in range(p):
            for ch in range(c):
                assert torch.equal(y[:, :, (a * p + bb) * c + ch], x[:, :, ch, a::p, bb::p])
    assert torch.equal(unpatchify(y, p), x)
    with pytest.raises(ValueError):
        patchify(torch.zeros(1, 1, 1, 6, 8), 4)


@needs_openstl
def test_patchify_matches_openstl_reshape_patch():
    x = torch.randn(2, 3, 2, 8, 12)
    theirs = OPENSTL.reshape_patch(x.permute(0, 1, 3, 4, 2).contiguous(), 4)
    assert torch.equal(patchify(x, 4).permute(0, 1, 3, 4, 2), theirs)


def test_scheduled_sampling_eta_hand_computed():
    # eta decremented by 2e-5 before each step's draw (OpenSTL starts at 1.0), 0 from step 50,000
    assert scheduled_sampling_eta(0) == pytest.approx(0.99998, abs=1e-12)
    assert scheduled_sampling_eta(99) == pytest.approx(0.998, abs=1e-12)
    assert scheduled_sampling_eta(24_999) == pytest.approx(0.5, abs=1e-12)
    assert scheduled_sampling_eta(37_499) == pytest.approx(0.25, abs=1e-12)
    assert scheduled_sampling_eta(49_999) == pytest.approx(0.0, abs=1e-12)
    assert scheduled_sampling_eta(50_000) == 0.0 and scheduled_sampling_eta(10**6) == 0.0


def test_reverse_sampling_probs_hand_computed():
    assert reverse_sampling_probs(0) == (0.5, 0.5)
    assert reverse_sampling_probs(24_999) == (0.5, 0.5)
    assert reverse_sampling_probs(25_000) == pytest.approx((0.5, 0.5))
    r, e = reverse_sampling_probs(30_000)  # (step − 25k)/5k = 1
    assert r == pytest.approx(1 - 0.5 * math.exp(-1)) and e == pytest.approx(0.4)
    r, e = reverse_sampling_probs(37_500)
    assert r == pytest.approx(1 - 0.5 * math.exp(-2.5)) and e == pytest.approx(0.25)
    assert reverse_sampling_probs(50_000) == (1.0, 0.0)


@needs_openstl
def test_eta_matches_openstl_accumulated_schedule():
    cfg = reference.configs((1, 4, 4), 3, 3, patch_size=2, scheduled_sampling=1, sampling_stop_iter=300,
                            sampling_changing_rate=0.01)
    eta = 1.0
    for step in range(320):  # one call per optimiser step, as in OpenSTL's training_step
        eta, _ = OPENSTL.schedule_sampling(eta, step, 1, cfg)
        assert max(eta, 0.0) == pytest.approx(scheduled_sampling_eta(step, stop_iter=300, changing_rate=0.01),
                                              abs=1e-9)


def test_teacher_masks():
    torch.manual_seed(0)
    b, tc, th = 4000, 10, 10
    m = teacher_mask(0, b, tc, th)
    assert m.shape == (b, tc + th - 1)
    assert (m[:, :tc] == 1).all() and m[:, tc:].mean().item() > 0.999
    assert (teacher_mask(50_000, b, tc, th)[:, tc:] == 0).all()
    assert (teacher_mask(10, b, tc, th, scheduled_sampling=False)[:, tc:] == 0).all()
    m = teacher_mask(24_999, b, tc, th)
    assert abs(m[:, tc:].mean().item() - 0.5) < 0.02
    rev = teacher_mask(0, b, tc, th, reverse=True)
    assert (rev[:, 0] == 1).all()
    assert abs(rev[:, 1:tc].mean().item() - 0.5) < 0.02 and abs(rev[:, tc:].mean().item() - 0.5) < 0.02
    rev = teacher_mask(50_000, b, tc, th, reverse=True)
    assert (rev[:, :tc] == 1).all() and (rev[:, tc:] == 0).all()
    # the model's mask follows its own flag
    assert small("PredRNNv2").sampling_mask(50_000, 3).tolist() == [[1, 1, 1, 0, 0]] * 3
    assert small("PredRNN").sampling_mask(50_000, 3).tolist() == [[1, 1, 1, 0, 0]] * 3
    torch.manual_seed(1)
    assert (small("PredRNNv2").sampling_mask(0, 200)[:, 1:3] == 0).any()  # r_eta = 0.5 on the input part


# ------------------------------------------------------------------------------------ small-config models
@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_terms(name):
    torch.manual_seed(0)
    model = small(name)
    cond, target = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    out = model.forecast(cond, 3)
    assert out.shape == (2, 3, 1, 16, 16) and torch.isfinite(out).all()
    terms = model.training_terms(cond, target, step=30_000)
    assert {"loss", "mse"} <= set(terms) and all(v.dim() == 0 for v in terms.values())
    assert ("decouple" in terms) == (name == "PredRNNv2")
    if name != "PredRNNv2":
        assert torch.allclose(terms["loss"], terms["mse_all_steps"])
    with pytest.raises(ValueError):
        model.forecast(torch.rand(2, 2, 1, 16, 16), 3)
    with pytest.raises(ValueError):
        model.training_terms(cond, torch.rand(2, 2, 1, 16, 16), step=0)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_used_parameter(name):
    torch.manual_seed(0)
    model = small(name, layer_norm=True)
    cond, target = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    model.training_terms(cond, target, step=30_000)["loss"].backward()
    dead = model.unused_parameter_names()
    assert dead == {k for k in dict(model.named_parameters()) if k in dead}
    for k, p in model.named_parameters():
        if k in dead:
            assert p.grad is None, k
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, k


@pytest.mark.parametrize("name", NAMES)
def test_forecast_beyond_training_horizon_is_deterministic_and_consistent(name):
    torch.manual_seed(0)
    model = small(name)
    cond = torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        long = model.forecast(cond, 6)
        assert long.shape == (2, 6, 1, 16, 16) and torch.isfinite(long).all()
        assert torch.equal(model.forecast(cond, 6), long)
        assert torch.allclose(model.forecast(cond, 3), long[:, :3], atol=1e-6)
        assert model.forecast(cond, 1).shape == (2, 1, 1, 16, 16)


def test_constructor_validation():
    with pytest.raises(ValueError):
        small("PredRNN", num_hidden=(8, 4))  # one memory threaded through all layers
    with pytest.raises(ValueError):
        small("PredRNNpp", num_hidden=(8,))
    with pytest.raises(ValueError):
        small("MIM", num_hidden=(8,))
    with pytest.raises(ValueError):
        small("ConvLSTM", patch_size=3)
    with pytest.raises(ValueError):
        small("ConvLSTM", stride=2)
    assert small("ConvLSTM", num_hidden=(8, 4)).forecast(torch.rand(1, 3, 1, 16, 16), 2).shape == (1, 2, 1, 16, 16)


# ------------------------------------------------------------------------------------- checkpoint loading
def _notes_layout(name: str) -> dict[str, tuple[int, ...]]:
    """The reference-config state-dict layout, written out from the notes' key lists (§2–§5)."""
    k5 = (5, 5)
    sd: dict[str, tuple[int, ...]] = {"conv_last.weight": (16, 128, 1, 1)}
    st = {"conv_h.0.weight": (512, 128, *k5), "conv_m.0.weight": (384, 128, *k5),
          "conv_o.0.weight": (128, 256, *k5), "conv_last.weight": (128, 256, 1, 1)}
    for i in range(4):
        cin = 16 if i == 0 else 128
        if name == "ConvLSTM":
            sd.update({f"cell_list.{i}.conv_x.0.weight": (512, cin, *k5), f"cell_list.{i}.conv_h.0.weight":
                       (512, 128, *k5), f"cell_list.{i}.conv_o.0.weight": (128, 256, *k5),
                       f"cell_list.{i}.conv_last.weight": (128, 256, 1, 1)})
        elif name in ("PredRNN", "PredRNNv2"):
            sd[f"cell_list.{i}.conv_x.0.weight"] = (896, cin, *k5)
            sd.update({f"cell_list.{i}.{k}": v for k, v in st.items()})
        elif name == "PredRNNpp":
            sd.update({f"cell_list.{i}.conv_x.0.weight": (896, cin, *k5), f"cell_list.{i}.conv_h.0.weight":
                       (512, 128, *k5), f"cell_list.{i}.conv_c.0.weight": (384, 128, *k5),
                       f"cell_list.{i}.conv_m.0.weight": (384, 128, *k5), f"cell_list.{i}.conv_o.0.weight":
                       (128, 256, *k5), f"cell_list.{i}.conv_c2m.0.weight": (512, 128, *k5),
                       f"cell_list.{i}.conv_om.0.weight": (128, 128, *k5),
                       f"cell_list.{i}.conv_last.weight": (128, 256, 1, 1)})
        elif i == 0:  # MIM: ST-LSTM bottom layer
            sd["stlstm_layer.0.conv_x.0.weight"] = (896, 16, *k5)
            sd.update({f"stlstm_layer.0.{k}": v for k, v in st.items()})
        else:
            sd.update({f"stlstm_layer.{i}.ct_weight": (256, 16, 16), f"stlstm_layer.{i}.oc_weight": (128, 16, 16),
                       f"stlstm_layer.{i}.conv_t_cc.0.weight": (384, 128, *k5),
                       f"stlstm_layer.{i}.conv_last.weight": (128, 256, 1, 1)})
            for k in ("conv_s_cc", "conv_x_cc", "conv_h_concat", "conv_x_concat"):
                sd[f"stlstm_layer.{i}.{k}.0.weight"] = (512, 128, *k5)
            j = i - 1
            sd.update({f"stlstm_layer_diff.{j}.ct_weight": (256, 16, 16), f"stlstm_layer_diff.{j}.oc_weight":
                       (128, 16, 16), f"stlstm_layer_diff.{j}.conv_h_concat.0.weight": (512, 128, *k5),
                       f"stlstm_layer_diff.{j}.conv_x_concat.0.weight": (512, 128, *k5),
                       f"stlstm_layer_diff.{j}.conv_last.weight": (128, 256, 1, 1)})
    if name == "PredRNNpp":
        sd["gradient_highway.z_concat.0.weight"] = (256, 128, *k5)
        sd["gradient_highway.x_concat.0.weight"] = (256, 128, *k5)
    if name == "PredRNNv2":
        sd["adapter.weight"] = (128, 128, 1, 1)
    return sd


@pytest.mark.parametrize("name", NAMES)
def test_notes_key_layout_loads_at_reference_config(name):
    cls, load = MODELS[name]
    layout = _notes_layout(name)
    assert len(layout) == REFERENCE[name][3]
    assert sum(math.prod(s) for s in layout.values()) == REFERENCE[name][0]
    ckpt = {"state_dict": {f"model.{k}": torch.empty(s, device="meta") for k, s in layout.items()}}
    with torch.device("meta"):
        model = cls()
    mapped = load(ckpt, model)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == layout
    model.load_state_dict(mapped, strict=True, assign=True)
    assert set(load(ckpt)) == set(layout)  # architecture read off the checkpoint


@pytest.mark.parametrize("name", NAMES)
def test_openstl_layout_round_trip_and_errors(name):
    load = MODELS[name][1]
    torch.manual_seed(0)
    source, target = small(name, layer_norm=True), small(name, layer_norm=True)
    openstl_style = {"state_dict": {f"model.{k}": v.clone() for k, v in source.state_dict().items()},
                     "epoch": 3}
    target.load_state_dict(load(openstl_style, target), strict=True)
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v)
    bare = {k: v.clone() for k, v in source.state_dict().items()}
    assert set(load(bare)) == set(bare)  # inferred architecture, no model needed
    missing = dict(bare)
    gone = min(missing)
    del missing[gone]
    with pytest.raises(ValueError, match="missing keys.*" + gone.replace(".", r"\.")):
        load(missing, target)
    with pytest.raises(ValueError, match=r"unexpected keys.*extra\.weight"):
        load({**bare, "extra.weight": torch.zeros(1)}, target)
    resized = dict(bare)
    resized["conv_last.weight"] = torch.zeros(16, 4, 1, 1)
    with pytest.raises(ValueError, match=r"shape mismatches.*conv_last\.weight"):
        load(resized, target)
    with pytest.raises(ValueError):
        load({"foo.weight": torch.zeros(1)})  # nothing to read the architecture from
    with pytest.raises(ValueError, match="layer_norm=False"):
        load(bare, small(name))  # LayerNorm weights into a model without them


def test_predrnnv2_checkpoint_into_predrnn_is_rejected():
    v2 = small("PredRNNv2")
    with pytest.raises(ValueError, match=r"unexpected keys.*adapter\.weight"):
        predrnn.from_openstl_state_dict(v2.state_dict(), small("PredRNN"))
    assert isinstance(predrnn._infer(dict(v2.state_dict())), predrnn.PredRNNv2)


# ---------------------------------------------------------------------------------- OpenSTL equivalence
OPENSTL_CLASS = {"ConvLSTM": "ConvLSTM_Model", "PredRNN": "PredRNN_Model", "PredRNNv2": "PredRNNv2_Model",
                 "PredRNNpp": "PredRNNpp_Model", "MIM": "MIM_Model"}
TOL = 1e-5


def _pair(name: str, layer_norm: bool, **ours_kw):
    """OpenSTL's model and ours on the same (randomised) weights, small config, 2 layers of 8."""
    torch.manual_seed(0)
    reverse = int(name == "PredRNNv2")
    cfg = reference.configs((1, 16, 16), 3, 3, patch_size=4, filter_size=3, layer_norm=int(layer_norm),
                            reverse=reverse, decouple_beta=0.1)
    theirs = getattr(OPENSTL, OPENSTL_CLASS[name])(2, [8, 8], cfg)
    with torch.no_grad():  # non-trivial values for everything OpenSTL initialises to constants
        for k, p in theirs.named_parameters():
            if k.endswith(("ct_weight", "oc_weight")) or ".1." in k:
                p.add_(0.3 * torch.randn_like(p))
    ours = small(name, layer_norm=layer_norm, **ours_kw)
    ours.load_state_dict(MODELS[name][1]({"state_dict": {f"model.{k}": v for k, v in theirs.state_dict().items()}},
                                         ours), strict=True)
    return theirs, ours


def _openstl_mask(name: str, mask: torch.Tensor, tc: int) -> torch.Tensor:
    """Our per-step (B, T − 1) mask in OpenSTL's layout (B, n, h, w, K)."""
    part = mask[:, 1:] if name == "PredRNNv2" else mask[:, tc:]
    return part[:, :, None, None, None].expand(-1, -1, 4, 4, 16).contiguous()


def _openstl_forecast(name, theirs, cond, horizon):
    b, tc = cond.shape[:2]
    frames = torch.cat([cond, torch.zeros(b, horizon, *cond.shape[2:])], dim=1)
    theirs.configs.aft_seq_length, theirs.configs.total_length = horizon, tc + horizon
    mask = torch.ones(b, tc + horizon - 1)
    mask[:, tc:] = 0
    ims = OPENSTL.reshape_patch(frames.permute(0, 1, 3, 4, 2).contiguous(), 4)
    out, _ = theirs(ims, _openstl_mask(name, mask, tc), return_loss=False)
    return OPENSTL.reshape_patch_back(out, 4)[:, -horizon:].permute(0, 1, 4, 2, 3)


@needs_openstl
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_forecast_equals_openstl(name, layer_norm):
    if name == "PredRNNpp" and layer_norm:
        pytest.skip("OpenSTL's GHU LayerNorm has the wrong width and cannot run (see predrnnpp.py)")
    theirs, ours = _pair(name, layer_norm)
    cond = torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        for horizon in (3, 6):  # the training horizon and a longer rollout
            expected = _openstl_forecast(name, theirs, cond, horizon)
            if name == "MIM":
                ours.reset_mims_state()
            got = ours.forecast(cond, horizon)
            assert (got - expected).abs().max().item() <= TOL
            if name == "MIM":  # OpenSTL carries MIM-S's cell across calls: start the next one fresh
                for block in theirs.stlstm_layer[1:]:
                    block.convlstm_c = None


@needs_openstl
@pytest.mark.parametrize("name", NAMES)
def test_training_loss_and_gradients_equal_openstl(name):
    theirs, ours = _pair(name, False, **({"openstl_mims_state": True} if name == "MIM" else {}))
    torch.manual_seed(3)
    cond, target = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    mask = torch.ones(2, 5)
    mask[0, 3], mask[1, 4] = 0, 0  # mixed teacher forcing in the future part
    if name == "PredRNNv2":
        mask[1, 1] = 0  # and in the input part (reverse scheduled sampling)
    ours.sampling_mask = lambda step, batch, device=None: mask
    ims = OPENSTL.reshape_patch(torch.cat([cond, target], 1).permute(0, 1, 3, 4, 2).contiguous(), 4)
    for call in range(2 if name == "MIM" else 1):  # MIM: the second call sees the carried MIM-S cell
        theirs.zero_grad()
        ours.zero_grad()
        _, loss_theirs = theirs(ims, _openstl_mask(name, mask, 3))
        loss_theirs.backward()
        terms = ours.training_terms(cond, target, step=0)
        terms["loss"].backward()
        assert abs(terms["loss"].item() - loss_theirs.item()) <= TOL
        grads = dict(theirs.named_parameters())
        for k, p in ours.named_parameters():
            g = grads[k].grad
            if g is None:
                assert p.grad is None, k
            else:
                assert (p.grad - g).abs().max().item() <= TOL * max(1.0, g.abs().max().item()), (call, k)

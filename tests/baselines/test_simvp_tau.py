"""Tests of baselines.simvp (SimVP + IncepU) and baselines.tau (TAU).

Reference numbers: the computed counts of /work/notes/issue18_baselines_spec.md (§8, §9; obtained by building
OpenSTL's own classes) and OpenSTL's published table ("OpenSTL, Moving MNIST 10→10 benchmark table",
docs/en/model_zoos/video_benchmarks.md at commit c74deb5: SimVP+IncepU 58.0M, TAU 44.7M).

The optional equivalence tests at the end run OpenSTL's SimVP_Model (and the original A4Bio SimVP) in the
research interpreter (/work/research/venv, which has timm) through tests/_simvp_tau_reference.py, and are
skipped when that interpreter or the reference checkouts are absent. Override the locations with
VARSEP_OPENSTL_PYTHON, VARSEP_OPENSTL_ROOT and VARSEP_SIMVP_V1_ROOT.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest
import torch

from varsep.baselines.base import count_parameters
from varsep.baselines.simvp import SimVP
from varsep.baselines.tau import TAU, differential_divergence, drop_path

pytestmark = pytest.mark.usefixtures("one_thread")


FRAME = (1, 16, 16)
SMALL_SIMVP = {"hid_S": 8, "hid_T": 32, "N_S": 2, "N_T": 3}
SMALL_TAU = {"hid_S": 8, "hid_T": 24, "N_S": 2, "N_T": 3}


def _small(cls, variant=None, cond=4, horizon=4, frame=FRAME, **kw):
    torch.manual_seed(0)
    base = dict(SMALL_SIMVP if cls is SimVP else SMALL_TAU)
    if variant is not None:
        base["variant"] = variant
    base.update(kw)
    return cls(frame, cond, horizon, **base)


def _clip(batch=2, frames=4, frame=FRAME, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((batch, frames, *frame), generator=g)


def _randomise(model, seed=3):
    """Perturb every parameter and BatchNorm statistic so that comparisons see every weight."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return model


# ------------------------------------------------------------------------------------------ parameter counts
def _count(module):
    return count_parameters(module)


def test_simvp_reference_parameter_count():
    with torch.device("meta"):  # build only: no memory, no initialisation cost
        model = SimVP((1, 64, 64), 10, 10)
    assert _count(model) == 57_946_113  # notes §8, computed from OpenSTL's SimVP_Model(model_type='IncepU')
    assert abs(_count(model) - 58.0e6) / 58.0e6 < 0.01  # OpenSTL, Moving MNIST 10→10 benchmark table: 58.0M
    assert _count(model.enc) == 111_936
    assert _count(model.hid.enc) == 27_871_232 and _count(model.hid.dec) == 29_593_088
    assert _count(model.dec) == 369_792 + 65  # decoder blocks + readout
    assert _count(model.hid.enc[0]) == 3_512_576 and _count(model.hid.dec[7]) == 4_448_000
    assert len(model.state_dict()) == 322


def test_simvp_original_variant_parameter_count():
    with torch.device("meta"):
        wide = SimVP((1, 64, 64), 10, 10, variant="original")
        narrow = SimVP((1, 64, 64), 10, 10, hid_T=256, variant="original")
    assert _count(wide) == 57_761_409  # notes §8, computed from A4Bio's SimVP at hid_T 512
    assert _count(narrow) == 15_778_433  # … at its own default hid_T 256


def test_tau_reference_parameter_count_and_drop_path_quirk():
    with torch.device("meta"):
        model = TAU((1, 64, 64), 10, 10)
    assert _count(model) == 44_656_001  # notes §9, computed from OpenSTL's SimVP_Model(model_type='tau')
    assert abs(_count(model) - 44.7e6) / 44.7e6 < 0.01  # OpenSTL, Moving MNIST 10→10 benchmark table: 44.7M
    assert _count(model.enc) == 111_936 and _count(model.dec) == 369_792 + 65
    assert _count(model.hid) == 44_174_208
    assert _count(model.hid.enc[0].block) == 7_914_240 and _count(model.hid.enc[0].reduction) == 328_192
    assert all(_count(model.hid.enc[i]) == 5_086_208 for i in range(1, 7))
    assert _count(model.hid.enc[7].reduction) == 328_320
    assert model.hid.enc[0].block.attn.spatial_gating_unit.fc[0].weight.shape == (16, 640)
    assert model.hid.enc[1].block.attn.spatial_gating_unit.fc[0].weight.shape == (16, 512)
    sd = model.state_dict()
    assert len(sd) == 278 and sum(v.numel() for v in sd.values()) == 44_672_913
    # OpenSTL: linspace(1e-2, drop_path=0, 8) for blocks 0..6, drop_path itself for block 7
    expected = [0.01 * (7 - i) / 7 for i in range(7)] + [0.0]
    assert model.drop_path_rates() == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert TAU((1, 16, 16), 4, 4, drop_path_start=0.0, **SMALL_TAU).drop_path_rates() == [0.0, 0.0, 0.0]
    assert TAU((1, 16, 16), 4, 4, drop_path=0.2, **SMALL_TAU).drop_path_rates() == pytest.approx([0.01, 0.105, 0.2])


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("cls,variant", [(SimVP, "openstl"), (SimVP, "original"), (TAU, None)])
def test_shapes(cls, variant):
    model = _small(cls, variant, cond=3, horizon=5, frame=(2, 16, 24)).eval()
    cond = _clip(2, 3, (2, 16, 24))
    with torch.no_grad():
        for horizon in (1, 3, 5, 7):
            assert model.forecast(cond, horizon).shape == (2, horizon, 2, 16, 24)
        terms = model.training_terms(cond, _clip(2, 5, (2, 16, 24), seed=2), step=0)
    assert {"loss", "mse"} <= set(terms) and all(v.shape == () for v in terms.values())
    if cls is TAU:
        assert set(terms) == {"loss", "mse", "ddr"}


def test_invalid_inputs():
    model = _small(SimVP)
    with pytest.raises(ValueError):
        model.forecast(_clip(2, 3), 4)  # wrong number of conditioning frames
    with pytest.raises(ValueError):
        model.forecast(_clip(2, 4), 0)
    with pytest.raises(ValueError):
        model.training_terms(_clip(2, 4), _clip(2, 3), step=0)  # target must have train_horizon frames
    with pytest.raises(ValueError):
        SimVP(FRAME, 4, 4, hid_S=8, hid_T=32, N_S=3, N_T=3)  # odd N_S
    with pytest.raises(ValueError):
        SimVP((1, 18, 16), 4, 4, hid_S=8, hid_T=32, N_S=4, N_T=3)  # 18 not divisible by 4
    with pytest.raises(ValueError):
        SimVP(FRAME, 4, 4, variant="v3", **SMALL_SIMVP)


# ------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("cls,variant", [(SimVP, "openstl"), (SimVP, "original"), (TAU, None)])
def test_gradients_reach_every_parameter(cls, variant):
    model = _small(cls, variant).train()
    terms = model.training_terms(_clip(), _clip(seed=2), step=0)
    terms["loss"].backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


# ------------------------------------------------------------------------------------------ rollout
@pytest.mark.parametrize("cls", [SimVP, TAU])
def test_long_forecast_equals_chained_calls(cls):
    model = _randomise(_small(cls)).eval()
    cond = _clip()
    with torch.no_grad():
        long = model.forecast(cond, 10)  # 2.5 × train_horizon
        first = model.forecast(cond, 4)
        second = model.forecast(first, 4)
        third = model.forecast(second, 4)[:, :2]
        short = model.forecast(cond, 3)
    assert long.shape == (2, 10, *FRAME)
    torch.testing.assert_close(long, torch.cat([first, second, third], dim=1), rtol=0, atol=0)
    torch.testing.assert_close(short, first[:, :3], rtol=0, atol=0)


def test_training_target_longer_than_cond_uses_the_rollout():
    model = _randomise(_small(SimVP, cond=4, horizon=6)).eval()
    cond, target = _clip(), _clip(frames=6, seed=2)
    with torch.no_grad():
        terms = model.training_terms(cond, target, step=0)
        pred = model.forecast(cond, 6)
    torch.testing.assert_close(terms["mse"], torch.mean((pred - target) ** 2))


def test_forecast_is_deterministic_and_stochastic_depth_only_in_training_terms():
    model = _randomise(_small(TAU, drop_path=0.5, drop=0.3)).train()
    cond, target = _clip(), _clip(seed=2)
    with torch.no_grad():
        torch.manual_seed(5)
        a = model.forecast(cond, 6)
        state = torch.get_rng_state()
        b = model.forecast(cond, 6)
        assert torch.equal(torch.get_rng_state(), state)  # forecast draws nothing
        torch.manual_seed(7)
        t1 = model.training_terms(cond, target, step=0)["loss"]
        torch.manual_seed(7)
        t2 = model.training_terms(cond, target, step=0)["loss"]
        torch.manual_seed(8)
        t3 = model.training_terms(cond, target, step=0)["loss"]
    assert torch.equal(a, b)
    assert torch.equal(t1, t2) and not torch.equal(t1, t3)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.forecast(cond, 6), model.forecast(cond, 6))


def test_drop_path_by_hand():
    x = torch.arange(1.0, 9.0).reshape(8, 1)
    torch.manual_seed(0)
    y = drop_path(x, 0.25, True)
    kept = y[:, 0] != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert 0 < int(kept.sum()) < 8
    assert torch.equal(drop_path(x, 0.25, False), x) and torch.equal(drop_path(x, 0.0, True), x)
    assert torch.equal(drop_path(x, 1.0, True), torch.zeros_like(x))


# ------------------------------------------------------------------------------------------ TAU regulariser
def test_differential_divergence_by_hand():
    # B=1, T=3, C=H=1, W=2; frame differences: prediction (0.1, 0), (0, 0.2); target (0, 0), (0.05, 0)
    pred = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.1, 0.2]]).reshape(1, 3, 1, 1, 2)
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.05, 0.0]]).reshape(1, 3, 1, 1, 2)

    def softmax2(a, b):
        return math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))

    total = 0.0
    for (pa, pb), (qa, qb) in [((1.0, 0.0), (0.0, 0.0)), ((0.0, 2.0), (0.5, 0.0))]:  # differences / τ (0.1)
        p, q = softmax2(pa, pb), softmax2(qa, qb)
        total += sum(pi * math.log(pi / (qi + 1e-12) + 1e-12) for pi, qi in zip(p, q, strict=False))
    expected = total / 4  # mean over B·(T−1)·C·H·W = 4 elements, i.e. KL / (C·H·W) averaged over the 2 steps
    got = differential_divergence(pred, target, tau=0.1)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(got) == pytest.approx((0.110944 + 0.549142) / 4, rel=1e-4)  # the two KLs written out
    assert float(differential_divergence(pred[:, :2], target[:, :2])) == 0.0  # T ≤ 2: no regulariser


def test_tau_loss_is_mse_plus_alpha_ddr():
    model = _randomise(_small(TAU, alpha=0.1)).eval()
    cond, target = _clip(), _clip(seed=2)
    with torch.no_grad():
        terms = model.training_terms(cond, target, step=0)
        pred = model.forecast(cond, 4)
    torch.testing.assert_close(terms["mse"], torch.mean((pred - target) ** 2))
    torch.testing.assert_close(terms["ddr"], differential_divergence(pred, target, 0.1))
    torch.testing.assert_close(terms["loss"], terms["mse"] + 0.1 * terms["ddr"])
    assert float(terms["ddr"]) > 0


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("cls,variant", [(SimVP, "openstl"), (SimVP, "original"), (TAU, None)])
def test_state_dict_round_trip(cls, variant):
    src = _randomise(_small(cls, variant)).eval()
    cond = _clip()
    with torch.no_grad():
        want = src.forecast(cond, 5)
    sd = src.state_dict()
    wrapped = [sd, {"model." + k: v for k, v in sd.items()},
               {"state_dict": {"model." + k: v for k, v in sd.items()}, "epoch": 3},
               {"module." + k: v for k, v in sd.items()}]
    for ckpt in wrapped:
        torch.manual_seed(99)
        dst = _small(cls, variant).eval()
        assert dst.from_openstl_state_dict(ckpt) is dst
        with torch.no_grad():
            assert torch.equal(dst.forecast(cond, 5), want)


def test_state_dict_errors():
    model = _small(TAU)
    sd = model.state_dict()
    key = "hid.enc.0.block.attn.proj_1.weight"
    with pytest.raises(ValueError, match="missing key.*proj_1"):
        model.from_openstl_state_dict({k: v for k, v in sd.items() if k != key})
    with pytest.raises(ValueError, match="unexpected key.*extra.weight"):
        model.from_openstl_state_dict({**sd, "extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="shape mismatch.*proj_1"):
        model.from_openstl_state_dict({**sd, key: torch.zeros(3, 3, 1, 1)})
    with pytest.raises(TypeError):
        model.from_openstl_state_dict([1, 2])
    with pytest.raises(ValueError, match="missing"):  # a SimVP checkpoint is not a TAU checkpoint
        model.from_openstl_state_dict(_small(SimVP).state_dict())


# ------------------------------------------------------------------------------------------ OpenSTL equivalence
REF_PYTHON = Path(os.environ.get("VARSEP_OPENSTL_PYTHON", "/work/research/venv/bin/python"))
OPENSTL_ROOT = Path(os.environ.get("VARSEP_OPENSTL_ROOT", "/work/research/chengtan9907+OpenSTL"))
SIMVP_V1_ROOT = Path(os.environ.get("VARSEP_SIMVP_V1_ROOT", "/work/research/A4Bio+SimVP"))
REF_FRAME = (2, 16, 16)
REF_SIZES = {"hid_S": 8, "N_S": 4, "N_T": 3}


def _reference_cases():
    """(name, our model, case for the reference runner) — our model still holds the initial weights."""
    specs = [
        ("simvp_eval", SimVP, {"hid_T": 32, "spatio_kernel_enc": 5, "spatio_kernel_dec": 3}, False, 4),
        ("simvp_train", SimVP, {"hid_T": 32}, True, 6),
        ("tau_eval", TAU, {"hid_T": 24, "spatio_kernel_enc": 3, "spatio_kernel_dec": 5}, False, 4),
        ("tau_train", TAU, {"hid_T": 24, "drop_path_start": 0.0}, True, 6),
        ("original_eval", SimVP, {"hid_T": 32, "variant": "original"}, False, 4),
        ("original_train", SimVP, {"hid_T": 32, "variant": "original"}, True, 4),
    ]
    out = []
    for i, (name, cls, kw, train, th) in enumerate(specs):
        torch.manual_seed(10 + i)
        model = _randomise(cls(REF_FRAME, 4, th, **REF_SIZES, **kw), seed=20 + i)
        cond, target = _clip(2, 4, REF_FRAME, seed=30 + i), _clip(2, th, REF_FRAME, seed=40 + i)
        if kw.get("variant") == "original":
            impl, ref_kw = "a4bio", {"shape_in": (4, *REF_FRAME), "hid_S": 8, "hid_T": 32, "N_S": 4, "N_T": 3}
        else:
            impl = "openstl"
            ref_kw = {"in_shape": (4, *REF_FRAME), "hid_S": 8, "hid_T": kw["hid_T"], "N_S": 4, "N_T": 3,
                      "model_type": "IncepU" if cls is SimVP else "tau",
                      "spatio_kernel_enc": kw.get("spatio_kernel_enc", 3),
                      "spatio_kernel_dec": kw.get("spatio_kernel_dec", 3)}
        case = {"impl": impl, "kwargs": ref_kw, "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
                "cond": cond, "target": target, "horizon": th if train else 10, "train": train,
                "zero_drop_path": cls is TAU, "alpha": 0.1 if cls is TAU else 0.0}
        out.append((name, model, case))
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    missing = [str(p) for p in (REF_PYTHON, OPENSTL_ROOT, SIMVP_V1_ROOT) if not p.exists()]
    if missing:
        pytest.skip(f"OpenSTL reference not available ({', '.join(missing)})")
    cases = _reference_cases()
    tmp = tmp_path_factory.mktemp("openstl_ref")
    torch.save([c for _, _, c in cases], tmp / "in.pt")
    runner = Path(__file__).with_name("_simvp_tau_reference.py")
    proc = subprocess.run([str(REF_PYTHON), str(runner), str(tmp / "in.pt"), str(tmp / "out.pt"), str(OPENSTL_ROOT),
                           str(SIMVP_V1_ROOT)], check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr:
        pytest.skip(f"reference interpreter lacks a package: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = torch.load(tmp / "out.pt")
    return {name: (model, case, res) for (name, model, case), res in zip(cases, results, strict=False)}


@pytest.mark.parametrize("name", ["simvp_eval", "tau_eval", "original_eval"])
def test_forecast_matches_reference(reference, name):
    model, case, res = reference[name]
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == dict(res["keys"])  # names and shapes
    model.eval()
    with torch.no_grad():
        ours = model.forecast(case["cond"], case["horizon"])  # 10 frames = 2.5 chunks of 4
    assert ours.shape == res["pred"].shape == (2, 10, *REF_FRAME)
    torch.testing.assert_close(ours, res["pred"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["simvp_train", "tau_train", "original_train"])
def test_training_step_matches_reference(reference, name):
    model, case, res = reference[name]
    model.train()
    terms = model.training_terms(case["cond"], case["target"], step=0)
    terms["loss"].backward()
    torch.testing.assert_close(terms["loss"], res["loss"], rtol=0, atol=1e-6)
    grads = {k: p.grad for k, p in model.named_parameters()}
    assert set(grads) == set(res["grads"])
    for k, g in grads.items():
        torch.testing.assert_close(g, res["grads"][k], rtol=1e-4, atol=1e-6, msg=k)
    for k, v in model.state_dict().items():  # BatchNorm statistics after one training forward
        torch.testing.assert_close(v, res["state_after"][k], rtol=0, atol=1e-6, msg=k)

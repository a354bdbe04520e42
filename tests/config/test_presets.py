"""Configs: every packaged YAML loads, builds its model and trains two steps; errors explain themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from varsep.config import PRESETS as PACKAGED_CONFIGS
from varsep.config import load_config, parse_override_args
from varsep.data import dataset_class
from varsep.errors import ConfigError
from varsep.model import build_model
from varsep.model.losses import loss_terms
from varsep.spec import DataSpec, ae_choices

CONFIGS = sorted(PACKAGED_CONFIGS.glob("*.yaml"))


def test_repo_configs_folder_is_the_packaged_one():
    assert Path("configs").resolve() == PACKAGED_CONFIGS.resolve()
    assert {p.stem for p in CONFIGS} >= {"waveeq", "waveeq100"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_its_model_and_trains_two_steps(path):
    config = load_config(path)
    dataset_cls = dataset_class(config.data.name)
    spec = DataSpec(dataset_cls.nominal_frame_shape, config.data.cond_frames, config.data.pred_frames)
    model = build_model(config.model, spec, default_encoder=dataset_cls.default_encoder,
                        default_decoder=dataset_cls.default_decoder)
    opt = torch.optim.Adam(model.parameters(), lr=config.optim.lr, betas=tuple(config.optim.betas))
    torch.manual_seed(0)
    frames = torch.rand(2, spec.train_length, *spec.frame_shape)
    choices = ae_choices(spec.train_length, spec.cond_frames, model.first_index)
    before = [p.detach().clone() for p in model.parameters()]
    for step in range(2):
        terms = loss_terms(model, frames, step % choices, config.loss)
        assert torch.isfinite(terms["loss"])
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    out = model.forecast(frames[:, :spec.cond_frames], max(config.data.test_horizons))
    assert out.shape == (2, max(config.data.test_horizons), *spec.frame_shape)


def test_packaged_name_and_overrides():
    config = load_config("waveeq", {"model.s_dim": "16", "model.t_dim": 16, "loss.lambda_t": "1e-3",
                                    "optim.betas": "[0.5, 0.9]", "trainer.precision": "bf16"})
    assert (config.model.s_dim, config.loss.lambda_t, config.optim.betas) == (16, 1e-3, [0.5, 0.9])
    assert config.trainer.precision == "bf16"


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as err:
        load_config("waveeq", {"model.sdim": 3})
    msg = str(err.value)
    assert "model.sdim" in msg and "Did you mean 's_dim'?" in msg and "t_dim" in msg
    with pytest.raises(ConfigError, match="Valid keys of data:.*val_sequences"):
        load_config("waveeq", {"data.val_seqs": 3})
    with pytest.raises(ConfigError, match="unknown config section 'trainr'.*Did you mean 'trainer'"):
        load_config("waveeq", {"trainr.max_epochs": 3})


def test_unknown_data_set_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown data set 'waveq'.*waveeq100.*Did you mean 'waveeq'"):
        load_config("waveeq", {"data.name": "waveq"})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("loss.lambda_ae", -1, "loss.lambda_ae must be ≥ 0"),
    ("data.batch_size", 0, "data.batch_size must be ≥ 1"),
    ("optim.lr", 0, "optim.lr must be > 0"),
    ("model.combine", "sum", "model.combine must be one of 'concat', 'mul'"),
    ("model.s_dim", "abc", "model.s_dim must be an integer"),
    ("trainer.precision", "16", "trainer.precision must be one of"),
    ("model.content", "maybe", "must be true or false"),
    ("optim.betas", "[0.9]", "optim.betas must be two numbers"),
    ("data.test_horizons", "[]", "data.test_horizons must be a non-empty list"),
])
def test_out_of_range_values_are_explained(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config("waveeq", {key: value})


def test_override_argument_syntax():
    assert parse_override_args(["--model.s_dim", "3", "--loss.lambda_ae=0", "--seed", "2"]) == {
        "model.s_dim": "3", "loss.lambda_ae": "0", "seed": "2"}
    with pytest.raises(ConfigError, match="--section.key value"):
        parse_override_args(["model.s_dim=3"])
    with pytest.raises(ConfigError, match="needs a value"):
        parse_override_args(["--model.s_dim"])


def test_missing_config_file_lists_packaged_names(tmp_path):
    with pytest.raises(ConfigError, match="not found.*waveeq100"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_round_trips(tmp_path):
    config = load_config("waveeq100", {"seed": 5})
    (tmp_path / "c.yaml").write_text(config.to_yaml())
    assert load_config(tmp_path / "c.yaml") == config

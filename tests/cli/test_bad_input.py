"""The bad-input catalogue (docs/reliability.md): each case gets a clear message and loses nothing.

Data problems are met by `varsep fit` before the run folder is created, so each data case also checks that
no run folder appeared. Other cases (checkpoints, interruptions, disks, processes) live in
test_reliability.py and test_distributed.py; data-set-specific files in tests/data/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from varsep.cli import main
from varsep.config import load_config
from varsep.errors import ConfigError, DataError
from varsep.train import fit


def broken_copy(src: Path, dst: Path, damage) -> Path:
    shutil.copytree(src, dst)
    damage(dst)
    return dst


def _empty(root: Path) -> None:
    for f in root.iterdir():
        f.unlink()


def _corrupt_meta(root: Path) -> None:
    (root / "meta.json").write_text("{not json")


def _float64_frames(root: Path) -> None:
    np.save(root / "frames.npy", np.load(root / "frames.npy").astype(np.float64))


def _small_frames(root: Path) -> None:
    np.save(root / "frames.npy", np.load(root / "frames.npy")[:, :, :32, :32])


def _inf_value(root: Path) -> None:
    frames = np.load(root / "frames.npy")
    frames[2, 7, 1, 1] = np.inf
    np.save(root / "frames.npy", frames)


def _short_sequences(root: Path) -> None:
    np.save(root / "frames.npy", np.load(root / "frames.npy")[:, :30])


def _missing_sensors(root: Path) -> None:
    (root / "sensors.npy").unlink()


def _bad_sensors(root: Path) -> None:
    np.save(root / "sensors.npy", np.full((100, 2), 99))


def _other_format(root: Path) -> None:
    meta = json.loads((root / "meta.json").read_text())
    meta["format"] = "something-else"
    (root / "meta.json").write_text(json.dumps(meta))


DATA_CASES = {
    "empty data folder": (_empty, r"not a WaveEq data folder \(missing frames\.npy, meta\.json, sensors\.npy\)"),
    "corrupt meta.json": (_corrupt_meta, r"meta\.json is corrupt"),
    "wrong dtype": (_float64_frames, r"must hold float32 frames .* got float64"),
    "frames of the wrong size": (_small_frames, r"\(N, T, 64, 64\), got float32 \(8, 150, 32, 32\)"),
    "Inf value": (_inf_value, r"frames\.npy: sequence 2 holds NaN or Inf"),
    "sequences shorter than τ+1+horizon": (_short_sequences, r"windows of 45 frames do not fit in the 30-frame"),
    "missing file": (_missing_sensors, r"missing sensors\.npy"),
    "out-of-range sensor pixels": (_bad_sensors, r"sensors\.npy must hold 100 \(row, col\) pixels in \[0, 64\)"),
    "folder of another format": (_other_format, r"does not describe a WaveEq data set"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_is_explained_and_nothing_is_written(case, tmp_path, tiny_waveeq, tiny_config):
    damage, message = DATA_CASES[case]
    root = broken_copy(tiny_waveeq, tmp_path / "data", damage)
    config = tiny_config(data__root=str(root))
    with pytest.raises(DataError, match=message):
        fit(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_missing_data_folder_names_the_command_to_run(tmp_path, tiny_config):
    with pytest.raises(DataError, match=r"varsep generate waveeq --out .*none"):
        fit(tiny_config(data__root=str(tmp_path / "none")), tmp_path / "run")
    assert not (tmp_path / "run").exists()


CONFIG_CASES = {
    "unknown key": ({"model.widht": 3}, r"unknown setting model\.widht\. Did you mean 'width'\?"),
    "negative λ": ({"loss.lambda_s": -1}, r"loss\.lambda_s must be ≥ 0"),
    "zero batch": ({"data.batch_size": 0}, r"data\.batch_size must be ≥ 1"),
    "wrong type": ({"trainer.max_epochs": "ten"}, r"trainer\.max_epochs must be an integer, got 'ten'"),
    "unknown choice": ({"model.dynamics": "lstm"}, r"model\.dynamics must be one of 'residual', 'gru'"),
    "bad probability": ({"data.keep_prob": 1.5}, r"data\.keep_prob must be in \(0, 1\]"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_settings_are_explained(case):
    overrides, message = CONFIG_CASES[case]
    with pytest.raises(ConfigError, match=message):
        load_config("waveeq", overrides)


def test_invalid_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {s_dim: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(bad)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert main(["fit", "-c", "waveeq", "--run-dir", str(tmp_path / "r"), "--loss.lambda_ae", "-3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: loss.lambda_ae must be ≥ 0") and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_overwrite_with_bad_data_keeps_the_existing_run(tmp_path, tiny_waveeq, tiny_config):
    fit(tiny_config(trainer__max_epochs=1), tmp_path / "run")
    before = (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(DataError):
        fit(tiny_config(data__root=str(tmp_path / "missing")), tmp_path / "run", overwrite=True)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes() == before

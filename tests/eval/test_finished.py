"""The marker that tells a rerun of `varsep compare` / `varsep ablate` a model is finished."""

from __future__ import annotations

import json

import pytest

from varsep.config import load_config
from varsep.eval.finished import finished_report, mark_finished, same_config

MARKER = "compare.json"


@pytest.fixture
def finished_run(tmp_path, monkeypatch):
    """A run folder scored and marked with a config whose data folder was given relative to ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "wave-fields").mkdir(parents=True)
    config = load_config("waveeq", {"data.root": "data/wave-fields", "trainer.max_steps": 7})
    run = tmp_path / "runs" / "varsep"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "metrics.json").write_text(json.dumps({"step": 7, "horizons": {}}))
    mark_finished(run, MARKER, {"model": "varsep", "step": 7}, config)
    return run, config


def test_a_marked_run_is_finished_for_its_config_only(finished_run):
    run, config = finished_run
    assert finished_report(run, MARKER, config) == {"step": 7, "horizons": {}}
    assert finished_report(run, MARKER, load_config("waveeq", {"data.root": "data/wave-fields"})) is None
    assert finished_report(run, "ablation.json", config) is None  # another command's marker


def test_the_data_folder_counts_however_it_is_written(finished_run, tmp_path, monkeypatch):
    run, _ = finished_run
    record = json.loads((run / MARKER).read_text())
    assert record["config"]["data"]["root"] == str((tmp_path / "data" / "wave-fields").resolve())
    absolute = load_config("waveeq", {"data.root": str(tmp_path / "data" / "wave-fields"), "trainer.max_steps": 7})
    assert finished_report(run, MARKER, absolute) is not None
    monkeypatch.chdir(tmp_path / "data")  # the same folder, relative to another working directory
    assert finished_report(run, MARKER, load_config("waveeq", {"data.root": "wave-fields",
                                                               "trainer.max_steps": 7})) is not None
    other = load_config("waveeq", {"data.root": str(tmp_path / "elsewhere"), "trainer.max_steps": 7})
    assert finished_report(run, MARKER, other) is None


def test_your_own_datas_path_counts_however_it_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "varsep"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "metrics.json").write_text("{}")
    own = {"data.name": "custom", "data.path": "fields/field.npy"}
    mark_finished(run, MARKER, {}, load_config(None, own))
    assert json.loads((run / MARKER).read_text())["config"]["data"]["path"] == str(tmp_path / "fields/field.npy")
    assert finished_report(run, MARKER, load_config(None, {**own, "data.path": str(tmp_path / "fields" /
                                                                                             "field.npy")})) == {}
    assert finished_report(run, MARKER, load_config(None, {**own, "data.path": "other.npy"})) is None
    # a relative data.path is read from data.root when that is set: another folder, other data
    in_root = {**own, "data.root": str(tmp_path / "elsewhere")}
    mark_finished(run, MARKER, {}, load_config(None, in_root))
    assert json.loads((run / MARKER).read_text())["config"]["data"]["path"] == str(tmp_path / "elsewhere" /
                                                                                  "fields/field.npy")
    assert finished_report(run, MARKER, load_config(None, {**in_root, "data.path": str(tmp_path / "fields" /
                                                                                          "field.npy")})) is None
    files = {"data.name": "custom", "data.path": ["a.nc", "b.nc"]}
    mark_finished(run, MARKER, {}, load_config(None, files))
    assert json.loads((run / MARKER).read_text())["config"]["data"]["path"] == [str(tmp_path / "a.nc"),
                                                                               str(tmp_path / "b.nc")]


def test_a_setting_added_since_the_record_does_not_unfinish_it(finished_run):
    _, config = finished_run
    recorded = config.to_dict()
    del recorded["model"]["anchor"]  # a marker written before this setting existed, at its default then
    assert config.model.anchor == "auto" and same_config(recorded, config)
    assert not same_config({"model": {"nope": 1}}, config) and not same_config("text", config)


@pytest.mark.parametrize("damage", ["marker", "metrics", "no-metrics"])
def test_a_damaged_or_incomplete_run_is_not_finished(finished_run, damage):
    run, config = finished_run
    if damage == "marker":
        (run / MARKER).write_text('{"model": "varsep", "config": {')
    elif damage == "metrics":
        (run / "eval" / "metrics.json").write_text("{")
    else:
        (run / "eval" / "metrics.json").unlink()
    assert finished_report(run, MARKER, config) is None

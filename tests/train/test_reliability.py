"""Reliability: kill and resume, atomic checkpoints, safe loading, numerical faults, Ctrl-C, seeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from varsep.errors import CheckpointError, ConfigError, TrainingError
from varsep.forecaster import load, load_checkpoint
from varsep.runs import stale_temp_files
from varsep.storage import atomic_torch_save, atomic_write_text, safe_torch_load
from varsep.train import fit


def state(run_dir: Path, name: str = "last.ckpt") -> dict:
    return safe_torch_load(run_dir / "checkpoints" / name)


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values(),
                      strict=True):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k


def run_script(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=300)


KILL_SCRIPT = """
    import os, signal, sys, yaml
    from lightning.pytorch.callbacks import Callback
    from varsep.config import config_from_dict
    from varsep.train import fit

    class KillAt(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == int(sys.argv[3]):
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind, like a power cut

    import torch
    torch.set_num_threads(2)  # the same arithmetic as the in-process runs it is compared with
    config = config_from_dict(yaml.safe_load(open(sys.argv[1])))
    fit(config, sys.argv[2], callbacks=[KillAt()])
"""


def test_sigkill_mid_epoch_then_resume_ends_bit_identical(tmp_path, tiny_config):
    config = tiny_config(trainer__max_epochs=3)  # 3 epochs × 5 batches, checkpoints every 2 steps
    fit(config, tmp_path / "reference")
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    killed = run_script(KILL_SCRIPT, str(tmp_path / "config.yaml"), str(tmp_path / "killed"), "7")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    interrupted = state(tmp_path / "killed")
    assert interrupted["global_step"] == 6  # the last checkpoint before the kill: mid-epoch (epoch 1, batch 1)
    assert interrupted["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "start": 1}]
    fit(config, tmp_path / "killed", resume=True)
    assert_same_training_state(state(tmp_path / "reference"), state(tmp_path / "killed"))


def test_resume_at_an_epoch_boundary_keeps_the_learning_rate_schedule(tmp_path, tiny_config):
    """Stopping after epoch 0 and resuming gives the run that was never stopped, LR milestones included."""
    schedule = {"optim__milestones": "[1]", "optim__gamma": 0.1}
    fit(tiny_config(trainer__max_epochs=2, **schedule), tmp_path / "reference")
    fit(tiny_config(trainer__max_epochs=1, **schedule), tmp_path / "run")
    stopped = state(tmp_path / "run")
    assert stopped["global_step"] == 5 and "torch" in stopped["varsep"]["rng"]  # saved at the epoch end
    fit(tiny_config(trainer__max_epochs=2, **schedule), tmp_path / "run", resume=True)
    resumed = state(tmp_path / "run")
    assert resumed["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(4e-5)
    assert_same_training_state(state(tmp_path / "reference"), resumed)


def test_resume_refuses_a_different_model(tmp_path, tiny_config):
    fit(tiny_config(trainer__max_epochs=1), tmp_path / "run")
    with pytest.raises(ConfigError, match="model.s_dim"):
        fit(tiny_config(model__s_dim=16, model__t_dim=16), tmp_path / "run", resume=True)


def test_interrupted_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ck" / "last.ckpt"
    atomic_torch_save({"step": 1, "w": torch.ones(3)}, path)

    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        f.write(b"partial bytes of a checkpoint")
        raise KeyboardInterrupt  # the process is interrupted in the middle of the write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert safe_torch_load(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)

    def no_space(obj, f, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(CheckpointError, match="no space left.*previous checkpoint is intact"):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert safe_torch_load(path)["step"] == 1 and len(list(tmp_path.iterdir())) == 1


def test_interrupted_record_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    atomic_write_text(path, '{"seed": 1}')

    def dying_fsync(fd):
        raise KeyboardInterrupt  # interrupted after the new bytes went into the temporary file

    monkeypatch.setattr(os, "fsync", dying_fsync)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, '{"seed": 2, "half": ')
    monkeypatch.undo()
    assert path.read_text() == '{"seed": 1}' and [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_full_disk_keeps_the_previous_record_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "eval" / "metrics.json"
    atomic_write_text(path, "{}")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(CheckpointError, match="no space left to write .*metrics.json; the previous version"):
        atomic_write_text(path, '{"mse": 1.0}')
    monkeypatch.undo()
    assert path.read_text() == "{}" and len(list(path.parent.iterdir())) == 1


def test_atomic_writes_give_the_permissions_a_plain_write_would(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "run.json", "{}")
        atomic_torch_save({"step": 1}, tmp_path / "last.ckpt")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"run.json": 0o640, "last.ckpt": 0o640, "plain.txt": 0o640}  # not mkstemp's private 0600
    (tmp_path / "run.json").chmod(0o604)  # an existing file keeps the mode its owner gave it
    atomic_write_text(tmp_path / "run.json", '{"seed": 1}')
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o604


def test_stale_temp_files_are_varsep_records_and_checkpoints_only(tmp_path):
    run = tmp_path / "run"
    ours = [run / ".run.json.k2j_9x.tmp", run / ".config.yaml.abc.tmp", run / "eval" / ".metrics.json.q1.tmp",
            run / "checkpoints" / ".last.ckpt.zz_1.tmp", run / "logs" / "metrics.csv.tmp"]
    theirs = [run / ".notes.txt.abc.tmp", run / "eval" / ".results.json.tmp", run / "data" / ".run.json.a.tmp"]
    in_flight = run / "eval" / ".metrics.json.young1.tmp"  # a `varsep evaluate` writing right now
    for path in [*ours, *theirs, in_flight]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        if path != in_flight:
            os.utime(path, (time.time() - 120, time.time() - 120))  # left by a process that died
    assert stale_temp_files(run) == sorted(ours)


class Payload:
    """Anything that is not a tensor or a plain value needs pickle to load — and could run code."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to load.*could run code"):
        safe_torch_load(path)


def test_truncated_checkpoint_is_reported(tmp_path, tiny_config):
    fit(tiny_config(trainer__max_epochs=1), tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load(tmp_path / "run", "last")


def test_checkpoint_of_another_model_gives_a_mismatch_error(tmp_path, tiny_config):
    fit(tiny_config(trainer__max_epochs=1), tmp_path / "run")
    ckpt = state(tmp_path / "run")
    ckpt["hyper_parameters"]["config"]["model"]["decoder_hidden"] = [64]
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="does not match the model its config describes"):
        load_checkpoint(tmp_path / "other.ckpt")


def test_checkpoints_hold_state_dicts_config_and_version(tmp_path, tiny_config):
    fit(tiny_config(trainer__max_epochs=1), tmp_path / "run")
    ckpt = state(tmp_path / "run")
    assert ckpt["varsep"]["version"]
    assert ckpt["hyper_parameters"]["config"]["data"]["name"] == "waveeq"
    assert all(isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values())


class PoisonAt(Callback):
    """Turns a decoder weight into Inf before a given step, as a diverging run would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(module.model.decoder.parameters()).fill_(float("inf"))


def test_nan_loss_stops_with_step_and_terms_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config):
    with pytest.raises(TrainingError, match=r"not finite at step 5 .*pred=nan.*ae=.*reg_s=.*reg_t="):
        fit(tiny_config(), tmp_path / "run", callbacks=[PoisonAt(5)])
    good = state(tmp_path / "run")
    assert good["global_step"] == 5  # the checkpoint of the epoch end just before the failing step
    assert all(torch.isfinite(v).all() for v in good["state_dict"].values())


CTRL_C_SCRIPT = """
    import os, signal, sys, yaml
    from lightning.pytorch.callbacks import Callback
    from varsep.config import config_from_dict
    from varsep.train import fit

    class CtrlCAt(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGINT)

    from varsep.errors import Interrupted

    signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job starts with it ignored
    config = config_from_dict(yaml.safe_load(open(sys.argv[1])))
    try:
        fit(config, sys.argv[2], callbacks=[CtrlCAt()])
    except Interrupted as stop:
        print(stop)
        sys.exit(stop.exit_code)
"""


def test_ctrl_c_saves_and_exits_cleanly(tmp_path, tiny_config):
    config = tiny_config(trainer__checkpoint_every_n_steps=100)  # no periodic checkpoint before step 3
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    done = run_script(CTRL_C_SCRIPT, str(tmp_path / "config.yaml"), str(tmp_path / "run"))
    assert done.returncode == 130, done.stderr[-2000:]  # fit raised Interrupted (SIGINT): 128 + 2
    assert "interrupted by Ctrl-C" in done.stdout and "varsep fit --resume --run-dir" in done.stdout
    saved = state(tmp_path / "run")
    assert saved["global_step"] in (3, 4)
    fit(config, tmp_path / "run", resume=True)
    assert state(tmp_path / "run")["global_step"] == 10


def test_seed_makes_runs_repeatable(tmp_path, tiny_config):
    fit(tiny_config(trainer__max_epochs=1), tmp_path / "a")
    fit(tiny_config(trainer__max_epochs=1), tmp_path / "b")
    fit(tiny_config(trainer__max_epochs=1, seed=1), tmp_path / "c")
    assert_same_training_state(state(tmp_path / "a"), state(tmp_path / "b"))
    assert not torch.equal(state(tmp_path / "a")["state_dict"]["model.decoder.net.0.weight"],
                           state(tmp_path / "c")["state_dict"]["model.decoder.net.0.weight"])
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["seed"] == 0 and {"torch", "lightning", "varsep", "git_commit"} <= set(info)


def test_resume_without_a_run_folder_is_explained(tmp_path, tiny_config):
    with pytest.raises(ConfigError, match="nothing to resume"):
        fit(tiny_config(), tmp_path / "none", resume=True)


def test_evaluating_a_run_without_checkpoints_is_explained(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="has no checkpoint.*varsep fit"):
        load(tmp_path / "run")


def _wait(predicate, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_resumed_run_keeps_its_log(tmp_path, tiny_config):
    import csv

    fit(tiny_config(trainer__max_epochs=1), tmp_path / "run")
    fit(tiny_config(trainer__max_epochs=2), tmp_path / "run", resume=True)
    with open(tmp_path / "run" / "logs" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    assert [int(r["step"]) for r in rows] == list(range(10))  # every step once, before and after the resume


def test_weights_only_snapshots_load_like_checkpoints(tmp_path, tiny_config):
    fit(tiny_config(trainer__max_epochs=2, trainer__snapshot_every_n_epochs=1), tmp_path / "run")
    snaps = sorted((tmp_path / "run" / "checkpoints" / "snapshots").glob("*.ckpt"))
    assert [p.name for p in snaps] == ["epoch-0001.ckpt", "epoch-0002.ckpt"]
    first, last = load_checkpoint(snaps[0]), load_checkpoint(snaps[1])
    assert (first.step, last.step) == (5, 10)
    assert "optimizer_states" not in safe_torch_load(snaps[1])
    final = load(tmp_path / "run", "last").model.state_dict()
    assert all(torch.equal(v, final[k]) for k, v in last.model.state_dict().items())


def test_training_stops_at_the_first_validation_that_reaches_the_target(tmp_path, tiny_config):
    # Any MSE of [0, 1] data is below 1: the first validation (after epoch 1, step 5) ends the run.
    fit(tiny_config(trainer__max_epochs=4, trainer__stop_below_val_mse=1.0), tmp_path / "reached")
    assert state(tmp_path / "reached")["global_step"] == 5
    # An unreachable target never stops it early.
    fit(tiny_config(trainer__max_epochs=4, trainer__stop_below_val_mse=1e-12), tmp_path / "unreached")
    assert state(tmp_path / "unreached")["global_step"] == 20


def test_stop_target_must_be_positive(tiny_config):
    with pytest.raises(ConfigError, match="stop_below_val_mse"):
        tiny_config(trainer__stop_below_val_mse=0)


def test_stop_target_without_validation_data_is_refused(tmp_path, tiny_config):
    with pytest.raises(ConfigError, match="needs validation data"):
        fit(tiny_config(trainer__stop_below_val_mse=1e-3, data__val_sequences=0), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_stopped_by_its_time_limit_resumes_to_the_uninterrupted_run(tmp_path, tiny_config):
    fit(tiny_config(), tmp_path / "reference")
    fit(tiny_config(trainer__max_time_minutes=1e-6), tmp_path / "run")  # out of time after its first step
    assert state(tmp_path / "run")["global_step"] == 1
    fit(tiny_config(trainer__max_time_minutes=60), tmp_path / "run", resume=True)  # more time, same run
    assert_same_training_state(state(tmp_path / "reference"), state(tmp_path / "run"))


def test_a_limit_equal_to_the_time_used_up_to_rounding_trains_no_more(tmp_path):
    # minutes × 60 can land an ulp above the seconds it came from (1 run in 40 of the test below did).
    from types import SimpleNamespace

    from varsep.train.callbacks import LastCheckpoint

    used = next(x for x in (1 + i / 997 for i in range(1000)) if x / 60 * 60 > x)
    callback = LastCheckpoint(tmp_path / "last.ckpt", every_n_steps=10, max_seconds=used / 60 * 60)
    callback.load_state_dict({"elapsed_seconds": used})
    trainer = SimpleNamespace(strategy=SimpleNamespace(broadcast=lambda v: v), should_stop=False, global_step=5)
    callback.on_train_start(trainer, None)
    assert trainer.should_stop


def test_the_time_limit_counts_the_time_before_a_resume(tmp_path, tiny_config):
    fit(tiny_config(trainer__max_epochs=1), tmp_path / "run")
    before = state(tmp_path / "run")
    elapsed = before["callbacks"]["LastCheckpoint"]["elapsed_seconds"]
    assert elapsed > 0
    # A limit the first part of the run already used up: the resumed run trains not one step more (before, it
    # made one, so running `varsep compare` again gave every model an extra step).
    fit(tiny_config(trainer__max_time_minutes=elapsed / 60, trainer__max_epochs=3), tmp_path / "run", resume=True)
    assert state(tmp_path / "run")["global_step"] == before["global_step"]
    # a larger limit trains on from there
    fit(tiny_config(trainer__max_time_minutes=60, trainer__max_epochs=2), tmp_path / "run", resume=True)
    assert state(tmp_path / "run")["global_step"] > before["global_step"]


def test_one_batch_epochs_are_checkpointed_and_validated_by_steps(tmp_path, tiny_config, monkeypatch):
    """A small data set (one batch per epoch) is not checkpointed at every epoch end, and validation can be
    scheduled by steps: the run costs what its steps cost."""
    from varsep.train.checkpoint_io import AtomicCheckpointIO

    saved: list[str] = []
    real_save = AtomicCheckpointIO.save_checkpoint
    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint",
                        lambda self, ckpt, path, *a, **k: saved.append(
                            f"{Path(path).name}@{ckpt['global_step']}") or real_save(self, ckpt, path, *a, **k))
    config = tiny_config(data__batches_per_epoch=1, trainer__max_epochs=9, trainer__checkpoint_every_n_steps=4,
                         trainer__val_every_n_steps=3)
    run_dir = fit(config, tmp_path / "run")
    assert [s for s in saved if s.startswith("last")] == ["last.ckpt@4", "last.ckpt@8", "last.ckpt@9"]
    rows = (run_dir / "logs" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    validated = [int(r.split(",")[header.index("step")]) + 1 for r in rows[1:]
                 if r.split(",")[header.index("val/mse")]]
    assert validated == [3, 6, 9]
    assert state(run_dir)["global_step"] == 9

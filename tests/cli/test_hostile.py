"""The hostile and clumsy user's catalogue (docs/reliability.md, "Hostile and clumsy input"): every case exits
with its documented code and one plain line, prints no traceback, and leaves every input file as it was.

Most cases call the CLI in-process (``varsep.cli.main``); signals and import times use subprocesses.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import TINY_MODEL

import varsep
from varsep.cli import main
from varsep.errors import ConfigError
from varsep.storage import safe_torch_load

SRC = Path(__file__).resolve().parents[2] / "src"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


# ------------------------------------------------------------------------------------------------ helpers
def digest(path: Path) -> dict[str, str]:
    """Checksums of a file, or of every file under a folder (links not followed; a run's .lock, which fit
    creates and keeps, excluded)."""
    path = Path(path)
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink() and p.name != ".lock"}


def tiny_args(root: Path) -> list[str]:
    """The conftest's tiny model as CLI settings."""
    out = ["--data.root", str(root)]
    for key, value in TINY_MODEL.items():
        out += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return out


def refused(capsys, argv: list[str], message: str, code: int = 2) -> str:
    """Run the CLI; assert the exit code, one line on stderr holding ``message``, and no traceback."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, err
    assert message in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the session's trained tiny run (10 steps, best.ckpt and last.ckpt)."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst, ignore=shutil.ignore_patterns(".lock", "eval"))
    return dst


# ------------------------------------------------------------------------------------------ config files
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)) + "data: *i\n"

CONFIG_FILES = {
    "section given as a list": ("model: [1, 2]\n", "the model section must be a mapping"),
    "section given as a string": ("trainer: fast\n", "the trainer section must be a mapping"),
    "data section as a list": ("data: [waveeq]\n", "the data section must be a mapping"),
    "top-level list": ("- data\n- model\n", "must hold a mapping of sections"),
    "top-level string": ("just words\n", "must hold a mapping of sections"),
    "empty file": ("", "is empty"),
    "only comments": ("# to do\n", "is empty"),
    "duplicate key": ("optim:\n  lr: 1.0e-3\n  lr: 1.0e-2\n", "line 3: the key 'lr' is given twice"),
    "duplicate section": ("seed: 1\nseed: 2\n", "the key 'seed' is given twice"),
    "alias bomb": (BOMB, "YAML aliases expand to more than 100,000 values"),
    "invalid YAML": ("model: {s_dim: 3\n", "is not valid YAML"),
    "nan learning rate": ("optim: {lr: .nan}\n", "optim.lr must be a finite number"),
    "unknown section as a number": ("42: x\n", "unknown config section 42"),
}


@pytest.mark.parametrize("case", list(CONFIG_FILES))
def test_bad_config_files(case, tmp_path, capsys):
    text, message = CONFIG_FILES[case]
    config = tmp_path / "c.yaml"
    config.write_text(text)
    before = digest(config)
    start = time.perf_counter()
    refused(capsys, ["fit", "-c", str(config), "--run-dir", str(tmp_path / "r")], message)
    assert time.perf_counter() - start < 10  # the alias bomb is refused, not expanded
    assert digest(config) == before and not (tmp_path / "r").exists()


def test_binary_config_file(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_bytes(bytes(range(256)) * 4)
    refused(capsys, ["fit", "-c", str(config), "--run-dir", str(tmp_path / "r")], "is not a text file")
    assert not (tmp_path / "r").exists()


def test_config_that_is_a_folder(tmp_path, capsys):
    refused(capsys, ["fit", "-c", str(tmp_path), "--run-dir", str(tmp_path / "r")], "is a folder, not a config")


# ----------------------------------------------------------------------------------------- settings
SETTINGS = {
    "lr nan": (["--optim.lr", "nan"], "optim.lr must be a finite number"),
    "lr inf": (["--optim.lr", "inf"], "optim.lr must be a finite number"),
    "lambda nan": (["--loss.lambda_s", ".nan"], "loss.lambda_s must be a finite number"),
    "negative seed": (["--seed", "-1"], "seed must be in [0, 2³²)"),
    "seed too large": (["--seed", str(2**32)], "seed must be in [0, 2³²)"),
    "zero devices": (["--trainer.devices", "0"], "trainer.devices must be ≥ 1"),
    "devices gibberish": (["--trainer.devices", "a,b"], "trainer.devices must be a number of devices"),
    "unknown accelerator": (["--trainer.accelerator", "quantum"], "trainer.accelerator must be one of"),
    "unknown strategy": (["--trainer.strategy", "magic"], "trainer.strategy 'magic' is unknown"),
    "absurd width": (["--model.width", str(10**7)], "memory"),
    "absurd code size": (["--model.t_dim", str(10**13), "--model.s_dim", str(10**13)], "memory"),
    "absurd hidden layer": (["--model.decoder_hidden", f"[{10**6}, {10**6}]"], "memory"),
    "setting under a value": (["--model.width.x", "1"], "cannot set model.width.x: width is a value"),
    "broken YAML value": (["--model.encoder_hidden", "[1, 2"], "is not valid YAML"),
    "infinite integer": (["--data.batch_size", "1e400"], "data.batch_size must be an integer"),
    "section as a value": (["--trainer", "5"], "unexpected argument '--trainer'"),
}


@pytest.mark.parametrize("case", list(SETTINGS))
def test_bad_settings_before_anything_is_written(case, tmp_path, tiny_waveeq, capsys):
    extra, message = SETTINGS[case]
    before = digest(tiny_waveeq)
    refused(capsys, ["fit", "-c", "waveeq", "--run-dir", str(tmp_path / "r"), *tiny_args(tiny_waveeq), *extra],
            message)
    assert not (tmp_path / "r").exists()  # so the corrected command is not refused as "already exists"
    assert digest(tiny_waveeq) == before


@NO_CUDA
def test_gpu_accelerator_without_a_gpu(tmp_path, tiny_waveeq, capsys):
    refused(capsys, ["fit", "-c", "waveeq", "--run-dir", str(tmp_path / "r"), *tiny_args(tiny_waveeq),
                     "--trainer.accelerator", "gpu"], "no CUDA GPU is available")
    assert not (tmp_path / "r").exists()


def test_data_root_that_is_a_file(tmp_path, tiny_waveeq, capsys):
    refused(capsys, ["fit", "-c", "waveeq", "--run-dir", str(tmp_path / "r"), *tiny_args(tiny_waveeq),
                     "--data.root", str(tiny_waveeq / "frames.npy")], "is a file, not a folder")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------- run folders
def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "thesis.tex").write_text("\\chapter{Four years of work}")
    (path / "figures").mkdir(exist_ok=True)
    (path / "figures" / "plot.pdf").write_bytes(b"%PDF-1.5 ...")
    return path


def _fake_run_without_provenance(path: Path) -> Path:
    path.mkdir()
    (path / "config.yaml").write_text("seed: 0\n")
    (path / "run.json").write_text('{"seed": 0}')  # no "varsep" version: not written by varsep
    return path


RUN_DIRS = {
    "a folder of the user's files": (lambda t: _user_folder(t / "thesis"), ["--overwrite"],
                                     "is not a varsep run folder (with the run.json and config.yaml varsep "
                                     "writes), so --overwrite will not delete it"),
    "a data folder": (lambda t: Path(shutil.copytree(t.parent / "data-src", t / "data")), ["--overwrite"],
                      "is not a varsep run folder"),
    "a run.json not written by varsep": (lambda t: _fake_run_without_provenance(t / "fake"), ["--overwrite"],
                                         "is not a varsep run folder"),
    "the current folder": (lambda t: Path("."), ["--overwrite"], "it is the current folder"),
    "the parent of the current folder": (lambda t: Path(".."), ["--overwrite"], "it holds the current folder"),
    "the home folder": (lambda t: Path.home(), ["--overwrite"], "it is your home folder"),
    "a file": (lambda t: _write(t / "notes.txt"), [], "is a file, not a folder"),
    "a file, with --overwrite": (lambda t: _write(t / "notes.txt"), ["--overwrite"], "is a file, not a folder"),
    "a file, with --resume": (lambda t: _write(t / "notes.txt"), ["--resume"], "is a file, not a folder"),
    "a folder under a file": (lambda t: _write(t / "notes.txt") / "run", [], "notes.txt is a file"),
    "a link to a folder": (lambda t: _link(_user_folder(t / "real"), t / "link"), ["--overwrite"], "is a link"),
    "an existing run, no flag": (lambda t: Path(shutil.copytree(t.parent / "run-src", t / "run")), [],
                                 "already exists; continue it with --resume"),
}


def _write(path: Path) -> Path:
    path.write_text("my notes")
    return path


def _link(target: Path, link: Path) -> Path:
    link.symlink_to(target, target_is_directory=True)
    return link


@pytest.mark.parametrize("case", list(RUN_DIRS))
def test_run_folders_that_are_refused(case, tmp_path, tiny_waveeq, tiny_run, monkeypatch, capsys):
    shutil.copytree(tiny_waveeq, tmp_path / "data-src")
    shutil.copytree(tiny_run, tmp_path / "run-src", ignore=shutil.ignore_patterns(".lock"))
    work = tmp_path / "work"
    work.mkdir()
    _user_folder(work / "cwd")
    monkeypatch.chdir(work / "cwd")
    monkeypatch.setenv("HOME", str(_user_folder(work / "home")))
    make, flags, message = RUN_DIRS[case]
    target = make(work)
    before = digest(tmp_path)
    refused(capsys, ["fit", "-c", "waveeq", "--run-dir", str(target), *flags, *tiny_args(tmp_path / "data-src")],
            message)
    assert digest(tmp_path) == before  # nothing deleted, nothing written


def test_overwrite_replaces_a_varsep_run(run_copy, tiny_waveeq, capsys):
    before = safe_torch_load(run_copy / "checkpoints" / "last.ckpt")["global_step"]
    (run_copy / "eval").mkdir()
    assert main(["fit", "-c", "waveeq", "--run-dir", str(run_copy), "--overwrite", "--quiet",
                 *tiny_args(tiny_waveeq), "--trainer.max_epochs", "1", "--data.batches_per_epoch", "2"]) == 0
    assert before == 10 and safe_torch_load(run_copy / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert not (run_copy / "eval").exists()  # the old run's files went; the run is a new one


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_run_folder(tmp_path, tiny_waveeq, capsys):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        refused(capsys, ["fit", "-c", "waveeq", "--run-dir", str(locked / "r"), *tiny_args(tiny_waveeq)],
                "is not writable")
    finally:
        locked.chmod(0o700)


# ------------------------------------------------------------------------------------- one writer per run
def test_a_second_training_of_one_run_is_refused(run_copy, tiny_waveeq, capsys):
    from varsep.train.rundir import RunLock

    before = digest(run_copy)
    with RunLock(run_copy):  # another open file description: flock conflicts as it would across processes
        before = digest(run_copy)
        line = refused(capsys, ["fit", "--resume", "--run-dir", str(run_copy), "--trainer.max_epochs", "3"],
                       "is training in")
        assert f"PID {os.getpid()}" in line
        refused(capsys, ["fit", "-c", "waveeq", "--run-dir", str(run_copy), "--overwrite",
                         *tiny_args(tiny_waveeq)], "is training in")
    assert digest(run_copy) == before


def test_a_killed_holder_leaves_no_stuck_lock(run_copy):
    from varsep.train.rundir import RunLock

    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, time
        f = open({str(run_copy / '.lock')!r}, "a+")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        f.write(str(os.getpid())); f.flush()
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(ConfigError, match=f"PID {holder.pid}"):
        RunLock(run_copy).acquire()
    holder.kill()  # SIGKILL: no cleanup; the lock file stays behind
    holder.wait()
    assert (run_copy / ".lock").exists()
    lock = RunLock(run_copy)
    lock.acquire()  # the OS dropped the dead process's lock
    lock.release()


# ------------------------------------------------------------------------------------- resume and temps
def test_resume_after_a_hand_edited_config_is_refused_before_rewriting(run_copy, capsys):
    config = run_copy / "config.yaml"
    config.write_text(config.read_text().replace("width: 16", "width: 24"))
    before = digest(run_copy)
    refused(capsys, ["fit", "--resume", "--run-dir", str(run_copy)],
            "differ from the run's checkpoint last.ckpt (was config.yaml edited?): model.width")
    assert digest(run_copy) == before  # config.yaml and run.json untouched


TEMP_NAMES = {
    "checkpoints/.last.ckpt.k2j4h5g6.tmp": True,
    "checkpoints/.best.ckpt.a_b1c2d3.tmp": True,
    "checkpoints/snapshots/.epoch-0002.ckpt.zz9yy8xx.tmp": True,
    "logs/metrics.csv.tmp": True,
    "checkpoints/notes.tmp": False,  # not hidden: not one of varsep's
    "checkpoints/.mine.tmp": False,  # no checkpoint name in it
    "checkpoints/.last.ckpt.tmp.bak": False,
    "logs/.metrics.csv.tmp.keep": False,
    "my.tmp": False,  # outside checkpoints/ and logs/
}


def test_only_varsep_temp_files_count_as_stale(tmp_path):
    from varsep.runs import stale_temp_files

    for name in TEMP_NAMES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    found = {str(p.relative_to(tmp_path)) for p in stale_temp_files(tmp_path)}
    assert found == {name for name, stale in TEMP_NAMES.items() if stale}


def test_stale_temp_files_are_removed_at_the_next_start(run_copy, capsys):
    for name in TEMP_NAMES:
        (run_copy / name).parent.mkdir(parents=True, exist_ok=True)
        (run_copy / name).write_bytes(b"\0" * 100)
    assert main(["fit", "--resume", "--run-dir", str(run_copy), "--trainer.max_epochs", "3", "--quiet"]) == 0
    for name, stale in TEMP_NAMES.items():
        assert (run_copy / name).exists() != stale, name
    assert safe_torch_load(run_copy / "checkpoints" / "last.ckpt")["global_step"] == 15
    assert "removed" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- evaluate
EVALUATE = {
    "batch size 0": (["--batch-size", "0"], "argument --batch-size: must be ≥ 1, got 0"),
    "negative batch size": (["--batch-size", "-3"], "argument --batch-size: must be ≥ 1, got -3"),
    "batch size not a number": (["--batch-size", "many"], "expected a whole number, got 'many'"),
    "limit -1": (["--limit", "-1"], "argument --limit: must be ≥ 1, got -1"),
    "limit 0": (["--limit", "0"], "argument --limit: must be ≥ 1, got 0"),
    "negative samples": (["--samples", "-1"], "argument --samples: must be ≥ 0"),
    "unknown device": (["--device", "quantum"], "expected cpu, cuda, cuda:N, mps or auto"),
    "bad device index": (["--device", "cuda:x"], "expected cpu, cuda, cuda:N, mps or auto"),
    "unknown option": (["--bogus", "1"], "unexpected argument '--bogus'"),
}


@pytest.mark.parametrize("case", list(EVALUATE))
def test_bad_evaluate_options(case, run_copy, capsys):
    extra, message = EVALUATE[case]
    before = digest(run_copy)
    refused(capsys, ["evaluate", str(run_copy), "--quiet", *extra], message)
    assert digest(run_copy) == before and not (run_copy / "eval").exists()


@NO_CUDA
def test_evaluate_on_cuda_without_a_gpu(run_copy, capsys):
    refused(capsys, ["evaluate", str(run_copy), "--device", "cuda", "--quiet"], "no CUDA GPU is available")
    assert not (run_copy / "eval").exists()


def test_evaluate_targets_that_are_refused(run_copy, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(run_copy, other)
    before = digest(tmp_path)
    refused(capsys, ["evaluate", str(run_copy / "checkpoints" / "last.ckpt")], "is a file: varsep evaluate takes")
    refused(capsys, ["evaluate", str(tmp_path / "missing")], "is missing: varsep evaluate takes a run folder")
    refused(capsys, ["evaluate", str(run_copy), "--checkpoint", str(other / "checkpoints" / "last.ckpt")],
            "is not in")  # another run's scores never land in this run's eval/
    (tmp_path / "out.txt").write_text("mine")
    before = digest(tmp_path)
    refused(capsys, ["evaluate", str(run_copy), "--out", str(tmp_path / "out.txt")], "is a file, not a folder")
    assert digest(tmp_path) == before


def test_a_run_without_best_checkpoint_says_it_uses_the_last(run_copy, capsys):
    (run_copy / "checkpoints" / "best.ckpt").unlink()
    assert main(["evaluate", str(run_copy), "--limit", "2", "--no-figures", "--no-swap", "--no-ssim", "--quiet",
                 "--precision", "32"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "has no best.ckpt (no validation ran yet): using last.ckpt" in err
    with pytest.warns(UserWarning, match="using last.ckpt, the weights of step 10"):
        varsep.load(run_copy)


def test_ctrl_c_in_evaluate_is_one_line(run_copy, monkeypatch, capsys):
    import varsep.eval.evaluation as evaluation

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "score_horizon", interrupted)
    refused(capsys, ["evaluate", str(run_copy), "--quiet", "--precision", "32"], "interrupted (Ctrl-C)", code=130)


# ---------------------------------------------------------------------------------------------- predict
@pytest.fixture
def observations(tiny_waveeq, tmp_path) -> Path:
    path = tmp_path / "obs.npy"
    np.save(path, np.load(tiny_waveeq / "frames.npy")[6, 20:30])  # (time, H, W)
    return path


def _predict(run: Path, inp: Path, out: Path | str, *extra: str) -> list[str]:
    return ["predict", str(run), "--checkpoint", "last", "--input", str(inp), "--out", str(out), *extra]


PREDICT_OUT = {
    "the input itself": lambda obs: obs,
    "the input by another path": lambda obs: obs.parent / "sub" / ".." / obs.name,
    "a link to the input": lambda obs: _symlink(obs, obs.parent / "link.npy"),
    "a hard link to the input": lambda obs: _hardlink(obs, obs.parent / "hard.npy"),
}


def _symlink(target: Path, link: Path) -> Path:
    link.symlink_to(target)
    return link


def _hardlink(target: Path, link: Path) -> Path:
    os.link(target, link)
    return link


@pytest.mark.parametrize("case", list(PREDICT_OUT))
def test_predict_never_writes_over_its_input(case, tiny_run, observations, capsys):
    (observations.parent / "sub").mkdir()
    out = PREDICT_OUT[case](observations)
    before = digest(observations)
    refused(capsys, _predict(tiny_run, observations, out, "--horizon", "3"), "would overwrite the input")
    assert digest(observations) == before


PREDICT_BAD = {
    "out is a folder": (lambda d: d, ["--horizon", "3"], "is a folder; name the forecast file"),
    "out of another format": (lambda d: d / "f.txt", ["--horizon", "3"], "write the forecast as .npy or .nc"),
    "out over the checkpoint": (lambda d: d / "c.ckpt", ["--horizon", "3"], "write the forecast as .npy or .nc"),
    "horizon 0": (lambda d: d / "f.npy", ["--horizon", "0"], "argument --horizon: must be ≥ 1, got 0"),
    "negative horizon": (lambda d: d / "f.npy", ["--horizon", "-5"], "argument --horizon: must be ≥ 1"),
    "huge horizon": (lambda d: d / "f.npy", ["--horizon", str(10**12)], "GB of memory"),
    "bad times": (lambda d: d / "f.npy", ["--times", "1,soon"], "could not convert"),
}


@pytest.mark.parametrize("case", list(PREDICT_BAD))
def test_bad_predict_requests(case, tiny_run, observations, capsys):
    out, extra, message = PREDICT_BAD[case]
    before = digest(observations.parent)
    refused(capsys, _predict(tiny_run, observations, out(observations.parent), *extra), message)
    assert digest(observations.parent) == before


def test_ctrl_c_in_predict_is_one_line(tiny_run, observations, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(varsep.Forecaster, "forecast", interrupted)
    refused(capsys, _predict(tiny_run, observations, observations.parent / "f.npy", "--horizon", "2"),
            "interrupted (Ctrl-C)", code=130)


def test_predict_reads_netcdf_by_dimension_name(tiny_run, tiny_waveeq, tmp_path):
    """(time, member, y, x): members are sequences, whatever the axis order (the same rule as training)."""
    frames = np.load(tiny_waveeq / "frames.npy")[6:8, 20:30]  # (member, time, H, W)
    ds = xr.Dataset({"u": (("time", "member", "y", "x"), frames.transpose(1, 0, 2, 3))},
                    coords={"time": np.arange(10.0)})
    ds.to_netcdf(tmp_path / "obs.nc")
    np.save(tmp_path / "obs.npy", frames)
    assert main(_predict(tiny_run, tmp_path / "obs.nc", tmp_path / "f.nc", "--horizon", "4", "--no-figure",
                         "--precision", "32")) == 0
    assert main(_predict(tiny_run, tmp_path / "obs.npy", tmp_path / "f.npy", "--horizon", "4", "--no-figure",
                         "--precision", "32")) == 0
    got = xr.open_dataset(tmp_path / "f.nc")["u"]
    assert got.dims == ("time", "member", "y", "x")  # written in the input's order
    np.testing.assert_allclose(got.values.transpose(1, 0, 2, 3), np.load(tmp_path / "f.npy"), rtol=1e-6)
    np.testing.assert_array_equal(got["time"], np.arange(10.0, 14.0))


NETCDF_BAD = {
    "no time dimension": ((("y", "x")), "variable 'u' with dims (y: 64, x: 64): no dimension is named time"),
    "an extra dimension": ((("time", "y", "x", "band")), "the file holds (time: 6, y: 64, x: 64, band: 2)"),
}


@pytest.mark.parametrize("case", list(NETCDF_BAD))
def test_netcdf_layouts_are_described_by_their_dimension_names(case, tiny_run, tmp_path, capsys):
    dims, message = NETCDF_BAD[case]
    shape = {"time": 6, "y": 64, "x": 64, "band": 2}
    xr.Dataset({"u": (dims, np.zeros([shape[d] for d in dims], np.float32))}).to_netcdf(tmp_path / "obs.nc")
    before = digest(tmp_path)
    refused(capsys, _predict(tiny_run, tmp_path / "obs.nc", tmp_path / "f.nc", "--horizon", "2"), message)
    assert digest(tmp_path) == before


# ----------------------------------------------------------------------------------------------- report
def test_report_never_writes_over_its_inputs(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns(".lock"))
    assert main(["evaluate", str(run), "--limit", "2", "--no-figures", "--no-swap", "--no-ssim", "--quiet",
                 "--precision", "32"]) == 0
    capsys.readouterr()
    metrics = run / "eval" / "metrics.json"
    before = digest(tmp_path)
    refused(capsys, ["report", str(metrics), "--out", str(run / "eval" / "metrics.md")], "would overwrite the input")
    refused(capsys, ["report", str(run), "--out", str(tmp_path)], "is a folder; name the Markdown file")
    refused(capsys, ["report", str(run), "--out", str(tmp_path / "r.json")], "give the Markdown file (.md)")
    refused(capsys, ["report", str(run), "--bogus"], "unrecognized arguments: --bogus")
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe\x00garbage")
    before = digest(tmp_path)
    refused(capsys, ["report", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r.md")], "is not valid JSON")
    assert digest(tmp_path) == before


# ------------------------------------------------------------------------------------------------- data
def test_16_bit_png_frames_keep_their_range(tmp_path):
    from PIL import Image

    from varsep.data.custom.read import read_frames

    ramp = (np.arange(8 * 8, dtype=np.uint32).reshape(8, 8) * 1000).astype(np.uint16)  # 0 … 63,000
    for i in range(3):
        Image.fromarray(ramp + i).save(tmp_path / f"{i}.png")  # a uint16 array: a 16-bit grey PNG
    raw = read_frames(tmp_path)
    assert raw.rows.dtype == np.uint16 and raw.raw_scale == pytest.approx(1 / 65535)
    np.testing.assert_array_equal(raw.rows[1, 0], ramp + 1)  # not clipped to 0/255
    assert len(np.unique(raw.rows[0])) == 64


def test_8_bit_png_frames_are_unchanged(tmp_path):
    from PIL import Image

    from varsep.data.custom.read import read_frames

    img = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    for i in range(2):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    raw = read_frames(tmp_path)
    assert raw.rows.dtype == np.uint8 and raw.raw_scale == pytest.approx(1 / 255)
    np.testing.assert_array_equal(raw.rows[0, 0], img)


# ---------------------------------------------------------------------------------------------- signals
SIGNAL_SCRIPT = """
    import os, signal, sys
    import torch
    from lightning.pytorch.callbacks import Callback
    import varsep.train.runner as runner
    from varsep.cli import main

    torch.set_num_threads(2)  # the arithmetic of the in-process reference run
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job starts with it ignored
    build = runner.build_trainer

    class SignalAt(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == 3:
                os.kill(os.getpid(), getattr(signal, sys.argv[1]))

    def with_signal(*args, extra_callbacks=None, **kwargs):
        return build(*args, extra_callbacks=[*(extra_callbacks or []), SignalAt()], **kwargs)

    runner.build_trainer = with_signal
    sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("name, code, said", [("SIGTERM", 143, "interrupted by SIGTERM"),
                                             ("SIGINT", 130, "interrupted by Ctrl-C")])
def test_a_signal_during_fit_saves_exits_with_its_code_and_says_how_to_resume(name, code, said, tmp_path,
                                                                             tiny_waveeq, tiny_run):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SIGNAL_SCRIPT), name, "fit", "-c", "waveeq",
                           "--run-dir", str(run), "--quiet", *tiny_args(tiny_waveeq)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == code, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last_line = done.stderr.strip().splitlines()[-1]
    assert said in last_line and f"continue with: varsep fit --resume --run-dir {run}" in last_line
    saved = safe_torch_load(run / "checkpoints" / "last.ckpt")["global_step"]
    assert saved in (3, 4)
    assert main(["fit", "--resume", "--run-dir", str(run), "--quiet"]) == 0
    final, reference = (safe_torch_load(p / "checkpoints" / "last.ckpt") for p in (run, tiny_run))
    assert final["global_step"] == reference["global_step"] == 10
    if name == "SIGTERM":  # saved at the periodic save's point: the resumed run is the uninterrupted one
        for key, value in reference["state_dict"].items():
            assert torch.equal(value, final["state_dict"][key]), key


# ---------------------------------------------------------------------------------- fast answers, python API
def test_version_help_and_config_errors_do_not_import_torch(tmp_path):
    code = textwrap.dedent("""
        import sys
        from varsep.cli import main
        codes = [main(["--version"]), main(["--help"]), main(["fit", "-c", "no-such-config.yaml"])]
        print(codes, "torch" in sys.modules, "lightning" in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    *_, last = done.stdout.strip().splitlines()
    codes, torch_loaded, lightning_loaded = last.rsplit(" ", 2)
    # (how fast that is, is not a test's business: without torch it is well under a second)
    assert codes == "[0, 0, 2]" and torch_loaded == "False" and lightning_loaded == "False", done.stdout
    assert "Spatiotemporal forecasting by separation of variables" in done.stdout


def test_python_api_refuses_a_run_folder_that_is_a_file(tmp_path, tiny_config):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        varsep.fit(tiny_config(), tmp_path / "f")
    with pytest.raises(ConfigError, match="is not a varsep run folder"):
        varsep.fit(tiny_config(), _user_folder(tmp_path / "thesis"), overwrite=True)
    assert (tmp_path / "thesis" / "thesis.tex").read_text().startswith("\\chapter")


def test_best_checkpoint_holds_weights_only(tiny_run):
    best, last = (safe_torch_load(tiny_run / "checkpoints" / name) for name in ("best.ckpt", "last.ckpt"))
    assert "optimizer_states" not in best and "optimizer_states" in last
    assert best["hyper_parameters"]["config"] == last["hyper_parameters"]["config"]
    assert varsep.load(tiny_run).step <= 10  # best.ckpt still loads as a model


def test_python_api_takes_frames_without_their_channel_axis(tiny_run, tiny_waveeq):
    model = varsep.load(tiny_run, "last", precision="32")
    frames = np.load(tiny_waveeq / "frames.npy")[6:8, 20:25]  # (B, τ+1, H, W), as predict accepts them
    bare = model.forecast(frames, horizon=3)
    assert bare.shape == (2, 3, 64, 64) and model.forecast(frames[0], horizon=3).shape == (3, 64, 64)
    np.testing.assert_array_equal(bare, model.forecast(frames[:, :, None], horizon=3)[:, :, 0])

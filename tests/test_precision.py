"""precision: auto picks bf16 only where the hardware runs it natively and faster; runs record the choice."""

from __future__ import annotations

import json
import warnings

import pytest

from varsep import precision as prec
from varsep.errors import ConfigError


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """Pretend to be a CPU of a given class: ``cpu(native=…, speedup=…)``; the probe is counted."""
    monkeypatch.setenv("VARSEP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(prec.ENV_RESOLVED, raising=False)
    calls = []

    def make(*, native: bool, speedup: float = 3.0, capability: str | None = None):
        cls = capability or ("AMX" if native else "AVX2")
        monkeypatch.setattr(prec, "cpu_bf16_native", lambda: native)
        monkeypatch.setattr(prec, "cpu_instruction_class", lambda: cls)

        def probe(*, size: int = 1024):
            calls.append(size)
            return {"matmul": speedup, "conv": speedup * 2}

        monkeypatch.setattr(prec, "probe_bf16_speedup", probe)
        return calls

    return make


def test_auto_is_fp32_without_bf16_instructions_and_runs_no_probe(cpu):
    calls = cpu(native=False)
    choice = prec.resolve_precision("auto")
    assert choice.value == "32"
    assert "AVX2" in choice.reason and "no bf16 instructions" in choice.reason
    assert calls == []  # bf16 is emulated there: even a probe would be slow


def test_auto_is_bf16_where_native_and_faster_and_the_probe_is_cached(cpu):
    calls = cpu(native=True, speedup=3.0)
    first = prec.resolve_precision("auto")
    second = prec.resolve_precision("auto")
    assert first.value == second.value == "bf16"
    assert "AMX" in first.reason and "3.0× faster" in first.reason
    assert first.bf16_speedup == {"matmul": 3.0, "conv": 6.0}
    assert len(calls) == 1  # measured once per machine, then read from the cache


def test_auto_is_fp32_where_native_bf16_is_not_faster(cpu):
    cpu(native=True, speedup=0.9)
    choice = prec.resolve_precision("auto")
    assert choice.value == "32" and "0.9× slower" in choice.reason


def test_a_corrupt_cache_is_measured_again(cpu, tmp_path):
    calls = cpu(native=True, speedup=2.0)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / prec.CACHE_FILE).write_text("{not json")
    assert prec.resolve_precision("auto").value == "bf16"
    assert len(calls) == 1
    assert json.loads((tmp_path / "cache" / prec.CACHE_FILE).read_text())  # rewritten, valid


def test_explicit_bf16_where_slow_runs_with_a_warning_stating_the_slowdown(cpu):
    cpu(native=False, speedup=1 / 460)
    with pytest.warns(prec.PrecisionWarning, match=r"ran 460× slower than fp32"):
        choice = prec.resolve_precision("bf16")
    assert choice.value == "bf16"


def test_explicit_bf16_where_fast_and_fp32_give_no_warning(cpu):
    cpu(native=True, speedup=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prec.resolve_precision("bf16").value == "bf16"
        assert prec.resolve_precision("32").value == "32"


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="auto, 32, bf16"):
        prec.resolve_precision("fp16")


def test_describe_hardware_names_the_class_and_threads():
    hw = prec.describe_hardware()
    assert hw["device"] == "cpu" and hw["threads"] >= 1
    assert hw["capability"] in ("AMX", "AVX512-BF16", "AVX512", "AVX2", "DEFAULT", "NO AVX", "SVE256", "VSX")
    assert isinstance(hw["bf16_native"], bool)


def test_the_real_probe_measures_both_kernels():
    out = prec.probe_bf16_speedup(size=64)
    assert set(out) == {"matmul", "conv"} and all(v > 0 for v in out.values())


# ------------------------------------------------------------------------------------- runs record it
def test_fit_records_the_choice_and_a_resume_on_another_machine_says_so(cpu, tiny_config, tmp_path, capsys):
    from varsep.train import fit

    cpu(native=True, speedup=3.0)
    config = tiny_config(trainer__max_epochs=1, trainer__precision="auto")
    run_dir = fit(config, tmp_path / "run")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["precision"]["requested"] == "auto" and info["precision"]["value"] == "bf16"
    assert info["precision"]["hardware"]["capability"] == "AMX"
    assert "precision: bf16 autocast (auto:" in capsys.readouterr().out

    cpu(native=False)  # the same run continued on an AVX2 machine
    fit(tiny_config(trainer__max_epochs=2, trainer__precision="auto"), run_dir, resume=True)
    out = capsys.readouterr().out
    assert "precision: fp32 (auto:" in out
    assert "this run trained in bf16 autocast on" in out and "(AMX)" in out and "resolves to fp32" in out
    info = json.loads((run_dir / "run.json").read_text())
    assert info["precision"]["value"] == "32"
    assert [h["precision"]["value"] for h in info["history"]] == ["bf16"]


def test_evaluation_records_its_precision(cpu, tiny_run):
    from varsep.eval.evaluation import EvalOptions, evaluate
    from varsep.forecaster import load

    cpu(native=False)
    report = evaluate(load(tiny_run, "last"),
                      options=EvalOptions(limit=4, progress=False, figures=False, swap=False, ssim=False))
    assert report["precision"] == "32" and "no bf16 instructions" in report["precision_reason"]

"""The demo's folder handling (the demo itself runs for minutes: see tests/test_slow.py and the README)."""

from __future__ import annotations

import pytest

from varsep.demo import EVALUATION_STEPS, VALIDATION_OVERHEAD, DemoETA, fresh_folder, run_demo
from varsep.errors import ConfigError


def test_fresh_folder_never_reuses_a_non_empty_one(tmp_path):
    base = tmp_path / "demo"
    assert fresh_folder(base) == base
    base.mkdir()
    assert fresh_folder(base) == base  # empty: usable
    (base / "x").write_text("")
    assert fresh_folder(base) == tmp_path / "demo-2"
    (tmp_path / "demo-2").mkdir()
    (tmp_path / "demo-2" / "y").write_text("")
    assert fresh_folder(base) == tmp_path / "demo-3"


def test_an_explicit_existing_folder_is_not_overwritten(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        run_demo(tmp_path, minutes=0.1, progress=False)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_the_eta_counts_the_steps_or_the_time_cap_whichever_ends_training_first():
    eta = DemoETA(start=0.0, steps=110, at_step=10, minutes=4.0)
    # 1 s a step: 100 more steps with validations take 110 s, within the cap.
    fast = eta.line(trained=10.0, elapsed=12.0)
    assert f"training ends in ~{100 * VALIDATION_OVERHEAD / 60:.1f} min," in fast
    assert f"the demo in ~{(12 + 110 + EVALUATION_STEPS) / 60:.1f} min" in fast
    assert "cap" not in fast
    # 4 s a step: 440 s of steps left, but the cap leaves 240 − 40 = 200 s, i.e. 200 / 4.4 = 45 more steps.
    slow = eta.line(trained=40.0, elapsed=42.0)
    assert "training ends in ~3.3 min (the 4-minute cap will end it near step 55 of 110" in slow
    assert f"the demo in ~{(42 + 200 + 4 * EVALUATION_STEPS) / 60:.1f} min" in slow
    assert "cap" not in DemoETA(start=0.0, steps=110, at_step=10, minutes=None).line(40.0, 42.0)

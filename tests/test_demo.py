"""The demo's folder handling (the demo itself runs for minutes: see tests/test_slow.py and the README)."""

from __future__ import annotations

import pytest

from varsep.demo import fresh_folder, run_demo
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

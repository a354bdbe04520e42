"""Small helpers of the figures module (figure files themselves are checked in test_evaluation/test_reports)."""

from __future__ import annotations

import pytest

from varsep.eval.plots import ordinal


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"),
                                         (12, "12th"), (13, "13th"), (21, "21st"), (22, "22nd"), (111, "111th")])
def test_ordinal(n, text):
    assert ordinal(n) == text

"""benchmarks/projection_rows.py: both sides timed on a small task, the policy's property restored."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from benchmarks import projection_rows
from trudi.policies import DiffusionPolicy


def test_both_sides_are_timed_and_the_property_is_restored(monkeypatch, capsys):
    own = DiffusionPolicy.state_independent_scale
    monkeypatch.setattr(sys, "argv", ["projection_rows", "--task", "pendulum", "--rounds", "1"])
    projection_rows.main()
    out = capsys.readouterr().out
    for row in ("| one row |", "| every row |", "| one / every |"):
        assert row in out
    assert DiffusionPolicy.state_independent_scale is own


def test_rounds_below_one_are_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["projection_rows", "--rounds", "0"])
    with pytest.raises(SystemExit):
        projection_rows.main()
    assert "--rounds must be >= 1, got 0" in capsys.readouterr().err

"""benchmarks/overhead.py: one arm timed end to end on a tiny Pendulum, and the repeats' choice."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from benchmarks import overhead
from examples.config import compose_config

TINY = ("env=pendulum", "num_envs=2", "rollout_length=4", "minibatches=2", "epochs=1")


@pytest.mark.parametrize("arm", ["TruDi K=5", "Gaussian PPO"])
def test_an_arm_is_timed_per_part_and_clock(arm):
    cfg = compose_config(*TINY, *overhead.ARMS[arm], "policy.hidden_dim=8")
    result = overhead.time_arm(cfg, iterations=1)
    for clock in overhead.CLOCKS:
        assert set(result[clock]) == set(overhead.PARTS)
        assert all(value > 0 for value in result[clock].values())
    assert result["warm_up"] > 0


def test_repeats_keep_each_arms_fastest_run():
    def timing(total):
        parts = dict.fromkeys(overhead.PARTS, total / 3)
        return {"wall": parts, "cpu": parts, "warm_up": 1.0}

    slow, fast = timing(3.0), timing(1.5)
    assert overhead._faster(None, slow) is slow
    assert overhead._faster(slow, fast) is fast
    assert overhead._faster(fast, slow) is fast


def test_repeats_below_one_are_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["overhead", "--repeats", "0"])
    with pytest.raises(SystemExit):
        overhead.main()
    assert "--repeats must be >= 1, got 0" in capsys.readouterr().err

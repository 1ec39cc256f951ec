"""benchmarks/action_stats.py end to end on a tiny Pendulum checkpoint."""

from __future__ import annotations

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from benchmarks import action_stats
from examples import train
from tests.examples.helpers import config


@pytest.mark.parametrize("algo", ["trudi", "ppo"])
def test_stats_and_episodes_of_a_checkpoint(algo, tmp_path):
    train.train(config(f"algo={algo}", "total_frames=64", "eval_every=0"), tmp_path)
    stats = action_stats.action_stats(tmp_path / "checkpoint.pt", num_envs=4, draws=16)
    assert stats["iteration"] == 1
    assert 0.0 < stats["std / bound"] < 1.0
    assert 0.0 <= stats["at bound"] <= 1.0
    assert 0.0 <= stats["|deterministic| / bound"] <= 1.0
    # Jensen and |a| <= bound: (mean |a|)² <= mean a² <= mean |a|, in units of the bound.
    mean_abs = stats["|deterministic| / bound"]
    assert mean_abs**2 <= stats["(deterministic / bound)²"] <= mean_abs
    # Pendulum never terminates: every eval episode runs to the tiny config's 20-step limit.
    assert stats["eval_length_deterministic"] == stats["eval_length_stochastic"] == 20.0
    assert stats["eval_return_deterministic"] < 0.0

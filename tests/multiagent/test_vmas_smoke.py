"""A tiny VMAS training run of the example: both arms, both scenarios, CSV and curve written."""

from __future__ import annotations

import math

import pytest

from examples.multiagent import run, train
from tests.multiagent.helpers import make_cfg


@pytest.mark.parametrize(("algo", "scenario"), [("trudi", "navigation"), ("mappo", "balance")])
def test_train_runs_and_logs(algo, scenario):
    cfg = make_cfg(f"algo={algo}", f"env.scenario={scenario}", "collector.total_frames=48")
    history = train(cfg)
    assert [row["frames"] for row in history] == [24, 48]
    for row in history:
        assert math.isfinite(row["reward_per_step"]) and math.isfinite(row["loss_objective"])
    if algo == "trudi":
        assert history[-1]["kl_trajectory_after"] <= cfg.loss.mean_bound + cfg.loss.cov_bound


def test_run_writes_curve_and_metrics(tmp_path, capsys):
    cfg = make_cfg("env.scenario=balance", "env.max_steps=6")
    run(cfg, tmp_path)
    assert "trudi on balance: return" in capsys.readouterr().out
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 2
    with pytest.raises(
        FileExistsError, match=r"holds another run's metrics\.csv, learning_curve\.png"
    ):
        run(cfg, tmp_path)

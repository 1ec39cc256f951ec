"""Tiny end-to-end runs of the multi-agent example: every arm trains, logs and checkpoints; a
finished run is not trained again, a stopped one resumes; a NaN keeps the last good checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from examples.checkpoint import load_checkpoint
from examples.multiagent import train
from examples.run_dir import RunDirectoryError
from examples.train import NonFiniteLossError
from tests.examples.multiagent.helpers import make_cfg

# 16 envs x 16 steps, 3 iterations: 768 env steps of 3 agents; episodes of 8 steps finish.
SMOKE = ["num_envs=16", "rollout_length=16", "total_frames=768", "epochs=2", "minibatches=2"]


@pytest.mark.parametrize(
    ("algo", "scenario"),
    [("trudi", "navigation"), ("mappo", "balance"), ("trudi_pathwise", "transport")],
)
def test_each_arm_trains_logs_and_checkpoints(algo, scenario, tmp_path):
    cfg = make_cfg(f"algo={algo}", f"env.scenario={scenario}", *SMOKE)
    history = train(cfg, tmp_path)
    assert [row["frames"] for row in history] == [256, 512, 768]
    for row in history:
        assert all(math.isfinite(v) for k, v in row.items() if k.startswith("loss_"))
    assert math.isfinite(history[-1]["train_return"])
    if algo == "trudi":
        bound = cfg.projection.mean_bound + cfg.projection.cov_bound
        assert history[-1]["kl_trajectory_after"] <= bound * (1 + 1e-3)
    for name in ("checkpoint.pt", "config.yaml", "learning_curve.png"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "logs" / "scalars" / "train_return.csv").exists()
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["iteration"] == 3 and checkpoint["history"] == history


def test_finished_run_is_not_trained_again_and_a_new_run_refuses_its_directory(tmp_path, capsys):
    cfg = make_cfg(*SMOKE)
    history = train(cfg, tmp_path)
    with pytest.raises(RunDirectoryError, match="holds an earlier run"):
        train(cfg, tmp_path)
    again = train(make_cfg(*SMOKE, "resume=true"), tmp_path)
    assert "already finished" in capsys.readouterr().out
    assert again == history


def test_stopped_run_resumes_where_its_checkpoint_is(tmp_path):
    def stop_after_two(iteration, metrics):
        if iteration == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(make_cfg(*SMOKE, "checkpoint_every=1"), tmp_path, on_iteration=stop_after_two)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 1
    history = train(make_cfg(*SMOKE, "checkpoint_every=1", "resume=true"), tmp_path)
    assert [row["frames"] for row in history] == [256, 512, 768]
    with pytest.raises(RunDirectoryError, match="another configuration"):
        train(make_cfg(*SMOKE, "checkpoint_every=1", "resume=true", "lr=1e-3"), tmp_path)


def test_nan_stops_run_and_keeps_checkpoint(tmp_path, monkeypatch):
    from trudi.learners import TruDiLoss

    forward, calls = TruDiLoss.forward, {"n": 0}

    def poisoned(self, tensordict):
        out = forward(self, tensordict)
        calls["n"] += 1
        if calls["n"] > 2 * 2 * 2:  # after two iterations (2 epochs x 2 minibatches each)
            out["loss_objective"] = out["loss_objective"] * float("nan")
        return out

    monkeypatch.setattr(TruDiLoss, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"non-finite \['loss_objective'.* iteration 3"):
        train(make_cfg(*SMOKE, "checkpoint_every=2"), tmp_path)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["iteration"] == 2
    assert all(
        torch.isfinite(v).all() for v in checkpoint["loss"].values() if v.is_floating_point()
    )

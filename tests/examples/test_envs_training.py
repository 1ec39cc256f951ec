"""Tiny trainings on EnvPool's task families and at scale=massive, and what an EnvPool resume keeps."""

from __future__ import annotations

import shutil

import pytest
import torch

pytest.importorskip("hydra")
pytest.importorskip("envpool")

from examples import train
from examples.checkpoint import load_checkpoint
from examples.config import compose_config

SMOKE = [
    "epochs=1",
    "eval_episodes=1",
    "env.max_episode_steps=50",
    "progress_bar=false",
    "policy.hidden_dim=16",
    "policy.num_steps=3",
    "critic.hidden_dim=16",
]


def config(*overrides: str):
    return compose_config(*SMOKE, *overrides)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _finite(metrics):
    return all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith("loss_"))


@pytest.mark.parametrize("env", ["g1_joystick", "dmc_humanoid_walk", "halfcheetah"])
def test_smoke_training_on_envpool(env, tmp_path):
    cfg = config(
        f"env={env}",
        "env.backend=envpool",
        "num_envs=16",
        "rollout_length=32",
        "minibatches=2",
        "total_frames=2048",
        "eval_every=4",
    )
    metrics = train.train(cfg, tmp_path)
    assert metrics["frames"] == 2048 and _finite(metrics)
    assert "eval_return_deterministic" in metrics


def test_smoke_training_at_scale_massive(tmp_path):
    cfg = config("scale=massive", "env=halfcheetah", "total_frames=16384", "eval_every=1")
    assert (cfg.num_envs, cfg.rollout_length, cfg.minibatches, cfg.epochs) == (1024, 16, 8, 1)
    metrics = train.train(cfg, tmp_path)
    assert metrics["frames"] == 16384 and _finite(metrics)


def test_envpool_resume_restores_learning_state_and_is_deterministic(tmp_path, monkeypatch):
    """EnvPool cannot save physics: a resume continues the networks, optimiser, normaliser and RNGs
    exactly (the first iterations match the uninterrupted run) and restarts the episodes, the same
    way every time (two resumes of one checkpoint agree)."""
    overrides = (
        "env=hopper",
        "num_envs=4",
        "rollout_length=16",
        "minibatches=2",
        "total_frames=256",
        "checkpoint_every=2",
        "eval_every=0",
    )
    train.train(config(*overrides), tmp_path / "full")
    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["history"]

    calls = {"n": 0}
    collect = train.collect

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return collect(*args, **kwargs)

    monkeypatch.setattr(train, "collect", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.train(config(*overrides), tmp_path / "a")
    monkeypatch.setattr(train, "collect", collect)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    histories = []
    for run in ("a", "b"):
        train.train(config(*overrides, "resume=true"), tmp_path / run)
        histories.append(load_checkpoint(tmp_path / run / "checkpoint.pt")["history"])
    keys = ("loss_objective", "loss_critic", "train_return")
    assert [[h[k] for k in keys] for h in histories[0]] == [
        [h[k] for k in keys] for h in histories[1]
    ]
    assert [h["loss_critic"] for h in histories[0][:2]] == [h["loss_critic"] for h in full[:2]]
    assert len(histories[0]) == len(full) == 4

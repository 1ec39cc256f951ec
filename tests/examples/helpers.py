"""A tiny configuration of the training example: Pendulum, 4 envs x 16 steps (64 frames) per iteration."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from examples.config import compose_config

TINY = [
    "env=pendulum",
    "num_envs=4",
    "rollout_length=16",
    "epochs=2",
    "minibatches=2",
    "eval_every=2",
    "eval_episodes=1",
    "env.max_episode_steps=20",
    "progress_bar=false",
    "policy.hidden_dim=16",
    "critic.hidden_dim=16",
]
FRAMES_PER_ITERATION = 4 * 16


def config(*overrides: str) -> DictConfig:
    """The example's config with the tiny settings, plus ``overrides``."""
    return compose_config(*TINY, *overrides)


def logged_steps(run_dir: Path, metric: str = "loss_objective") -> list[int]:
    """The steps of one metric's CSV log, in file order."""
    rows = (run_dir / "logs" / "scalars" / f"{metric}.csv").read_text().splitlines()
    return [int(row.split(",")[0]) for row in rows]

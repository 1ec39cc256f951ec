"""A tiny configuration of the training example: Pendulum, 4 envs x 16 steps (64 frames) per iteration."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from tensordict.nn import InteractionType, set_interaction_type

from examples.build import build_critic, build_loss, build_policy, build_value_estimator
from examples.config import compose_config
from examples.envs import make_env

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


def collected_batch(*overrides: str, device: str = "cpu"):
    """The tiny config with ``overrides``, its policy, loss and an Adam optimizer, and one
    collected batch ``[N, T]`` with its advantages and value targets."""
    cfg = config(*overrides)
    torch.manual_seed(0)
    env = make_env(cfg.env.name, cfg.num_envs, seed=0, reward_scale=cfg.env.reward_scale)
    policy, critic = build_policy(cfg, env), build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    estimator = build_value_estimator(cfg, loss, critic)
    td, steps = env.reset(), []
    with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
        for _ in range(cfg.rollout_length):
            step, td = env.step_and_maybe_reset(policy(td))
            steps.append(step)
    env.close()
    batch = torch.stack(steps, dim=-1)
    if hasattr(loss, "sync_old_policy"):
        loss.sync_old_policy()
    with torch.no_grad():
        estimator(batch)
    loss, batch = loss.to(device), batch.to(device)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3, eps=1e-5)
    return cfg, policy, loss, optimizer, batch

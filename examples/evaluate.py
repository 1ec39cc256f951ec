"""The example's evaluation protocol: one episode per eval env, deterministic and stochastic."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from tensordict.nn import InteractionType, set_interaction_type

from examples.envs import env_options, make_env, normalizer

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(cfg: DictConfig, train_env, policy, seed: int) -> dict[str, float]:
    """Mean return and mean length of one episode per eval env, with the deterministic sampler
    (probability-flow ODE for diffusion policies, the mean for Gaussian ones) and with the
    stochastic one: ``eval_return_<sampler>`` and ``eval_length_<sampler>`` (env steps until the
    episode ended, ``cfg.env.max_episode_steps`` for one that reached the time limit). A return
    near zero with a short length means the policy falls; with the full length, that it stands
    still."""
    obs_norm = normalizer(train_env)
    results = {}
    for name, interaction in (
        ("deterministic", InteractionType.DETERMINISTIC),
        ("stochastic", InteractionType.RANDOM),
    ):
        env = make_env(
            cfg.env.name,
            cfg.eval_episodes,
            seed=seed,
            obs_norm=None if obs_norm is None else obs_norm.frozen_copy(),
            **env_options(cfg.env),
        )
        with set_interaction_type(interaction):
            rollout = env.rollout(cfg.env.max_episode_steps, policy, break_when_any_done=False)
        done = rollout["next", "done"].squeeze(-1)
        # The first episode of each env (its last step if it never ended within the horizon).
        last = torch.full_like(done[..., :1], done.shape[-1] - 1, dtype=torch.long)
        first_done = torch.where(
            done.any(-1, keepdim=True), done.float().argmax(dim=-1, keepdim=True), last
        )
        returns = rollout["next", "episode_reward"].squeeze(-1).gather(-1, first_done)
        results[f"eval_return_{name}"] = returns.mean().item()
        results[f"eval_length_{name}"] = (first_done + 1).float().mean().item()
        env.close()
    return results

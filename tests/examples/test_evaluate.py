"""The example's evaluation: the return and the length of each eval env's first episode."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")
pytest.importorskip("mujoco")

from tensordict.nn import InteractionType, set_interaction_type

from examples.build import build_policy
from examples.envs import env_options, make_env, normalizer
from examples.evaluate import evaluate
from tests.examples.helpers import config


def env_and_policy(*overrides: str):
    """The tiny config with ``overrides``, a 2-env training env whose observation normaliser has
    seen 8 steps (an empty one normalises to NaN), and an untrained policy."""
    cfg = config(*overrides)
    torch.manual_seed(0)
    env = make_env(cfg.env.name, 2, seed=0, **env_options(cfg.env))
    policy = build_policy(cfg, env)
    with torch.no_grad():
        env.rollout(8, policy, break_when_any_done=False)
    return cfg, env, policy


def test_an_episode_that_reaches_the_time_limit_has_its_full_length():
    cfg, env, policy = env_and_policy("env.max_episode_steps=20")
    metrics = evaluate(cfg, env, policy, seed=3)
    assert metrics["eval_length_deterministic"] == metrics["eval_length_stochastic"] == 20.0
    env.close()


def test_a_terminated_episode_has_the_length_torchrl_stops_at():
    # Hopper falls within a few dozen steps under an untrained policy; each eval env's first episode
    # ends there, long before the 1,000-step limit.
    overrides = ("env=hopper", "env.backend=gymnasium", "eval_episodes=1")
    cfg, env, policy = env_and_policy(*overrides)
    metrics = evaluate(cfg, env, policy, seed=3)
    frozen = normalizer(env).frozen_copy()
    reference = make_env(cfg.env.name, 1, seed=3, obs_norm=frozen, **env_options(cfg.env))
    with torch.no_grad(), set_interaction_type(InteractionType.DETERMINISTIC):
        steps = reference.rollout(1000, policy, break_when_any_done=True).shape[-1]
    assert 1 < metrics["eval_length_deterministic"] < 1000
    assert metrics["eval_length_deterministic"] == steps
    reference.close()
    env.close()

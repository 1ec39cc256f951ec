"""The multi-agent example's config: the single-agent lessons are the defaults, every arm
composes, bad fields are named before anything is built, and the docstring examples run."""

from __future__ import annotations

import doctest
import importlib

import pytest
from hydra.errors import ConfigCompositionException

from examples.config import ConfigError
from examples.multiagent import compose_config, make_env, make_policy, train
from tests.examples.multiagent.helpers import N_AGENTS, make_cfg


def test_trudi_defaults_follow_the_single_agent_lessons():
    cfg = compose_config()
    assert (cfg.sampler.type, cfg.sampler.prediction, cfg.sampler.min_std) == (
        "ancestral",
        "sample",
        0.3,
    )
    assert cfg.policy.learn_scale and cfg.policy.per_agent_scale and cfg.policy.share_params
    assert (cfg.num_envs, cfg.rollout_length) == (4096, 10)
    policy = make_policy(make_cfg(), make_env(make_cfg()))
    assert policy.sampler.prediction == "sample" and policy.sampler.min_std == pytest.approx(0.3)
    assert policy.log_scale.shape == (cfg.policy.num_steps, N_AGENTS, 2)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["algo=mappo"], ("clip_ppo", "gaussian", None)),
        (["algo=trudi_pathwise"], ("trudi_pathwise", "diffusion", "euler_maruyama")),
        (["algo=trudi"], ("trudi", "diffusion", "ancestral")),
    ],
)
def test_every_arm_composes(overrides, expected):
    cfg = compose_config(*overrides)
    loss, head, sampler = expected
    assert (cfg.algo.loss, cfg.policy.type) == (loss, head)
    if sampler is not None:
        assert cfg.sampler.type == sampler


@pytest.mark.parametrize(
    ("scale", "envs", "steps"), [("default", 4096, 10), ("massive", 16384, 10), ("small", 256, 100)]
)
def test_scales(scale, envs, steps):
    cfg = compose_config(f"scale={scale}")
    assert (cfg.num_envs, cfg.rollout_length) == (envs, steps)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algo=trudi_pathwise", "critic.share_params=false"], "critic.share_params: the Q critic"),
        (
            ["algo=trudi", "policy=gaussian"],
            "policy.type: algo.loss='trudi' needs policy=diffusion",
        ),
        (
            ["algo=mappo", "policy=diffusion"],
            "policy.type: algo.loss='clip_ppo' needs policy=gauss",
        ),
        (["total_frames=100"], "total_frames: must be >= one iteration"),
        (["env.max_steps=0"], "env.max_steps: must be >= 1, got 0"),
    ],
)
def test_bad_value_is_named(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        compose_config(*overrides)


def test_unknown_field_fails_at_composition():
    with pytest.raises(ConfigCompositionException):
        compose_config("policy.num_layers=3")  # a MAPPO field under the diffusion head


def test_bad_field_is_rejected_before_any_env_is_built(tmp_path):
    cfg = make_cfg()
    cfg.projection.mean_bound = -1.0
    with pytest.raises(ConfigError, match=r"projection\.mean_bound: must be > 0"):
        train(cfg, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["examples.multiagent.config", "examples.multiagent.build"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

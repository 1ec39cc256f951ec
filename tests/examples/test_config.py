"""The training example's config schema: every bad field is named before anything is built."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

pytest.importorskip("hydra")

from examples import train
from examples.config import ConfigError, validate
from tests.examples.helpers import config


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("total_frames=abc", "total_frames"),
        ("algo.clip_epsilon=0.1", "algo.clip_epsilon"),  # a PPO/DPPO field under algo=trudi
        ("policy.num_layers=3", "policy.num_layers"),  # a Gaussian field under policy=diffusion
        ("projection.mean_bound=small", "projection.mean_bound"),
    ],
)
def test_wrong_type_or_unknown_field_fails_at_composition(override, field):
    with pytest.raises(ConfigCompositionException) as error:
        config(override)
    assert field in f"{error.value} {error.value.__cause__}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("total_frames=0", "total_frames: must be >= 1, got 0"),
        (
            "total_frames=63",
            "total_frames: must be >= one iteration, num_envs x rollout_length = 64",
        ),
        ("projection.mean_bound=-0.1", "projection.mean_bound: must be > 0, got -0.1"),
        ("projection.cov_bound=0", "projection.cov_bound: must be > 0, got 0"),
        (
            "policy.activation=swish",
            "policy.activation: must be one of ['silu', 'mish', 'relu', 'tanh']",
        ),
        ("lr_schedule=cosine", "lr_schedule: must be one of ['linear', 'constant'], got 'cosine'"),
        ("gamma=1.5", "gamma: must be <= 1, got 1.5"),
        ("algo.denoising_discount=0", "algo.denoising_discount: must be > 0"),
        (
            "algo.ft_denoising_steps=11",
            "algo.ft_denoising_steps: must be <= policy.num_steps = 10, got 11",
        ),
        ("algo.log_prob_min=3", "algo.log_prob_min: must be < algo.log_prob_max = 2.0, got 3.0"),
        ("critic_lr=0", "critic_lr: must be > 0, got 0"),
        ("minibatches=65", "minibatches: must be <= the 64 frames of an iteration, got 65"),
    ],
)
def test_bad_value_is_named(override, message):
    overrides = ["algo=dppo", override] if override.startswith("algo.") else [override]
    with pytest.raises(ConfigError) as error:
        config(*overrides)
    assert message in str(error.value)


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        config("lr=0", "eval_episodes=0", "env.reward_scale=-1")
    assert str(error.value).count("\n") == 3


def test_arm_and_head_must_match():
    with pytest.raises(
        ConfigError, match=r"policy\.type: algo\.loss='clip_ppo' needs policy=gaussian"
    ):
        config("algo=ppo", "policy=diffusion")


def test_bad_field_is_rejected_before_any_env_is_built(tmp_path, monkeypatch):
    """``train`` checks a config changed after composition too, and builds nothing first."""

    def no_env(*args, **kwargs):
        raise AssertionError("an env was built")

    monkeypatch.setattr(train, "make_env", no_env)
    cfg = config("total_frames=128")
    cfg.projection.mean_bound = -1.0
    with pytest.raises(ConfigError, match=r"projection\.mean_bound: must be > 0"):
        train.train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "option",
    [f"algo={a}" for a in ("trudi", "dppo", "ppo", "trpl")]
    + [f"env={e}" for e in ("halfcheetah", "hopper", "walker2d", "ant", "humanoid")]
    + ["sampler=ddim", "projection=w2", "projection=frobenius", "policy=gaussian algo=trpl"],
)
def test_every_shipped_option_composes_and_validates(option):
    cfg = config(*option.split())
    validate(cfg)
    assert OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_docstring_example_runs():
    import doctest

    import examples.config

    result = doctest.testmod(examples.config, optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed

"""The training example: a smoke run per arm, exact resume, and a NaN stop that keeps the checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import train  # noqa: E402
from checkpoint import load_checkpoint  # noqa: E402

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


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(EXAMPLES / "conf"), version_base=None):
        return compose("config", overrides=[*TINY, *overrides])


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("algo", ["trudi", "dppo", "ppo", "trpl"])
def test_smoke_run_each_arm(algo, tmp_path):
    cfg = config(f"algo={algo}", "total_frames=128")
    metrics = train.train(cfg, tmp_path)
    assert metrics["frames"] == 128
    assert all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith("loss_"))
    assert "eval_return_deterministic" in metrics and "eval_return_stochastic" in metrics
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "learning_curve.png").exists()
    assert (tmp_path / "logs" / "scalars" / "loss_objective.csv").exists()
    expected_policy = "gaussian" if algo in ("ppo", "trpl") else "diffusion"
    assert (
        load_checkpoint(tmp_path / "checkpoint.pt")["config"]["policy"]["type"] == expected_policy
    )


def test_resume_reproduces_uninterrupted_run(tmp_path, monkeypatch):
    overrides = ("total_frames=256", "checkpoint_every=2", "eval_every=0")
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
        train.train(config(*overrides), tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["iteration"] == 2
    monkeypatch.setattr(train, "collect", collect)
    train.train(config(*overrides, "resume=true"), tmp_path / "resumed")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["history"]
    assert len(resumed) == len(full) == 4
    for before, after in zip(full, resumed, strict=True):
        for key in ("loss_objective", "loss_critic", "loss_trust_region", "train_return"):
            assert before[key] == after[key] or (
                before[key] != before[key] and after[key] != after[key]
            ), key


def test_resume_refuses_another_configuration(tmp_path):
    overrides = ("total_frames=128", "checkpoint_every=1", "eval_every=0")
    train.train(config(*overrides), tmp_path)
    with pytest.raises(ValueError, match=r"policy\.activation: 'silu' -> 'mish'"):
        train.train(config(*overrides, "resume=true", "policy.activation=mish"), tmp_path)
    # Fields that do not touch the training may change.
    train.train(config(*overrides, "resume=true", "logger=csv", "progress_bar=true"), tmp_path)


def test_nan_stops_run_and_keeps_checkpoint(tmp_path, monkeypatch):
    from trudi.learners import TruDiLoss

    forward = TruDiLoss.forward
    calls = {"n": 0}

    def poisoned(self, tensordict):
        out = forward(self, tensordict)
        calls["n"] += 1
        if calls["n"] > 2 * 2 * 2:  # after two iterations (2 epochs x 2 minibatches each)
            out["loss_objective"] = out["loss_objective"] * float("nan")
        return out

    monkeypatch.setattr(TruDiLoss, "forward", poisoned)
    with pytest.raises(train.NonFiniteLossError, match=r"loss_objective.*iteration 2"):
        train.train(config("total_frames=256", "checkpoint_every=2", "eval_every=0"), tmp_path)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["iteration"] == 2
    assert all(
        torch.isfinite(v).all() for v in checkpoint["loss"].values() if v.is_floating_point()
    )


@pytest.mark.parametrize("activation", ["silu", "mish"])
def test_policy_activation_is_configurable(activation):
    from build import build_policy
    from envs import make_env

    env = make_env("Pendulum-v1", 2, seed=0)
    policy = build_policy(config(f"policy.activation={activation}"), env)
    env.close()
    expected = {"silu": torch.nn.SiLU, "mish": torch.nn.Mish}[activation]
    assert isinstance(policy.denoiser.activation, expected)


def test_unknown_policy_activation_is_named():
    from build import build_policy
    from envs import make_env

    env = make_env("Pendulum-v1", 2, seed=0)
    with pytest.raises(ValueError, match=r"policy\.activation must be one of .*'swish'"):
        build_policy(config("policy.activation=swish"), env)
    env.close()


@pytest.mark.parametrize(
    ("algo", "prediction", "floor"), [("trudi", "sample", 0.3), ("dppo", "epsilon", 0.05)]
)
def test_diffusion_arms_keep_their_own_sampler_settings(algo, prediction, floor):
    """TruDi's tuned x0 prediction is the sampler default; DPPO keeps its benchmarked noise
    prediction and floor (algo/dppo.yaml overrides the sampler group, which composes before it)."""
    from build import build_policy
    from envs import make_env

    env = make_env("Pendulum-v1", 2, seed=0)
    policy = build_policy(config(f"algo={algo}"), env)
    env.close()
    assert policy.sampler.prediction == prediction
    assert policy.sampler.min_std == pytest.approx(floor)

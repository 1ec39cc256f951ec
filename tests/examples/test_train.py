"""The training example: a smoke run per arm, one host sync per iteration, and a NaN stop that
keeps the last good checkpoint."""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from examples import train
from examples.build import build_policy
from examples.checkpoint import load_checkpoint
from examples.envs import make_env
from tests.examples.helpers import FRAMES_PER_ITERATION, config, logged_steps


@pytest.mark.parametrize("algo", ["trudi", "dppo", "ppo", "trpl"])
def test_smoke_run_each_arm(algo, tmp_path):
    cfg = config(f"algo={algo}", "total_frames=128")
    metrics = train.train(cfg, tmp_path)
    assert metrics["frames"] == 128
    assert all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith("loss_"))
    assert "eval_return_deterministic" in metrics and "eval_return_stochastic" in metrics
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "learning_curve.png").exists()
    assert logged_steps(tmp_path) == [64, 128]
    expected_policy = "gaussian" if algo in ("ppo", "trpl") else "diffusion"
    assert (
        load_checkpoint(tmp_path / "checkpoint.pt")["config"]["policy"]["type"] == expected_policy
    )


def test_budget_rounds_down_to_whole_iterations_and_says_so(tmp_path, capsys):
    metrics = train.train(config("total_frames=200", "eval_every=0"), tmp_path)
    assert metrics["frames"] == 3 * FRAMES_PER_ITERATION
    assert (
        "3 iterations x 64 env steps = 192, total_frames=200 rounded down"
        in capsys.readouterr().out
    )


def test_update_syncs_the_host_once_per_iteration(tmp_path, monkeypatch):
    """The example's code syncs the host once per iteration (one ``tolist``), never per minibatch:
    no ``item``, ``tolist`` or ``bool`` of a tensor inside its update."""
    syncs = {"update": 0, "train": 0}
    originals = {name: getattr(torch.Tensor, name) for name in ("item", "tolist", "__bool__")}

    def counting(name):
        def method(self):
            caller = sys._getframe(1).f_code
            if caller.co_filename == train.__file__:
                syncs["update" if caller.co_name == "update" else "train"] += 1
            return originals[name](self)

        return method

    for name in originals:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    metrics = train.train(config("total_frames=128", "eval_every=0"), tmp_path)
    assert syncs == {"update": 0, "train": 2}
    assert "loss_objective" in metrics and "kl_trajectory_after" in metrics


def test_no_return_until_an_episode_finishes(tmp_path):
    """Before the first finished episode there is no training return (not a NaN)."""
    cfg = config("total_frames=128", "eval_every=0", "env.max_episode_steps=200")
    metrics = train.train(cfg, tmp_path)
    assert "train_return" not in metrics
    assert train._postfix(metrics).keys() == {"sps", "kl", "proj"}


@pytest.mark.parametrize("algo", ["trudi", "ppo"])
def test_nan_stops_run_and_keeps_checkpoint(algo, tmp_path, monkeypatch):
    """Also where the non-finite parameters make a later minibatch raise (PPO's distribution)."""
    from torchrl.objectives import ClipPPOLoss

    from trudi.learners import TruDiLoss

    loss_class = {"trudi": TruDiLoss, "ppo": ClipPPOLoss}[algo]
    forward = loss_class.forward
    calls = {"n": 0}

    def poisoned(self, tensordict):
        out = forward(self, tensordict)
        calls["n"] += 1
        if calls["n"] > 2 * 2 * 2:  # after two iterations (2 epochs x 2 minibatches each)
            out["loss_objective"] = out["loss_objective"] * float("nan")
        return out

    monkeypatch.setattr(loss_class, "forward", poisoned)
    cfg = config(f"algo={algo}", "total_frames=256", "checkpoint_every=2", "eval_every=0")
    with pytest.raises(
        train.NonFiniteLossError, match=r"non-finite \['loss_objective'.* in iteration 3"
    ):
        train.train(cfg, tmp_path)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["iteration"] == 2
    assert all(
        torch.isfinite(v).all() for v in checkpoint["loss"].values() if v.is_floating_point()
    )


@pytest.mark.parametrize("activation", ["silu", "mish"])
def test_policy_activation_is_configurable(activation):
    env = make_env("Pendulum-v1", 2, seed=0)
    policy = build_policy(config(f"policy.activation={activation}"), env)
    env.close()
    expected = {"silu": torch.nn.SiLU, "mish": torch.nn.Mish}[activation]
    assert isinstance(policy.denoiser.activation, expected)


@pytest.mark.parametrize(
    ("algo", "prediction", "floor"), [("trudi", "sample", 0.3), ("dppo", "epsilon", 0.1)]
)
def test_diffusion_arms_keep_their_own_sampler_settings(algo, prediction, floor):
    """TruDi's tuned x0 prediction is the sampler default; DPPO keeps its published noise
    prediction and floor (algo/dppo.yaml overrides the sampler group, which composes before it)."""
    env = make_env("Pendulum-v1", 2, seed=0)
    policy = build_policy(config(f"algo={algo}"), env)
    env.close()
    assert policy.sampler.prediction == prediction
    assert policy.sampler.min_std == pytest.approx(floor)

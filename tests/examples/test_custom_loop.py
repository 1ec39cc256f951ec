"""examples/custom_loop.py runs a few iterations; the batched pendulum behind it is Pendulum-v1."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from examples import custom_loop
from examples.batched_pendulum import BatchedPendulum


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _actions(steps: int, num_envs: int, seed: int = 7) -> torch.Tensor:
    return 3.0 * torch.rand(steps, num_envs, 1, generator=_generator(seed)) - 1.5


def test_pendulum_shapes_and_bounds():
    env = BatchedPendulum(num_envs=5)
    observation = env.reset(_generator(0))
    assert observation.shape == (5, 3)
    assert (observation[:, 2].abs() <= 1).all()  # θ̇ ~ U(-1, 1) at reset
    out = env.step(torch.full((5, 1), 10.0))  # clipped to the max torque
    assert out.observation.shape == out.final_observation.shape == (5, 3)
    assert out.reward.shape == out.terminated.shape == out.truncated.shape == (5,)
    assert out.terminated.dtype == out.truncated.dtype == torch.bool
    assert not out.terminated.any() and not out.truncated.any()
    assert (out.reward <= 0).all() and (out.reward >= -(math.pi**2 + 0.1 * 64 + 0.001 * 4)).all()
    torch.testing.assert_close(out.observation, out.final_observation)


def test_pendulum_truncation_returns_final_observation_and_resets():
    env = BatchedPendulum(num_envs=6)
    env.reset(_generator(0))
    actions = _actions(200, 6)
    for t in range(199):
        out = env.step(actions[t])
        assert not out.truncated.any(), t
    # Oracle: the same state stepped by an env without a time limit.
    unlimited = copy.deepcopy(env)
    unlimited.max_episode_steps = 10**6
    expected = unlimited.step(actions[199])
    out = env.step(actions[199])
    assert out.truncated.all() and not out.terminated.any()
    torch.testing.assert_close(out.final_observation, expected.observation)
    torch.testing.assert_close(out.reward, expected.reward)
    # The returned observation is a fresh episode's: θ̇ in [-1, 1] and a new 200-step clock.
    assert (out.observation[:, 2].abs() <= 1).all()
    assert not torch.allclose(out.observation, out.final_observation)
    assert (env.elapsed == 0).all()


def test_pendulum_auto_reset_is_per_env():
    env = BatchedPendulum(num_envs=4, max_episode_steps=3)
    env.reset(_generator(0))
    env.step(torch.zeros(4, 1))
    env.elapsed[:2] = 0  # envs 0, 1 are one step behind
    env.step(torch.zeros(4, 1))
    out = env.step(torch.zeros(4, 1))
    assert out.truncated.tolist() == [False, False, True, True]
    torch.testing.assert_close(out.observation[:2], out.final_observation[:2])


def test_pendulum_seeding_is_deterministic():
    def rollout(seed: int) -> torch.Tensor:
        env = BatchedPendulum(num_envs=4, max_episode_steps=20)
        observations = [env.reset(_generator(seed))]
        for action in _actions(50, 4):  # through two auto-resets
            observations.append(env.step(action).observation)
        return torch.stack(observations)

    torch.testing.assert_close(rollout(3), rollout(3), rtol=0, atol=0)
    assert not torch.allclose(rollout(3), rollout(4))


def test_pendulum_matches_gymnasium():
    gym = pytest.importorskip("gymnasium")
    reference = gym.make("Pendulum-v1").unwrapped
    reference.reset(seed=0)
    env = BatchedPendulum(num_envs=1)
    env.reset(_generator(0))
    env.theta = torch.tensor([float(reference.state[0])])
    env.theta_dot = torch.tensor([float(reference.state[1])])
    for action in _actions(50, 1):
        observation, reward, *_ = reference.step(action[0].numpy())
        out = env.step(action)
        torch.testing.assert_close(
            out.observation[0], torch.as_tensor(observation), atol=1e-4, rtol=0
        )
        assert out.reward.item() == pytest.approx(reward, abs=1e-4)


TINY = ["--num-iterations", "2", "--num-envs", "8", "--rollout-steps", "12"]
TINY += ["--max-episode-steps", "5", "--diffusion-steps", "3", "--hidden-dim", "16"]
TINY += ["--num-blocks", "1", "--critic-hidden-dim", "16", "--update-epochs", "2"]
TINY += ["--num-minibatches", "2", "--eval-episodes", "1"]


def test_custom_loop_runs_a_few_iterations(capsys):
    torch.set_num_threads(2)
    metrics = custom_loop.main([*TINY, "--threads", "1"])
    assert torch.get_num_threads() == 1
    assert capsys.readouterr().out.count("iter ") == 2
    expected = {"episode_return", "mean_reward", "eval_return", "policy_change"}
    expected |= {"kl_trajectory_after", "frac_projected", "explained_variance"}
    assert expected <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values()), metrics
    assert metrics["policy_change"] > 0
    assert 0 <= metrics["frac_projected"] <= 1


def test_args_cover_every_field():
    args = custom_loop.parse_args(["--lr", "0.001", "--device", "cpu"])
    assert args.lr == 0.001 and args.num_envs == custom_loop.Args().num_envs
    assert all(f.metadata["help"] for f in custom_loop.dataclasses.fields(custom_loop.Args))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_custom_loop_runs_on_cuda():
    metrics = custom_loop.main([*TINY, "--device", "cuda"])
    assert all(math.isfinite(value) for value in metrics.values()), metrics

"""What a checkpoint restores of the envs: all of it for Gymnasium, everything but physics for EnvPool."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")

from examples.envs import env_state, load_env_state, make_env


def _replay(env, td, actions):
    rewards, observations = [], []
    for action in actions:
        step, td = env.step_and_maybe_reset(td.set("action", action))
        rewards.append(step["next", "reward"])
        observations.append(step["next", "observation"])
    return torch.stack(rewards), torch.stack(observations)


def _run_then_save(backend, name, steps=12):
    torch.manual_seed(0)
    env = make_env(name, 2, seed=0, backend=backend, max_episode_steps=20)
    td = env.reset()
    for _ in range(steps):
        _, td = env.step_and_maybe_reset(env.rand_action(td))
    state = env_state(env)
    return env, td, copy.deepcopy(state), copy.deepcopy(env.transform.state_dict())


@pytest.mark.parametrize("name", ["Humanoid-v5", "Hopper-v5", "Pendulum-v1"])
def test_gymnasium_restore_continues_exactly(name):
    """Humanoid's reward reads kinematics that mj_step leaves one integration behind; restoring
    qpos/qvel (and a mj_forward) alone changes the first reward after a resume by ~1e-5. The 20-step
    time limit falls inside the replay: the restored step counter must truncate at the same step."""
    original, td, state, transform = _run_then_save("gymnasium", name)
    carry = td.clone()
    actions = [original.action_spec.rand() for _ in range(25)]
    expected = _replay(original, td, actions)
    restored = make_env(name, 2, seed=123, backend="gymnasium", max_episode_steps=20)
    restored.reset()
    restored.transform.load_state_dict(transform)
    actual = _replay(restored, load_env_state(restored, state, carry), actions)
    assert torch.equal(actual[0], expected[0]), "rewards differ after the restore"
    assert torch.equal(actual[1], expected[1]), "observations differ after the restore"


def test_envpool_restore_keeps_the_normaliser_and_restarts_episodes_deterministically():
    pytest.importorskip("envpool")
    original, td, state, transform = _run_then_save("envpool", "Hopper-v5")
    actions = [original.action_spec.rand() for _ in range(10)]

    def resume():
        env = make_env("Hopper-v5", 2, seed=0, backend="envpool", max_episode_steps=20)
        env.transform.load_state_dict(copy.deepcopy(transform))
        start = load_env_state(env, state, td.clone())
        return env, start

    first, start = resume()
    second, again = resume()
    assert (start["episode_reward"] == 0).all(), "every env starts a new episode"
    assert not start["done"].any()

    def count(env):
        return env.transform.state_dict()["transforms.2._extra_state"]["count.-|-.observation"]

    fresh = make_env("Hopper-v5", 2, seed=0, backend="envpool")
    fresh.reset()
    saved = transform["transforms.2._extra_state"]["count.-|-.observation"]
    assert saved > 0 and count(first) == saved + count(fresh), (
        "statistics restored, then the reset counted"
    )
    replay_first, replay_second = _replay(first, start, actions), _replay(second, again, actions)
    assert torch.equal(replay_first[1], replay_second[1]), "two resumes of one checkpoint differ"


def test_state_of_one_backend_is_refused_by_another():
    pytest.importorskip("envpool")
    _, td, state, _ = _run_then_save("gymnasium", "Hopper-v5", steps=1)
    pool_env = make_env("Hopper-v5", 2, seed=0, backend="envpool")
    with pytest.raises(ValueError, match="gymnasium env state cannot be loaded into EnvPoolEnv"):
        load_env_state(pool_env, state, td)

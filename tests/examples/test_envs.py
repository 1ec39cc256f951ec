"""The example's env factory: keys, specs, seeding, truncation and errors, on every CPU backend."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs
from torchrl.objectives.value.functional import generalized_advantage_estimate

pytest.importorskip("gymnasium")
envpool = pytest.importorskip("envpool")

from examples.envs import EnvPoolEnv, make_env, normalizer  # noqa: E402

# One task per family: Gymnasium MuJoCo, DeepMind Control, MuJoCo Playground.
FAMILIES = {
    "gymnasium": ("Hopper-v5", 11, False),
    "dmc": ("HumanoidWalk-v1", 95, False),
    "playground": ("G1JoystickFlatTerrain-v1", 103, True),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_envpool_families_pass_check_env_specs(family):
    task, obs_dim, privileged = FAMILIES[family]
    env = make_env(task, 3, seed=0, backend="envpool")
    check_env_specs(env)
    td = env.rollout(4)
    assert td["next", "observation"].shape == (3, 4, obs_dim)
    assert td["next", "observation"].dtype == torch.float32
    assert ("privileged_state" in td.keys()) is privileged
    for key in ("reward", "done", "terminated", "truncated", "episode_reward"):
        assert td["next", key].shape == (3, 4, 1), key
    keys = normalizer(env).in_keys
    assert keys[: 1 + privileged] == ["observation", "privileged_state"][: 1 + privileged]
    env.close()


def test_gymnasium_backend_passes_check_env_specs():
    env = make_env("Hopper-v5", 2, seed=0, backend="gymnasium")
    check_env_specs(env)
    env.close()


def test_adapter_matches_raw_envpool_through_partial_resets():
    """Same seed and actions: the adapter's rows are raw EnvPool's rows, resets included (Hopper
    falls at different steps in different envs, so the resets are partial)."""
    n, limit = 6, 15
    env = EnvPoolEnv("Hopper-v5", n, seed=3, max_episode_steps=limit)
    pool = envpool.make_gymnasium("Hopper-v5", num_envs=n, seed=3, max_episode_steps=limit)
    raw_obs, _ = pool.reset()
    td = env.reset()
    generator = torch.Generator().manual_seed(0)
    resets = 0
    for _ in range(60):
        action = torch.rand(n, 3, generator=generator) * 2 - 1
        torch.testing.assert_close(td["observation"], torch.from_numpy(raw_obs).float())
        step, td = env.step_and_maybe_reset(td.set("action", action))
        raw_obs, reward, terminated, truncated, _ = pool.step(action.numpy())
        torch.testing.assert_close(step["next", "observation"], torch.from_numpy(raw_obs).float())
        torch.testing.assert_close(step["next", "reward"].squeeze(-1), torch.from_numpy(reward))
        assert torch.equal(step["next", "terminated"].squeeze(-1), torch.from_numpy(terminated))
        assert torch.equal(step["next", "truncated"].squeeze(-1), torch.from_numpy(truncated))
        finished = np.flatnonzero(terminated | truncated)
        if len(finished):
            resets += 1
            raw_obs[finished] = pool.reset(finished.astype(np.int32))[0]
    assert resets > 3
    env.close()


@pytest.mark.parametrize("backend", ["envpool", "gymnasium"])
def test_truncation_bootstraps_from_the_true_final_observation(backend):
    """A 3-step time limit; with a hand-made linear V(s), GAE at the truncated step must use
    r + gamma * V(s_3) with s_3 the last observation of the episode, not the reset one."""
    env = make_env("HalfCheetah-v5", 2, seed=0, backend=backend, max_episode_steps=3)
    torch.manual_seed(0)
    rollout = env.rollout(4, break_when_any_done=False)
    truncated = rollout["next", "truncated"].squeeze(-1)
    assert truncated[:, 2].all() and not truncated[:, :2].any()
    assert not rollout["next", "terminated"].any()
    final = rollout["next", "observation"][:, 2]
    after_reset = rollout["observation"][:, 3]
    assert not torch.allclose(final, after_reset), "the test needs a reset obs that differs"
    weights = torch.linspace(-1.0, 1.0, final.shape[-1])

    def value(obs):
        return (obs @ weights).unsqueeze(-1)

    gamma = 0.9
    advantage, _ = generalized_advantage_estimate(
        gamma,
        1.0,
        value(rollout["observation"]),
        value(rollout["next", "observation"]),
        rollout["next", "reward"],
        rollout["next", "done"],
        rollout["next", "terminated"],
    )
    reward = rollout["next", "reward"][:, 2]
    expected = reward + gamma * value(final) - value(rollout["observation"][:, 2])
    torch.testing.assert_close(advantage[:, 2], expected)
    wrong = reward + gamma * value(after_reset) - value(rollout["observation"][:, 2])
    assert not torch.allclose(advantage[:, 2], wrong)
    env.close()


@pytest.mark.parametrize("task", [task for task, _, _ in FAMILIES.values()])
def test_same_seed_gives_the_same_first_100_steps(task):
    def first_steps(seed):
        env = make_env(task, 2, seed=seed, backend="envpool", normalize_observations=False)
        generator = torch.Generator().manual_seed(1)
        td, rewards, observations = env.reset(), [], []
        for _ in range(100):
            action = torch.rand(env.action_spec.shape, generator=generator) * 2 - 1
            step, td = env.step_and_maybe_reset(td.set("action", action))
            rewards.append(step["next", "reward"])
            observations.append(step["next", "observation"])
        env.close()
        return torch.stack(rewards), torch.stack(observations)

    first, again, other = first_steps(7), first_steps(7), first_steps(8)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])


def test_set_seed_rebuilds_the_pool_with_the_new_seed():
    env = EnvPoolEnv("Hopper-v5", 2, seed=0)
    env.set_seed(5)
    reseeded = env.reset()["observation"]
    fresh = EnvPoolEnv("Hopper-v5", 2, seed=5).reset()["observation"]
    assert env.pool_seed == 5 and torch.equal(reseeded, fresh)


def test_vecnorm_pools_statistics_over_the_env_batch():
    """The normaliser's mean is the mean over envs and steps of the raw observations it saw (the
    reset and every next observation; HalfCheetah never terminates, so no other resets)."""

    def rollout(normalize):
        env = make_env(
            "HalfCheetah-v5", 8, seed=0, backend="envpool", normalize_observations=normalize
        )
        torch.manual_seed(0)
        return env, env.rollout(30, break_when_any_done=False)

    env, _ = rollout(True)
    _, raw = rollout(False)
    seen = torch.cat([raw["observation"][:, :1], raw["next", "observation"]], dim=1)
    loc = normalizer(env).to_observation_norm().loc
    torch.testing.assert_close(loc, seen.mean(dim=(0, 1)), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("backend", "task", "match"),
    [
        (
            "envpool",
            "HumanoidWalks-v1",
            r"env.backend=envpool has no task 'HumanoidWalks-v1'.*HumanoidWalk-v1",
        ),
        (
            "gymnasium",
            "HumanoidWalk-v1",
            r"env.backend=gymnasium has no task 'HumanoidWalk-v1'.*env.backend=envpool",
        ),
        ("vmas", "HalfCheetah-v5", r"env.backend must be one of .*got 'vmas'"),
    ],
)
def test_bad_task_or_backend_is_named(backend, task, match):
    with pytest.raises(ValueError, match=match):
        make_env(task, 2, seed=0, backend=backend)


def test_missing_envpool_names_backend_task_and_extra(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "envpool" else find_spec(name, *a),
    )
    with pytest.raises(
        RuntimeError,
        match=r"env.backend=envpool cannot build task 'HalfCheetah-v5'.*trudi\[examples\]",
    ):
        make_env("HalfCheetah-v5", 2, seed=0, backend="envpool")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure where CUDA is absent")
@pytest.mark.parametrize(
    ("backend", "task"),
    [("mjlab", "Mjlab-Velocity-Flat-Unitree-G1"), ("playground", "G1JoystickFlatTerrain")],
)
def test_gpu_backends_fail_cleanly_without_cuda(backend, task):
    name = "G1JoystickFlatTerrain-v1"
    with pytest.raises(
        RuntimeError,
        match=rf"env.backend={backend} cannot build task '{task}'.*CUDA is not available.*Install: pip install",
    ):
        make_env(name, 2, seed=0, backend=backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU simulators need CUDA")
@pytest.mark.parametrize(
    ("backend", "module", "task"),
    [
        ("mjlab", "mjlab", "G1JoystickFlatTerrain-v1"),
        ("playground", "mujoco_playground", "HumanoidWalk-v1"),
    ],
)
def test_gpu_backends_pass_check_env_specs(backend, module, task):
    pytest.importorskip(module)
    env = make_env(task, 4, seed=0, backend=backend, max_episode_steps=1000)
    check_env_specs(env)
    td = env.rollout(3)
    assert td["next", "observation"].shape[:2] == (4, 3)
    assert isinstance(td, TensorDict)
    env.close()


@pytest.mark.parametrize("name", ["examples.envs.envpool_env", "examples.envs.factory"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

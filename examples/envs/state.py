"""What a checkpoint keeps of the envs, per backend, and how a resume continues from it.

- ``gymnasium``: exact. Each sub-env's physics (all of MuJoCo's ``mjData``, compressed, or the
  classic-control state) and random generator; the time-limit counter is ``step_count`` in the
  carried tensordict. A resumed run steps exactly like the uninterrupted one.
- ``envpool`` (and the GPU backends): EnvPool cannot export its physics state. A resume restores
  everything outside the simulator (networks, optimiser, learning-rate schedule, the observation
  normaliser's statistics, torch/python RNGs, history) and restarts every env on a fresh episode,
  with the pool re-seeded ``seed + num_envs`` (deterministic: two resumes of one checkpoint give the
  same run; the episodes in flight at the checkpoint are dropped).
"""

from __future__ import annotations

import copy
import pickle
import zlib
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from tensordict import TensorDictBase
from torchrl.envs import EnvBase, GymWrapper, TransformedEnv

from .envpool_env import EnvPoolEnv

__all__ = ["env_state", "load_env_state"]


def _base(env: EnvBase) -> EnvBase:
    return env.base_env if isinstance(env, TransformedEnv) else env


def _sub_envs(env: GymWrapper) -> list[gym.Env]:
    return list(
        env.envs
    )  # the wrapped SyncVectorEnv's public ``envs``, reached through the wrapper


def _gymnasium_state(sub_env: gym.Env) -> dict[str, Any]:
    raw = sub_env.unwrapped
    state: dict[str, Any] = {"rng": copy.deepcopy(raw.np_random.bit_generator.state)}
    if hasattr(raw, "data") and hasattr(raw, "model"):  # MuJoCo
        # All of mjData, not only qpos/qvel: after mj_step its kinematics (e.g. the xipos of
        # Humanoid's mass-centre reward) belong to the state before the last integration, which
        # a mj_forward on the restored state would not reproduce. ~40 kB per env compressed.
        state["physics"] = zlib.compress(pickle.dumps(raw.data), 1)
    else:
        state["attributes"] = {
            k: copy.deepcopy(v)
            for k, v in vars(raw).items()
            if isinstance(v, (np.ndarray, float, int, type(None))) and not k.startswith("_")
        }
    return state


def env_state(env: EnvBase) -> dict[str, Any]:
    """What the envs carry between steps that a checkpoint can keep (see the module docstring)."""
    base = _base(env)
    if isinstance(base, GymWrapper):
        return {"backend": "gymnasium", "sub_envs": [_gymnasium_state(e) for e in _sub_envs(base)]}
    if isinstance(base, EnvPoolEnv):
        return {"backend": "envpool", "seed": base.pool_seed}
    return {"backend": type(base).__name__}


def load_env_state(env: EnvBase, state: dict[str, Any], carry: TensorDictBase) -> TensorDictBase:
    """Restore :func:`env_state` into an env made with the same arguments; returns the tensordict
    to continue from: ``carry`` (the checkpoint's) where the state is exact, a fresh reset where
    the simulator's state could not be saved."""
    base = _base(env)
    if isinstance(base, GymWrapper) and state["backend"] == "gymnasium":
        sub_envs = _sub_envs(base)
        if len(sub_envs) != len(state["sub_envs"]):
            raise ValueError(
                f"the checkpoint has {len(state['sub_envs'])} sub-envs, the env {len(sub_envs)}"
            )
        for sub_env, saved in zip(sub_envs, state["sub_envs"], strict=True):
            raw = sub_env.unwrapped
            raw.np_random.bit_generator.state = saved["rng"]
            if "physics" in saved:
                data = pickle.loads(zlib.decompress(saved["physics"]))
                mujoco.mj_copyData(raw.data, raw.model, data)
            else:
                for key, value in saved["attributes"].items():
                    setattr(raw, key, copy.deepcopy(value))
        return carry
    if state["backend"] == "gymnasium":
        raise ValueError(f"a gymnasium env state cannot be loaded into {type(base).__name__}")
    if isinstance(base, EnvPoolEnv):
        env.set_seed(state["seed"] + base.batch_size[0])
    return env.reset()

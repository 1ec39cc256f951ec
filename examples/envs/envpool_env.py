"""A TorchRL ``EnvBase`` over one EnvPool pool: Gymnasium MuJoCo, DeepMind Control, MuJoCo Playground.

TorchRL 0.14's own ``MultiThreadedEnv`` fails on EnvPool 1.2 (its spec conversion still expects the
old ``gym`` API and ``treevalue``), so this adapter talks to EnvPool's Gymnasium API directly. The pool
runs in synchronous mode (its batch is all ``num_envs``); sub-env ``i`` is seeded ``seed + i``.

Keys, whatever the task family (``[N]`` = ``num_envs``):

- ``observation`` ``[N, D]`` float32: the observation vector; a DeepMind Control dict observation is
  concatenated in the task's own key order, a Playground task's ``state`` is used.
- ``privileged_state`` ``[N, P]`` float32: Playground's critic-only state, absent elsewhere.
- ``reward`` ``[N, 1]``, ``done`` / ``terminated`` / ``truncated`` ``[N, 1]``.

Resets: EnvPool would reset a finished env on its next ``step`` (ignoring that step's action, with a
zero reward); TorchRL resets finished envs first through the ``"_reset"`` mask, which this adapter
forwards to ``pool.reset(env_ids)``, so EnvPool's own autoreset never fires. A truncated step's
``("next", "observation")`` is therefore the true last observation, the one GAE bootstraps from.

Throughput: the step is two zero-copy ``torch.from_numpy`` views, one float64 -> float32 cast of the
observation and one ``TensorDict`` per step; no spec checks (``EnvBase.run_type_checks`` stays off).
Outputs are fresh tensors each step, not one reused buffer, because a rollout keeps references to
earlier steps (``env.rollout``, a hand-written loop); the collector copies into its own buffer.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from gymnasium import spaces
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

__all__ = ["EnvPoolEnv"]

# Playground tasks: the policy's observation and the critic's privileged state.
_PLAYGROUND_KEYS = {"state": "observation", "privileged_state": "privileged_state"}


class EnvPoolEnv(EnvBase):
    """``num_envs`` copies of the EnvPool task ``task`` as one batched TorchRL env.

    Args:
        task: an EnvPool task id (``envpool.list_all_envs()``), e.g. ``"HalfCheetah-v5"``,
            ``"HumanoidWalk-v1"``, ``"G1JoystickFlatTerrain-v1"``.
        num_envs: the batch size ``N``.
        seed: sub-env ``i`` is seeded ``seed + i``; :meth:`set_seed` rebuilds the pool.
        max_episode_steps: time limit (truncation); ``None`` keeps the task's default.
        num_threads: EnvPool's worker threads; 0 lets EnvPool choose (one per core, at most ``N``).

    Examples:
        >>> env = EnvPoolEnv("Hopper-v5", 4, seed=0)
        >>> env.rollout(3)["next", "observation"].shape
        torch.Size([4, 3, 11])
    """

    def __init__(
        self,
        task: str,
        num_envs: int,
        *,
        seed: int = 0,
        max_episode_steps: int | None = None,
        num_threads: int = 0,
    ) -> None:
        import envpool

        options = {"num_envs": num_envs, "batch_size": num_envs, "num_threads": num_threads}
        if max_episode_steps is not None:
            options["max_episode_steps"] = max_episode_steps
        self._make_pool = functools.partial(envpool.make_gymnasium, task, **options)
        self._pool = self._make_pool(seed=seed)
        self._pool_seed = seed
        self.task = task
        super().__init__(batch_size=torch.Size([num_envs]), device="cpu")
        self._make_specs(self._pool.observation_space, self._pool.action_space)

    def _make_specs(self, observation_space: spaces.Space, action_space: spaces.Box) -> None:
        n = self.batch_size
        if isinstance(observation_space, spaces.Dict) and "state" in observation_space.spaces:
            self._layout = {
                ours: [theirs]
                for theirs, ours in _PLAYGROUND_KEYS.items()
                if theirs in observation_space.spaces
            }
        elif isinstance(observation_space, spaces.Dict):
            self._layout = {"observation": list(observation_space.spaces)}
        else:
            self._layout = {"observation": None}
        sizes = {
            key: int(
                np.prod(observation_space.shape)
                if parts is None
                else sum(int(np.prod(observation_space[p].shape)) for p in parts)
            )
            for key, parts in self._layout.items()
        }
        self.observation_spec = Composite(
            {key: Unbounded((*n, size), dtype=torch.float32) for key, size in sizes.items()},
            shape=n,
        )
        self.action_spec = Bounded(
            low=torch.as_tensor(action_space.low, dtype=torch.float32).expand(
                *n, *action_space.shape
            ),
            high=torch.as_tensor(action_space.high, dtype=torch.float32).expand(
                *n, *action_space.shape
            ),
            shape=(*n, *action_space.shape),
            dtype=torch.float32,
        )
        self.reward_spec = Unbounded((*n, 1), dtype=torch.float32)
        self.done_spec = Composite(
            {
                key: Categorical(2, (*n, 1), dtype=torch.bool)
                for key in ("done", "terminated", "truncated")
            },
            shape=n,
        )

    def _observations(self, obs: np.ndarray | dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = {}
        for key, parts in self._layout.items():
            if parts is None:
                value = obs
            elif len(parts) == 1:
                value = obs[parts[0]]
            else:
                value = np.concatenate(
                    [obs[p].reshape(len(obs[p]), -1) for p in parts], axis=1, dtype=np.float32
                )
            out[key] = torch.from_numpy(value).to(torch.float32)
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action").detach().numpy()
        obs, reward, terminated, truncated, _ = self._pool.step(action)
        terminated = torch.from_numpy(terminated).unsqueeze(-1)
        truncated = torch.from_numpy(truncated).unsqueeze(-1)
        return TensorDict(
            {
                **self._observations(obs),
                "reward": torch.from_numpy(reward).to(torch.float32).unsqueeze(-1),
                "done": terminated | truncated,
                "terminated": terminated,
                "truncated": truncated,
            },
            batch_size=self.batch_size,
        )

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        if mask is None or mask.all():
            obs, _ = self._pool.reset()
            return TensorDict(self._observations(obs), batch_size=self.batch_size)
        env_ids = mask.reshape(-1).nonzero().squeeze(-1)
        obs, _ = self._pool.reset(env_ids.numpy().astype(np.int32))
        # TorchRL keeps the rows that were not reset (its "_reset" mask); only their shape matters.
        out = self.observation_spec.zero()
        for key, value in self._observations(obs).items():
            out.get(key)[env_ids] = value
        return out

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None and seed != self._pool_seed:
            self._pool.close()
            self._pool = self._make_pool(seed=seed)
            self._pool_seed = seed

    @property
    def pool(self):
        """The EnvPool pool itself (Gymnasium API), e.g. to measure it without TorchRL."""
        return self._pool

    @property
    def pool_seed(self) -> int:
        """The seed of sub-env 0 (sub-env ``i`` has ``seed + i``)."""
        return self._pool_seed

    def close(self, *, raise_if_closed: bool = True) -> None:
        self._pool.close()
        super().close(raise_if_closed=raise_if_closed)

"""A pure-torch batched pendulum: Gymnasium's Pendulum-v1 swing-up, vectorized over N envs.

All N envs step together in a few tensor ops on any device (no Python loop over envs, no
host–device sync), which makes it a stand-in for a GPU simulator in ``custom_loop.py`` and a fast
env for tests. Dynamics, bounds, reward and initial-state distribution follow Pendulum-v1:

    obs    = [cos θ, sin θ, θ̇]                     [N, 3]
    action = u ∈ [-2, 2]  (clipped)                  [N, 1]
    reward = -(angle(θ)² + 0.1 θ̇² + 0.001 u²)        angle(θ) wrapped to [-π, π)
    θ̇'     = clip(θ̇ + (3g/2l sin θ + 3/(m l²) u) dt, -8, 8),   θ' = θ + θ̇' dt
    reset  : θ ~ U(-π, π), θ̇ ~ U(-1, 1)

Episodes never terminate and are truncated after ``max_episode_steps`` (200) steps. Finished envs
are reset inside :meth:`step`; the observation they reached before the reset is returned as
``final_observation``, so a time-limit truncation can be bootstrapped from V(final observation).

Example:
    >>> import torch
    >>> env = BatchedPendulum(num_envs=4)
    >>> obs = env.reset(torch.Generator().manual_seed(0))
    >>> out = env.step(torch.zeros(4, 1))
    >>> obs.shape, out.reward.shape, out.truncated.dtype
    (torch.Size([4, 3]), torch.Size([4]), torch.bool)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Step(NamedTuple):
    """What :meth:`BatchedPendulum.step` returns; ``N`` is the number of envs.

    Attributes:
        observation: ``[N, 3]``, the observation to act on next (already reset where done).
        reward: ``[N]``.
        terminated: ``[N]`` bool, always False (the pendulum has no terminal state).
        truncated: ``[N]`` bool, the episode hit the time limit at this step.
        final_observation: ``[N, 3]``, the observation reached by this step, before any reset:
            the ``("next", "observation")`` to bootstrap from.
    """

    observation: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_observation: torch.Tensor


class BatchedPendulum:
    """``num_envs`` Pendulum-v1 envs stepped as one batch on ``device``.

    Args:
        num_envs: N.
        device: where the state lives; actions must be on the same device.
        max_episode_steps: time limit of an episode (Pendulum-v1: 200).
    """

    observation_dim = 3
    action_dim = 1
    max_torque = 2.0
    max_speed = 8.0
    dt = 0.05
    gravity = 10.0
    mass = 1.0
    length = 1.0

    def __init__(
        self, num_envs: int, device: str | torch.device = "cpu", max_episode_steps: int = 200
    ) -> None:
        if num_envs < 1 or max_episode_steps < 1:
            raise ValueError(
                f"num_envs and max_episode_steps must be >= 1, got {num_envs}, {max_episode_steps}"
            )
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.max_episode_steps = max_episode_steps
        self.generator: torch.Generator | None = None
        self.theta = torch.zeros(num_envs, device=self.device)
        self.theta_dot = torch.zeros(num_envs, device=self.device)
        self.elapsed = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def _initial_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh (θ, θ̇) for all N envs; callers keep the rows they need."""
        u = torch.rand(2, self.num_envs, device=self.device, generator=self.generator)
        return (2.0 * u[0] - 1.0) * math.pi, 2.0 * u[1] - 1.0

    def _observation(self) -> torch.Tensor:
        return torch.stack([self.theta.cos(), self.theta.sin(), self.theta_dot], dim=-1)

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reset every env and return the observation ``[N, 3]``.

        ``generator`` (on ``device``) seeds this and every later auto-reset; ``None`` uses torch's
        global generator.
        """
        self.generator = generator
        self.theta, self.theta_dot = self._initial_state()
        self.elapsed.zero_()
        return self._observation()

    def step(self, action: torch.Tensor) -> Step:
        """Advance all envs by one step with torques ``action`` ``[N, 1]`` (or ``[N]``)."""
        u = action.reshape(self.num_envs).clamp(-self.max_torque, self.max_torque)
        angle = torch.remainder(self.theta + math.pi, 2.0 * math.pi) - math.pi
        reward = -(angle.square() + 0.1 * self.theta_dot.square() + 0.001 * u.square())

        acceleration = 3.0 * self.gravity / (2.0 * self.length) * self.theta.sin()
        acceleration = acceleration + 3.0 / (self.mass * self.length**2) * u
        self.theta_dot = (self.theta_dot + acceleration * self.dt).clamp(
            -self.max_speed, self.max_speed
        )
        self.theta = self.theta + self.theta_dot * self.dt
        self.elapsed += 1
        final_observation = self._observation()

        truncated = self.elapsed >= self.max_episode_steps
        terminated = torch.zeros_like(truncated)
        # Branch-free auto-reset: draw a fresh state for every env, keep it where the episode ended.
        theta, theta_dot = self._initial_state()
        self.theta = torch.where(truncated, theta, self.theta)
        self.theta_dot = torch.where(truncated, theta_dot, self.theta_dot)
        self.elapsed = torch.where(truncated, torch.zeros_like(self.elapsed), self.elapsed)
        return Step(self._observation(), reward, terminated, truncated, final_observation)

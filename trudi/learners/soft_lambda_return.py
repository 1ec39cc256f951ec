"""Soft λ-returns (REPPO's "GVE"): TD(λ) targets for Q(s, a) with an entropy bonus.

For a rollout ``[*B, T]`` (time the last batch dim) with next observations s'_t,

    a'_t ~ π(·|s'_t)  (a fresh reparameterised draw of the current policy, no gradient)
    V̂'_t = Q(s'_t, a'_t) − α log π̂(a'_t|s'_t)          (0 where terminated)
    G_t  = r_t + γ [ (1 − λ) V̂'_t + λ G_{t+1} ]          (G_{t+1} → V̂'_t where done or t = T − 1)

so a truncated episode (done, not terminated) and the rollout's end bootstrap with the soft next
value, and a termination does not. This is r_t − γ α log π̂ in the reward with Q as the next value,
as in REPPO, except that no entropy bonus is paid past a termination. The recursion is TorchRL's
:func:`~torchrl.objectives.value.functional.td_lambda_return_estimate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.objectives.value import ValueEstimatorBase
from torchrl.objectives.value.functional import td_lambda_return_estimate

from trudi.learners.q_critic import QCritic
from trudi.policies import ChainPolicy, pseudo_log_prob
from trudi.validation import read_key

__all__ = ["SoftLambdaReturn"]


class SoftLambdaReturn(ValueEstimatorBase):
    """Soft λ-return targets for a Q critic (see the module doc) as a TorchRL value estimator.

    ``forward(td)`` reads the observation, ``("next", observation)``, ``("next", reward)``,
    ``("next", done)`` and ``("next", terminated)`` (all ``[*B, T, ·]``, time the tensordict's last
    batch dim; entries may have more dims after it, as the agent dim of multi-agent data
    ``[*B, T, n_agents, ·]``, with ``done`` broadcast to it), and writes

    - ``value_target`` ``[*B, T, 1]``: G_t;
    - ``("next", value)`` ``[*B, T, 1]``: the soft next value V̂'_t;
    - ``next_embedding`` ``[*B, T, H]``: the critic's features of (s'_t, a'_t), the target of
      REPPO's auxiliary next-embedding loss.

    Everything is computed without gradient.

    Args:
        gamma: discount γ.
        lmbda: λ.
        actor_network: the chain policy (sampled with :meth:`~trudi.policies.ChainPolicy.rsample`).
        critic_network: the :class:`~trudi.learners.QCritic`.
        temperature: α, a float or a callable returning it (the loss's learned temperature).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from trudi.learners import HLGaussHead, QCritic, SoftLambdaReturn
        >>> from trudi.policies import GaussianPolicy
        >>> policy = GaussianPolicy(torch.nn.Linear(3, 2), action_dim=2, squash="tanh")
        >>> critic = QCritic(3, 2, HLGaussHead(-5.0, 5.0), hidden_dim=16)
        >>> estimator = SoftLambdaReturn(0.99, 0.95, policy, critic, temperature=0.01)
        >>> td = TensorDict({"observation": torch.randn(4, 6, 3), "next": {
        ...     "observation": torch.randn(4, 6, 3), "reward": torch.randn(4, 6, 1),
        ...     "done": torch.zeros(4, 6, 1, dtype=torch.bool),
        ...     "terminated": torch.zeros(4, 6, 1, dtype=torch.bool)}}, [4, 6])
        >>> estimator(td)["value_target"].shape
        torch.Size([4, 6, 1])
    """

    @dataclass
    class _AcceptedKeys(ValueEstimatorBase._AcceptedKeys):
        """TorchRL's estimator keys plus the observation and the next-embedding target.

        Attributes:
            observation: the policy's and critic's input (read at the root and under ``"next"``).
            next_embedding: where the next-embedding target is written.
        """

        observation: NestedKey = "observation"
        next_embedding: NestedKey = "next_embedding"
        # Restated: TorchRL's set_keys only accepts names defined in this class's own body.
        advantage: NestedKey = "advantage"
        value_target: NestedKey = "value_target"
        value: NestedKey = "state_value"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"

    default_keys = _AcceptedKeys

    def __init__(
        self,
        gamma: float,
        lmbda: float,
        actor_network: ChainPolicy,
        critic_network: QCritic,
        *,
        temperature: float | Callable[[], torch.Tensor] = 0.0,
        device: torch.device | None = None,
    ) -> None:
        if not 0 <= gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}.")
        if not 0 <= lmbda <= 1:
            raise ValueError(f"lmbda must be in [0, 1], got {lmbda!r}.")
        if not isinstance(actor_network, ChainPolicy):
            raise ValueError(
                f"actor_network must be a trudi ChainPolicy, got {type(actor_network).__name__}."
            )
        if not isinstance(critic_network, QCritic):
            raise ValueError(
                f"critic_network must be a trudi QCritic, got {type(critic_network).__name__}."
            )
        super().__init__(value_network=critic_network, device=device)
        self.gamma = float(gamma)
        self.lmbda = float(lmbda)
        # Plain attributes, not submodules: the loss owns (and saves) the networks.
        self.__dict__["actor_network"] = actor_network
        self.temperature = temperature

    @property
    def in_keys(self) -> list[NestedKey]:
        keys = self.tensor_keys
        return [
            keys.observation,
            ("next", keys.observation),
            ("next", keys.reward),
            ("next", keys.done),
            ("next", keys.terminated),
        ]

    @property
    def out_keys(self) -> list[NestedKey]:
        keys = self.tensor_keys
        return [keys.value_target, ("next", keys.value), keys.next_embedding]

    def _temperature(self) -> torch.Tensor | float:
        alpha = self.temperature() if callable(self.temperature) else self.temperature
        return alpha.detach() if isinstance(alpha, torch.Tensor) else alpha

    def _read(self, tensordict: TensorDictBase, key: NestedKey, name: str) -> torch.Tensor:
        return read_key(tensordict, key, name, reader="estimator")

    @torch.no_grad()
    def soft_value(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """V̂(s) = Q(s, a) − α log π̂(a|s) at a fresh a ~ π(s), and the critic's features of (s, a)."""
        policy = self.actor_network
        chain, loc, scale = policy.rsample(observation)
        action = policy.squash(chain[..., -1, :])
        log_prob = pseudo_log_prob(policy, chain, loc, scale).unsqueeze(-1)
        q = self.value_network(observation, action)
        return q.value - self._temperature() * log_prob, q.embedding

    @torch.no_grad()
    def forward(
        self,
        tensordict: TensorDictBase,
        *,
        params: TensorDictBase | None = None,
        target_params: TensorDictBase | None = None,
    ) -> TensorDictBase:
        keys = self.tensor_keys
        if tensordict.batch_dims < 1:
            raise ValueError("SoftLambdaReturn needs a tensordict with a time dim [*B, T].")
        next_observation = self._read(tensordict, ("next", keys.observation), "observation")
        reward = self._read(tensordict, ("next", keys.reward), "reward")
        done = self._read(tensordict, ("next", keys.done), "done")
        terminated = self._read(tensordict, ("next", keys.terminated), "terminated")
        next_value, next_embedding = self.soft_value(next_observation)
        target = td_lambda_return_estimate(
            self.gamma,
            self.lmbda,
            next_value.to(reward.dtype),
            reward,
            done.bool(),
            terminated.bool(),
            # The tensordict's last batch dim, counted from the front: entries may have dims of
            # their own after it (the agent dim of multi-agent data, [*B, T, n_agents, 1]).
            time_dim=tensordict.batch_dims - 1,
        )
        tensordict.set(keys.value_target, target)
        tensordict.set(("next", keys.value), next_value)
        tensordict.set(keys.next_embedding, next_embedding)
        return tensordict

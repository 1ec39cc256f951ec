"""The Gaussian policy head: a chain with K = 1, treated by losses like a diffusion chain."""

from __future__ import annotations

import math

import torch
from tensordict.nn import InteractionType
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import TensorSpec

from trudi.policies.chain_policy import ChainPolicy
from trudi.samplers import transition_log_prob

__all__ = ["GaussianPolicy"]


class GaussianPolicy(ChainPolicy):
    """Diagonal Gaussian policy x_0 ~ N(loc_net(s), diag(std²)), written as a one-step chain.

    ``chain`` is ``[*B, 2, A]``: ``chain[..., 0, :]`` is a placeholder x_1 = 0 (the transition's
    mean does not depend on it) and ``chain[..., 1, :]`` = x_0; ``loc``/``scale`` are
    ``[*B, 1, A]``. The std is state independent, ``exp(log_std)`` clamped to
    [``min_std``, ``max_std``], learned unless ``learn_scale=False``. Non-random interaction
    types return x_0 = loc.

    Args:
        loc_net: ``loc_net(observation [*B, O]) -> [*B, A]``.
        action_dim: A.
        action_spec: bounded action spec for squashing (``None``: bounds [-1, 1]).
        squash: ``"clip"``, ``"tanh"`` or ``"none"``.
        init_std: initial std (in [min_std, max_std]).
        learn_scale: learn ``log_std`` ``[A]``.
        min_std: lower clamp of the std (> 0).
        max_std: upper clamp of the std.
        trajectory, observation_key, action_key, default_interaction_type, validate_args: as in
            :class:`DiffusionPolicy`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from trudi.policies import GaussianPolicy
        >>> policy = GaussianPolicy(torch.nn.Linear(3, 2), action_dim=2)
        >>> td = policy(TensorDict({"observation": torch.randn(8, 3)}, batch_size=[8]))
        >>> chain = td["diffusion", "chain"]
        >>> chain.shape, policy.get_dist(td).log_prob(chain).shape
        (torch.Size([8, 2, 2]), torch.Size([8, 1]))
    """

    def __init__(
        self,
        loc_net: nn.Module,
        action_dim: int,
        *,
        action_spec: TensorSpec | None = None,
        squash: str = "clip",
        init_std: float = 1.0,
        learn_scale: bool = True,
        min_std: float = 1e-3,
        max_std: float = 10.0,
        trajectory: bool = False,
        observation_key: NestedKey = "observation",
        action_key: NestedKey = "action",
        default_interaction_type: InteractionType = InteractionType.DETERMINISTIC,
        validate_args: bool = True,
    ) -> None:
        super().__init__(
            num_steps=1,
            action_dim=action_dim,
            action_spec=action_spec,
            squash=squash,
            trajectory=trajectory,
            observation_key=observation_key,
            action_key=action_key,
            default_interaction_type=default_interaction_type,
            validate_args=validate_args,
            min_std=min_std,
            max_std=max_std,
        )
        if not min_std <= init_std <= max_std:
            raise ValueError(
                f"init_std must be in [min_std, max_std] = [{min_std}, {max_std}], "
                f"got {init_std!r}."
            )
        self.loc_net = loc_net
        log_std = torch.full((action_dim,), math.log(init_std))
        if learn_scale:
            self.log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("log_std", log_std)

    @property
    def state_independent_scale(self) -> bool:
        return True  # exp(log_std), clamped

    def _loc_scale(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.loc_net(observation).unsqueeze(-2)
        scale = self.log_std.exp().clamp(self.min_std, self.max_std).expand_as(loc)
        return loc, scale

    def _sample(
        self, observation: torch.Tensor, explore: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, scale = self._loc_scale(observation)
        x0 = loc + scale * torch.randn_like(loc) if explore else loc
        chain = torch.cat([torch.zeros_like(x0), x0], dim=-2)
        return chain, loc, scale, transition_log_prob(chain, loc, scale)

    def _transitions(
        self, observation: torch.Tensor, chain: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loc_scale(observation)

    def transition(
        self, observation: torch.Tensor, sample: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loc, scale = self._loc_scale(observation)
        return loc.squeeze(-2), scale.squeeze(-2)

    def _prior(self, noise: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(noise)

    def _prior_noise(self, prior: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(prior)

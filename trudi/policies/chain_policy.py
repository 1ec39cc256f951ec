"""The contract shared by every trudi policy head: sample a chain in ``forward``, re-score it in
``get_dist``, with the keys of :class:`~trudi.policies.ChainKeys`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import torch
from tensordict import TensorDictBase
from tensordict.nn import InteractionType, TensorDictModuleBase
from tensordict.nn.probabilistic import interaction_type
from tensordict.utils import NestedKey
from torchrl.data import TensorSpec

from trudi.policies.chain_keys import ChainKeys
from trudi.policies.chain_normal import ChainNormal
from trudi.policies.squash import ActionSquash
from trudi.samplers import Chain
from trudi.validation import check_int, check_std_range, read_key

__all__ = ["ChainPolicy"]

_RANDOM = (InteractionType.RANDOM,)

TransitionTransform = Callable[
    [int, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]
"""``transform(step, sample [*B, A], loc, scale) -> (loc, scale)``, applied before each draw."""


def _require(tensordict: TensorDictBase, key: NestedKey, field: str) -> torch.Tensor:
    return read_key(tensordict, key, field, reader="policy")


def _draw(
    policy: ChainPolicy, observation: torch.Tensor, explore: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # A function of the policy rather than a bound method, so that a compiled copy serves a deep
    # copy of the policy too (with that copy's parameters: compilation guards on the module).
    with torch.no_grad():
        return policy._sample(observation, explore)


class ChainPolicy(TensorDictModuleBase):
    """Base class of :class:`DiffusionPolicy` and :class:`GaussianPolicy` (a chain with K = 1).

    ``forward(td)`` reads the observation, samples a chain under ``torch.no_grad()`` (nothing
    stored at collection requires grad) and writes, for ``*B`` any batch shape:

    ============================= ================ ==============================================
    key (``tensor_keys`` field)   shape            meaning
    ============================= ================ ==============================================
    ``action``                    ``[*B, A]``      ``squash(x_0)``
    ``chain``                     ``[*B, K+1, A]`` x_K … x_0
    ``loc``, ``scale``            ``[*B, K, A]``   behaviour transition j: chain[j] → chain[j+1]
    ``chain_log_prob``            ``[*B, K]``      per-step log-probs, summed over A
    ``log_prob``                  ``[*B]``         their sum: the chain's log-likelihood
    ============================= ================ ==============================================

    ``get_dist(td)`` evaluates the current network's transitions on the recorded chain and returns
    a :class:`ChainNormal`; it reads the tensordict and never writes into it.

    Exploration: under ``InteractionType.RANDOM`` the policy samples with its training
    distribution; any other type (``DETERMINISTIC``, ``MODE``, …) uses the evaluation path.
    Outside a ``set_interaction_type`` context, ``default_interaction_type`` applies, as for
    ``tensordict.nn.ProbabilisticTensorDictModule``.

    Use with TorchRL's ``ClipPPOLoss``: construct the policy with ``trajectory=True`` (so
    ``get_dist(td).log_prob(chain)`` is the whole chain's ``[*B]``); the loss then picks its keys
    from :attr:`dist_sample_keys` (``chain``) and :attr:`log_prob_keys` (``log_prob``), the same
    as ``loss.set_keys(action=keys.chain, sample_log_prob=keys.log_prob)`` with
    ``keys = policy.tensor_keys``.

    The learned scale (where there is one) is clamped to [``min_std``, ``max_std``], checked here
    for every head.

    :meth:`compile_sampling` compiles the chain sampling of ``forward`` with ``torch.compile``.
    """

    def __init__(
        self,
        *,
        num_steps: int,
        action_dim: int,
        action_spec: TensorSpec | None,
        squash: str,
        trajectory: bool,
        observation_key: NestedKey,
        action_key: NestedKey,
        default_interaction_type: InteractionType,
        validate_args: bool,
        min_std: float,
        max_std: float,
    ) -> None:
        super().__init__()
        check_int("action_dim", action_dim)
        check_std_range(min_std, max_std)
        if action_spec is not None and action_spec.shape[-1:] != (action_dim,):
            raise ValueError(
                f"action_spec's last dimension must be action_dim={action_dim}, got spec shape "
                f"{tuple(action_spec.shape)}."
            )
        self.num_steps = num_steps
        self.action_dim = action_dim
        self.squash = ActionSquash(squash, action_spec)
        self.trajectory = trajectory
        self.default_interaction_type = InteractionType(default_interaction_type)
        self.validate_args = validate_args
        self.min_std = float(min_std)
        self.max_std = float(max_std)
        self.tensor_keys = ChainKeys(observation=observation_key, action=action_key)
        self._refresh_keys()
        self._draw = _draw
        self._copy_draws = False

    def compile_sampling(self, **compile_kwargs) -> ChainPolicy:
        """Compile the chain sampling of :meth:`forward` with ``torch.compile(**compile_kwargs)``.

        What is compiled is the draw itself (the K denoiser calls, transitions and log-probs,
        under ``torch.no_grad()``), not the tensordict reads and writes around it; nothing is
        wrapped, so parameters, buffers and ``state_dict`` keys are unchanged and checkpoints load
        into a compiled or an eager policy alike (as ``nn.Module.compile``). With
        ``mode="reduce-overhead"`` (CUDA graphs on CUDA) the draws are copied out of the graphs'
        memory pool before they are written, since the next replay reuses it. :meth:`get_dist`
        is not affected (compile the loss for the update). Returns the policy.

        Example:
            >>> from trudi.policies import DenoiserMLP, DiffusionPolicy
            >>> from trudi.samplers import AncestralSampler, CosineSchedule
            >>> policy = DiffusionPolicy(DenoiserMLP(3, 2, 5), AncestralSampler(CosineSchedule(5)))
            >>> policy.compile_sampling(dynamic=True) is policy
            True
        """
        self._draw = torch.compile(_draw, **compile_kwargs)
        self._copy_draws = compile_kwargs.get("mode") in ("reduce-overhead", "max-autotune")
        return self

    def set_keys(self, keys: ChainKeys | None = None, /, **names: NestedKey) -> ChainPolicy:
        """Rename tensordict keys: ``set_keys(chain=("agents", "diffusion", "chain"))``, or all at
        once from a :class:`ChainKeys`, ``set_keys(policy.tensor_keys.prefixed("agents"))``.

        Returns the policy, so calls can be chained.
        """
        known = {f.name for f in fields(ChainKeys)}
        if keys is not None:
            names = {**{name: getattr(keys, name) for name in known}, **names}
        for name, key in names.items():
            if name not in known:
                raise ValueError(
                    f"set_keys got unknown key name {name!r}; expected one of {sorted(known)}."
                )
            setattr(self.tensor_keys, name, key)
        self._refresh_keys()
        return self

    def _refresh_keys(self) -> None:
        keys = self.tensor_keys
        self.in_keys = [keys.observation]
        self.out_keys = [
            keys.action,
            keys.chain,
            keys.loc,
            keys.scale,
            keys.chain_log_prob,
            keys.log_prob,
        ]

    @property
    def dist_sample_keys(self) -> list[NestedKey]:
        """The key :meth:`get_dist`'s ``log_prob`` is evaluated on (read by TorchRL losses)."""
        return [self.tensor_keys.chain]

    @property
    def state_independent_scale(self) -> bool:
        """Whether :meth:`get_dist`'s scales are one function of the parameters at every batch
        element: they depend on the chain step (and action dim) only, not on the observation or
        the chain. A trust region can then project them once per minibatch instead of once per
        row, which :class:`~trudi.learners.TruDiLoss` does. False unless a subclass knows better.
        With :attr:`per_agent_scale` the scales are that function per agent.
        """
        return False

    @property
    def per_agent_scale(self) -> bool:
        """Whether the scales differ between agents, the second-to-last batch dim of
        ``[*B, n_agents, K, A]`` (a :class:`DiffusionPolicy` with ``n_agents`` and a learned
        scale); a loss projecting one row keeps that dim."""
        return False

    @property
    def log_prob_keys(self) -> list[NestedKey]:
        """The stored behaviour log-prob that matches :meth:`get_dist`'s ``log_prob`` shape."""
        keys = self.tensor_keys
        return [keys.log_prob if self.trajectory else keys.chain_log_prob]

    def _sample(
        self, observation: torch.Tensor, explore: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(chain [*B, K+1, A], loc, scale [*B, K, A], chain_log_prob [*B, K])``."""
        raise NotImplementedError

    def _transitions(
        self, observation: torch.Tensor, chain: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The current network's ``(loc, scale)`` ``[*B, K, A]`` on a recorded chain."""
        raise NotImplementedError

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        keys = self.tensor_keys
        observation = _require(tensordict, keys.observation, "observation")
        mode = interaction_type()
        explore = (self.default_interaction_type if mode is None else mode) in _RANDOM
        chain, loc, scale, chain_log_prob = self._draw(self, observation, explore)
        if self._copy_draws:
            chain, loc, scale, chain_log_prob = (
                x.clone() for x in (chain, loc, scale, chain_log_prob)
            )
        tensordict.set(keys.action, self.squash(chain[..., -1, :]))
        tensordict.set(keys.chain, chain)
        tensordict.set(keys.loc, loc)
        tensordict.set(keys.scale, scale)
        tensordict.set(keys.chain_log_prob, chain_log_prob)
        tensordict.set(keys.log_prob, chain_log_prob.sum(-1))
        return tensordict

    def get_dist(self, tensordict: TensorDictBase) -> ChainNormal:
        """Re-score the recorded chain with the current parameters (teacher forcing).

        Reads the observation ``[*B, O]`` and the chain ``[*B, K+1, A]``; returns
        ``ChainNormal(loc, scale)`` with ``loc``, ``scale`` ``[*B, K, A]``, differentiable with
        respect to the policy's parameters. The tensordict is not modified.
        """
        keys = self.tensor_keys
        observation = _require(tensordict, keys.observation, "observation")
        chain = _require(tensordict, keys.chain, "chain")
        expected = (self.num_steps + 1, self.action_dim)
        if tuple(chain.shape[-2:]) != expected:
            raise ValueError(
                f"{keys.chain!r} must have shape [*B, K+1, A] with K+1, A = {expected}, got "
                f"{tuple(chain.shape)}."
            )
        loc, scale = self._transitions(observation, chain)
        return ChainNormal(loc, scale, trajectory=self.trajectory, validate_args=self.validate_args)

    def transition(
        self, observation: torch.Tensor, sample: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The current network's transition ``step`` at ``sample`` ``[*B, A]``: ``(loc, scale)``."""
        raise NotImplementedError

    def _prior(self, noise: torch.Tensor) -> torch.Tensor:
        """x_K from its standard-normal noise ``[*B, A]``."""
        raise NotImplementedError

    def _prior_noise(self, prior: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`_prior`: the standard-normal noise of a recorded x_K."""
        raise NotImplementedError

    def chain_noise(
        self, chain: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        """The standard-normal noise ξ that drew ``chain`` ``[*B, K+1, A]`` from ``(loc, scale)``.

        ``ξ[..., 0, :]`` is the prior's noise, ``ξ[..., j+1, :] = (chain[j+1] − loc[j])/scale[j]``;
        :meth:`rsample` with this noise and the parameters that recorded the chain reproduces it.
        """
        steps = (chain[..., 1:, :] - loc) / scale
        return torch.cat([self._prior_noise(chain[..., :1, :]), steps], dim=-2)

    def rsample(
        self,
        observation: torch.Tensor,
        noise: torch.Tensor | None = None,
        transform: TransitionTransform | None = None,
    ) -> Chain:
        """A reparameterised chain: gradients flow from every sample to the parameters.

        Runs the training transitions step by step (through any sampler's ``transition``), with
        ``x_{j+1} = loc_j + scale_j ξ_{j+1}``. Unlike :meth:`forward` nothing is detached and
        nothing is written.

        Args:
            observation: ``[*B, O]``.
            noise: ξ ``[*B, K+1, A]`` (standard normal; row 0 draws the prior), e.g. from
                :meth:`chain_noise`; drawn when ``None``.
            transform: optional hook on each transition before it is drawn (a per-step
                trust-region projection).

        Returns:
            the :class:`~trudi.samplers.Chain` ``(chain [*B, K+1, A], loc, scale [*B, K, A])``.
        """
        shape = (*observation.shape[:-1], self.num_steps + 1, self.action_dim)
        if noise is None:
            noise = torch.randn(shape, dtype=observation.dtype, device=observation.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape [*B, K+1, A] = {shape}, got {noise.shape}.")
        sample = self._prior(noise[..., 0, :])
        samples, locs, scales = [sample], [], []
        for j in range(self.num_steps):
            loc, scale = self.transition(observation, sample, j)
            if transform is not None:
                loc, scale = transform(j, sample, loc, scale)
            sample = loc + scale * noise[..., j + 1, :]
            samples.append(sample)
            locs.append(loc)
            scales.append(scale)
        return Chain(torch.stack(samples, -2), torch.stack(locs, -2), torch.stack(scales, -2))

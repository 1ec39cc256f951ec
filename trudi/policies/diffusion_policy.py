"""The diffusion policy head: a K-step chain of Gaussian transitions given the observation."""

from __future__ import annotations

import torch
from tensordict.nn import InteractionType
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import TensorSpec

from trudi.policies.chain_policy import ChainPolicy
from trudi.samplers import (
    ConditionedDenoiser,
    DDIMSampler,
    Sampler,
    ScheduledSampler,
    transition_log_prob,
)
from trudi.validation import check_int

__all__ = ["DiffusionPolicy"]


class DiffusionPolicy(ChainPolicy):
    """Diffusion policy: x_K ~ N(0, I), x_{j+1} ~ N(loc_j, scale_j²), action = squash(x_0).

    ``loc_j`` comes from the ``denoiser`` through the ``sampler``'s update rule; ``scale_j`` from
    the sampler's noise schedule, optionally times a learned, state-independent factor
    ``exp(log_scale[j])`` per step and action dimension (and agent, with ``n_agents``), clamped
    to [``min_std``, ``max_std``].

    Keys, shapes and the ``forward``/``get_dist`` contract are those of :class:`ChainPolicy`.
    ``get_dist`` evaluates all K transitions of the recorded chains in one denoiser call (the steps
    become a leading batch dimension). Under ``InteractionType.RANDOM`` the chain is drawn with
    ``sampler``; otherwise with ``eval_sampler`` (default: the probability-flow ODE, DDIM η = 0,
    on the same schedule), which may use a different number of steps K' (the written chain then
    has K' + 1 rows), starts from x_K = 0 (the prior's mode, so the ODE's action is a function
    of the observation), does not use the learned scale, and scores deterministic transitions
    (scale 0) as 0.

    Memory per stored sample beyond a Gaussian policy's action: (K+1)·A (chain) + 2·K·A (loc,
    scale) + K (per-step log-probs) + 1 (their sum) floats.

    Args:
        denoiser: ``denoiser(observation [*B, O], sample [*N, A], timestep) -> [*N, A]`` that
            broadcasts the observation and the timestep to ``*N`` (e.g. :class:`DenoiserMLP`);
            it must expose ``action_dim``.
        sampler: the training sampler; its re-scoring scale floor (``min_score_std``) must be
            > 0 unless ``learn_scale`` is set, so that every transition has a density.
        eval_sampler: the sampler for non-random interaction types; must query the denoiser
            only at timesteps of the training schedule. Default: the sampler's own
            ``probability_flow()`` where it has one (:class:`~trudi.samplers.EulerMaruyamaSampler`),
            else DDIM η = 0 on its schedule.
        action_spec: bounded action spec for squashing (``None``: bounds [-1, 1]).
        squash: ``"clip"``, ``"tanh"`` or ``"none"``.
        learn_scale: learn a per-step, per-dimension log-scale factor ``log_scale`` ``[K, A]``;
            ``[K, n_agents, A]``, one per agent, with ``n_agents``.
        n_agents: the number of agents when the learned scale is per agent: the observation is
            ``[*B, n_agents, O]`` and agent i's transitions use ``log_scale[:, i]`` only, whether
            the denoiser's weights are shared or not. Default: the denoiser's own ``n_agents``
            where it is an integer (:class:`DenoiserMLP` with per-agent weights), else one scale
            for all agents.
        min_std: lower clamp of the learned scale (> 0).
        max_std: upper clamp of the learned scale (>= min_std).
        trajectory: ``get_dist`` returns whole-chain log-probs ``[*B]`` (for ``ClipPPOLoss``)
            instead of per-step ``[*B, K]``.
        observation_key: the observation key; other keys via :meth:`set_keys`.
        action_key: the action key.
        default_interaction_type: interaction type outside ``set_interaction_type``.
        autocast: run the denoiser network under ``torch.autocast`` with this dtype (e.g.
            ``torch.bfloat16`` on GPUs) and cast its output back to the chain's dtype, so the
            transitions, log-probs and everything a loss computes from them (KLs, the
            projection) stay in float32; ``None`` (default) runs it in the chain's dtype.
        validate_args: check ``scale`` > 0 in ``get_dist`` (a device sync, on by default as
            everywhere in trudi; the scales are floored by construction, so switch it off in
            compiled or latency-critical code).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import InteractionType, set_interaction_type
        >>> from trudi.policies import DenoiserMLP, DiffusionPolicy
        >>> from trudi.samplers import AncestralSampler, CosineSchedule
        >>> denoiser = DenoiserMLP(observation_dim=3, action_dim=2, num_steps=5, hidden_dim=32)
        >>> policy = DiffusionPolicy(denoiser, AncestralSampler(CosineSchedule(5)))
        >>> td = TensorDict({"observation": torch.randn(8, 3)}, batch_size=[8])
        >>> with set_interaction_type(InteractionType.RANDOM):
        ...     td = policy(td)
        >>> td["diffusion", "chain"].shape, td["diffusion", "chain_log_prob"].shape
        (torch.Size([8, 6, 2]), torch.Size([8, 5]))
        >>> policy.get_dist(td).log_prob(td["diffusion", "chain"]).shape
        torch.Size([8, 5])
    """

    def __init__(
        self,
        denoiser: nn.Module,
        sampler: Sampler,
        eval_sampler: Sampler | None = None,
        *,
        action_spec: TensorSpec | None = None,
        squash: str = "clip",
        learn_scale: bool = False,
        n_agents: int | None = None,
        min_std: float = 1e-2,
        max_std: float = 1.0,
        trajectory: bool = False,
        observation_key: NestedKey = "observation",
        action_key: NestedKey = "action",
        default_interaction_type: InteractionType = InteractionType.DETERMINISTIC,
        autocast: torch.dtype | None = None,
        validate_args: bool = True,
    ) -> None:
        if not isinstance(sampler, Sampler):
            raise ValueError(f"sampler must be a trudi Sampler, got {type(sampler).__name__}.")
        if eval_sampler is None and hasattr(sampler, "probability_flow"):
            eval_sampler = sampler.probability_flow()
        if eval_sampler is None:
            if not isinstance(sampler, ScheduledSampler):
                raise ValueError(
                    f"eval_sampler must be given when sampler is a {type(sampler).__name__}."
                )
            eval_sampler = DDIMSampler(
                sampler.schedule,
                eta=0.0,
                prediction=sampler.prediction,
                clip_sample=sampler.clip_sample,
            )
        if not isinstance(eval_sampler, Sampler):
            raise ValueError(
                f"eval_sampler must be a trudi Sampler, got {type(eval_sampler).__name__}."
            )
        if not learn_scale and not sampler.min_score_std > 0:
            raise ValueError(
                f"sampler.min_score_std must be > 0 so that every transition has a density "
                f"(or set learn_scale=True), got {sampler.min_score_std!r}."
            )
        train_steps = int(sampler.timesteps.max())
        if int(eval_sampler.timesteps.max()) > train_steps:
            raise ValueError(
                f"eval_sampler queries timesteps up to {int(eval_sampler.timesteps.max())}, beyond "
                f"the training sampler's {train_steps}."
            )
        denoiser_steps = getattr(denoiser, "num_steps", train_steps)
        if denoiser_steps < train_steps:
            raise ValueError(
                f"denoiser.num_steps must be >= the sampler's largest timestep {train_steps}, got "
                f"{denoiser_steps}."
            )
        action_dim = getattr(denoiser, "action_dim", None)
        if action_dim is None and action_spec is not None:
            action_dim = action_spec.shape[-1]
        super().__init__(
            num_steps=sampler.num_steps,
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
        if autocast is not None and not (
            isinstance(autocast, torch.dtype) and autocast.is_floating_point
        ):
            raise ValueError(
                f"autocast must be None or a floating torch.dtype (torch.bfloat16), got {autocast!r}."
            )
        self.denoiser = denoiser
        self.autocast = autocast
        self.sampler = sampler
        self.eval_sampler = eval_sampler
        denoiser_agents = getattr(denoiser, "n_agents", None)
        if not isinstance(denoiser_agents, int) or isinstance(denoiser_agents, bool):
            denoiser_agents = None
        check_int("n_agents", n_agents, optional=True)
        if n_agents is not None and denoiser_agents not in (None, n_agents):
            raise ValueError(
                f"n_agents must match the denoiser's per-agent weights, "
                f"denoiser.n_agents={denoiser_agents}, got {n_agents}."
            )
        self.n_agents = denoiser_agents if n_agents is None else n_agents
        if learn_scale:
            agents = () if self.n_agents is None else (self.n_agents,)
            self.log_scale = nn.Parameter(torch.zeros(self.num_steps, *agents, self.action_dim))
        else:
            self.log_scale = None

    def _denoise(
        self, observation: torch.Tensor, sample: torch.Tensor, timestep: torch.Tensor
    ) -> torch.Tensor:
        """The denoiser's output ``[*N, A]`` in the dtype of ``sample``, under :attr:`autocast`."""
        if self.autocast is None:
            return self.denoiser(observation, sample, timestep)
        with torch.autocast(sample.device.type, dtype=self.autocast):
            denoised = self.denoiser(observation, sample, timestep)
        # Cast back before the sampler: every transition, log-prob, KL and projection in float32.
        return denoised.to(sample.dtype)

    @property
    def state_independent_scale(self) -> bool:
        # The sampler's step scale times the learned per-step (and per-agent) factor.
        return self.sampler.state_independent_scale

    @property
    def per_agent_scale(self) -> bool:
        return self.log_scale is not None and self.log_scale.dim() == 3

    def _learned_scale(self, scale: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
        if self.log_scale is None:
            return scale
        log_scale = self.log_scale[step]
        if self.log_scale.dim() == 3 and isinstance(step, torch.Tensor) and step.dim() > 0:
            # step [K, 1, ..., 1] ends with the agent dim's singleton; the agents are in log_scale.
            log_scale = log_scale.squeeze(step.dim() - 1)
        return (scale * log_scale.exp()).clamp(self.min_std, self.max_std)

    def _sample(
        self, observation: torch.Tensor, explore: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        denoise = ConditionedDenoiser(self._denoise, observation)
        shape = (*observation.shape[:-1], self.action_dim)
        if explore:
            prior = torch.randn(shape, dtype=observation.dtype, device=observation.device)
            chain, loc, scale = self.sampler.sample_chain(
                denoise, prior, scale_fn=self._learned_scale
            )
        else:
            # Starting from the prior's mode makes the ODE's action a function of the observation.
            prior = torch.zeros(shape, dtype=observation.dtype, device=observation.device)
            chain, loc, scale = self.eval_sampler.sample_chain(denoise, prior)
        return chain, loc, scale, transition_log_prob(chain, loc, scale)

    def _transitions(
        self, observation: torch.Tensor, chain: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        denoise = ConditionedDenoiser(self._denoise, observation)
        _, loc, scale = self.sampler.rescore_chain(denoise, chain, scale_fn=self._learned_scale)
        return loc, scale

    def transition(
        self, observation: torch.Tensor, sample: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        denoised = self._denoise(observation, sample, self.sampler.timesteps[step])
        loc, scale = self.sampler.transition(denoised, step, sample, sampling=True)
        return loc, self._learned_scale(scale, step)

    def _prior_std(self, like: torch.Tensor) -> torch.Tensor | float:
        # Samplers with a non-standard prior (EulerMaruyamaSampler) expose its std.
        prior_std = getattr(self.sampler, "prior_std", 1.0)
        return prior_std.to(like.dtype) if isinstance(prior_std, torch.Tensor) else prior_std

    def _prior(self, noise: torch.Tensor) -> torch.Tensor:
        return self._prior_std(noise) * noise

    def _prior_noise(self, prior: torch.Tensor) -> torch.Tensor:
        return prior / self._prior_std(prior)

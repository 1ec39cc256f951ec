"""TruDi's loss: an unclipped surrogate on trajectory-projected chains, plus a trust-region term."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import dispatch

from trudi.constraints import TrajectoryKLProjection
from trudi.learners.chain_loss import ChainLoss
from trudi.policies import ChainNormal

__all__ = ["TruDiLoss"]


class TruDiLoss(ChainLoss):
    """Trust-Region Diffusion Policy loss (``docs/design.md``, "The method") as a TorchRL
    ``LossModule``.

    Per minibatch it re-scores the recorded chains with the current policy (one batched call),
    projects the current transitions onto the trust region around the stored behaviour transitions
    and returns

    - ``loss_objective`` = −r A with the whole-chain ratio
      r = exp(log p̃(chain) − log p_old(chain)) of projected to behaviour density (no clipping: the
      projection is the trust region);
    - ``loss_trust_region`` = α Σ_k d(p_θ,k ‖ sg(p̃_k)), the projection's own divergence
      (:meth:`TrajectoryKLProjection.penalty`) from the network's transitions to the
      stop-gradient projected ones, which pulls the network onto its projection;
    - ``loss_critic`` and ``loss_entropy`` (entropy of the projected chain) as in TorchRL's PPO;

    plus detached diagnostics: ratio statistics (``ratio_mean``, ``ratio_min``, ``ratio_max``),
    ``explained_variance``, ``entropy`` and, unless ``metrics=False``, the projection's own
    :func:`~trudi.constraints.projection_metrics` under their names (``kl_trajectory_before``,
    ``kl_trajectory_after``, ``kl_mean_part_*``, ``kl_cov_part_*``, ``frac_projected``,
    ``max_multiplier``).

    With a :class:`~trudi.policies.GaussianPolicy` (K = 1) this is TRPL (Otto et al. 2021) with an
    unclipped PPO surrogate.

    Args:
        actor_network: a chain policy (``DiffusionPolicy`` or ``GaussianPolicy``).
        critic_network: ``V(s)``, writing ``state_value``.
        projection: the trust-region layer applied to the transitions.
        trust_region_coeff: α ≥ 0.
        metrics: compute the projection metrics (a few reductions per minibatch; switch them off
            in hot loops that do not log them).
        **ppo_kwargs: any keyword of :class:`torchrl.objectives.PPOLoss` (``entropy_coeff``,
            ``critic_coeff``, ``normalize_advantage``, ``reduction``, ``functional``, …).

    Keys: PPO's (``advantage``, ``value_target``, ``state_value``, ``reward``, ``done``,
    ``terminated``) and the chain's (``chain``, ``loc``, ``scale``, ``chain_log_prob``), taken from
    the policy's ``tensor_keys`` and renamable with :meth:`set_keys`. The input tensordict is not
    modified (the loss works on a shallow copy).

    Example:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from trudi.constraints import TrajectoryKLProjection
        >>> from trudi.learners import TruDiLoss
        >>> from tensordict.nn import InteractionType, set_interaction_type
        >>> from trudi.policies import DenoiserMLP, DiffusionPolicy
        >>> from trudi.samplers import AncestralSampler, CosineSchedule
        >>> denoiser = DenoiserMLP(observation_dim=3, action_dim=2, num_steps=4, hidden_dim=32)
        >>> policy = DiffusionPolicy(denoiser, AncestralSampler(CosineSchedule(4)))
        >>> critic = TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["state_value"])
        >>> loss = TruDiLoss(policy, critic, TrajectoryKLProjection(0.05))
        >>> with set_interaction_type(InteractionType.RANDOM):
        ...     td = policy(TensorDict({"observation": torch.randn(8, 3)}, [8]))
        >>> td["advantage"], td["value_target"] = torch.randn(8, 1), torch.randn(8, 1)
        >>> out = loss(td)
        >>> sorted(k for k in out.keys() if k.startswith("loss_"))
        ['loss_critic', 'loss_entropy', 'loss_objective', 'loss_trust_region']
    """

    def __init__(
        self,
        actor_network,
        critic_network=None,
        projection: TrajectoryKLProjection | None = None,
        *,
        trust_region_coeff: float = 1.0,
        metrics: bool = True,
        **ppo_kwargs,
    ) -> None:
        if not isinstance(projection, TrajectoryKLProjection):
            raise ValueError(
                "projection must be a trudi.constraints.TrajectoryKLProjection, got "
                f"{type(projection).__name__}"
            )
        if not (isinstance(trust_region_coeff, (int, float)) and trust_region_coeff >= 0):
            raise ValueError(f"trust_region_coeff must be a float >= 0, got {trust_region_coeff!r}")
        super().__init__(actor_network, critic_network, **ppo_kwargs)
        self.projection = projection
        self.metrics = metrics
        self.register_buffer("trust_region_coeff", torch.tensor(float(trust_region_coeff)))

    def _loss_names(self) -> list[str]:
        return ["loss_objective", "loss_trust_region", *super()._loss_names()[1:]]

    def _scales_to_project(self, scale: torch.Tensor, old_scale: torch.Tensor):
        """``(scale, old_scale)`` as the projection should solve them: one row ``[1, …, 1, K, A]``
        of each where that is exact (``[1, …, 1, n_agents, K, A]`` for per-agent scales,
        :attr:`~trudi.policies.ChainPolicy.per_agent_scale`), else both unchanged ``[*B, K, A]``.

        Exact when the policy's scales are one function of the parameters at every row
        (:attr:`~trudi.policies.ChainPolicy.state_independent_scale`) and the behaviour scales'
        rows are equal (data from one behaviour policy): every row then has the same covariance
        projection, and routing the gradient of all rows through one is the gradient of the
        broadcast that made them. The row comparison reads the data, so it runs on the CPU only
        (where a CUDA device would have to synchronise) and never under ``torch.compile``.
        """
        batch = old_scale.dim() - 2
        if (
            batch == 0
            or scale.is_cuda
            or torch.compiler.is_compiling()
            or not getattr(self.actor_network, "state_independent_scale", False)
        ):
            return scale, old_scale
        row = (slice(0, 1),) * batch
        if getattr(self.actor_network, "per_agent_scale", False):
            row = (*row[:-1], slice(None))  # keep the agent dim, [*B, n_agents, K, A]
        old_row = old_scale[row]
        if not torch.equal(old_scale, old_row.expand_as(old_scale)):
            return scale, old_scale
        return scale[row], old_row

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict = tensordict.clone(False)
        advantage = self._advantage(tensordict)
        chain = self._read(tensordict, "chain")
        old_loc, old_scale = self._read(tensordict, "loc"), self._read(tensordict, "scale")
        old_log_prob = self._read(tensordict, "chain_log_prob")

        current = self._current_transitions(tensordict)
        scale, projected_old_scale = self._scales_to_project(current.scale, old_scale)
        projection = self.projection.project(current.loc, scale, old_loc, projected_old_scale)
        projected = ChainNormal(projection.loc, projection.scale, validate_args=False)
        log_weight = (projected.log_prob(chain) - old_log_prob).sum(-1, keepdim=True)
        advantage = self._broadcast(advantage, log_weight)
        ratio = log_weight.exp()

        penalty = self.projection.penalty(
            current.loc, current.scale, projection.loc.detach(), projection.scale.detach()
        )
        losses = {
            "loss_objective": -ratio * advantage,
            "loss_trust_region": self.trust_region_coeff * penalty.unsqueeze(-1),
        }
        diagnostics = {
            "ratio_mean": ratio.mean(),
            "ratio_min": ratio.min(),
            "ratio_max": ratio.max(),
        }
        if self.metrics:
            diagnostics.update(
                self.projection.metrics(current.loc, current.scale, old_loc, old_scale, projection)
            )
        entropy = projected.entropy().sum(-1, keepdim=True)
        return self._finish(tensordict, losses, entropy, diagnostics)

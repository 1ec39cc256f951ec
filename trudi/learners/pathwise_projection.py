"""A reparameterised chain drawn through trust-region-projected transitions (docs/pathwise.md).

The pathwise learner needs a sample of the *projected* policy p̃, with gradients. Projecting
transition j compares the network's (loc, scale) with the old policy's at the same state x_j,
which a freshly drawn chain has never visited: the old policy is a frozen copy of the actor,
evaluated step by step on the drawn chain's own states. In both modes the drawn chain is a genuine
sample of p̃, so Σ_j KL(p̃_j ‖ p_old,j) on it is a one-sample estimate of KL(p̃(τ) ‖ p_old(τ)).

- ``mode="per_step"``: each transition is projected onto its own ball while the chain is drawn, so
  KL(p̃_j ‖ p_old,j) ≤ ε_μ + ε_Σ at every visited state, and by the chain rule
  KL(p̃(τ) ‖ p_old(τ)) ≤ K (ε_μ + ε_Σ) exactly, hence also the marginal action KL.
- ``mode="trajectory"``: the multipliers (ω for the mean, η for the covariance; one per chain) need
  all K steps. They are found where the trajectory KL is exact: the network teacher-forced on the
  *recorded* behaviour chain against the recorded transitions (TruDiLoss's projection, so there
  Σ_k KL ≤ ε_μ + ε_Σ holds exactly). The chain is then drawn with every step's mean interpolated
  towards the old policy's at the drawn state with that chain's ω: loc̃ = (loc + ω loc_old)/(1 + ω).
  The scales of trudi's chains depend on the step, never on the state, so the projected scales
  found on the recorded chain are used as they are. On the drawn chain's states the bound holds
  approximately (logged as ``kl_projected_max``).

Drawing the chain unprojected and projecting it afterwards, against the old policy at the
unprojected states, was measured and rejected: the unprojected states drift, the old policy carries
them along, and the "bounded" KL then says little about the action (docs/pathwise.md).
"""

from __future__ import annotations

import torch

from trudi.constraints import TrajectoryKLProjection, gaussian_kl
from trudi.policies import ChainPolicy
from trudi.samplers import Chain

__all__ = ["projected_rsample"]


def projected_rsample(
    actor: ChainPolicy,
    old_actor: ChainPolicy,
    projection: TrajectoryKLProjection,
    observation: torch.Tensor,
    noise: torch.Tensor,
    recorded: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[Chain, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Draw a chain of ``actor`` through transitions projected towards ``old_actor``'s.

    Args:
        actor: the policy being trained.
        old_actor: the frozen old (behaviour) policy, same architecture.
        projection: the trust-region layer; its ``mode`` picks the scheme (see the module doc).
        observation: ``[*B, O]``.
        noise: ξ ``[*B, K+1, A]``.
        recorded: trajectory mode: ``(loc, scale, old_loc, old_scale)`` ``[*B, K, A]``, the
            network teacher-forced on the recorded chain and the recorded behaviour transitions.

    Returns:
        ``(chain, loc, scale, metrics)``: the projected :class:`~trudi.samplers.Chain` (its
        ``loc``/``scale`` are the projected transitions), the network's unprojected transitions
        ``[*B, K, A]`` at the same states, and detached ``kl_projected_max`` /
        ``kl_projected_mean`` of Σ_j KL(p̃_j ‖ p_old,j) on the drawn chain (plus
        ``kl_projected_recorded_max`` on the recorded one in trajectory mode).
    """
    metrics = {}
    if projection.mode == "per_step":

        def shrink(step, loc, scale, old_loc, old_scale):
            row = (t.unsqueeze(-2) for t in (loc, scale, old_loc, old_scale))
            result = projection.project(*row)
            return result.loc.squeeze(-2), result.scale.squeeze(-2)

    else:
        if recorded is None:
            raise ValueError("trajectory mode needs the recorded transitions (recorded=...).")
        on_recorded = projection.project(*recorded)
        kl_mean, kl_cov = gaussian_kl(on_recorded.loc, on_recorded.scale, *recorded[2:])
        metrics["kl_projected_recorded_max"] = (kl_mean + kl_cov).sum(-1).max().detach()
        omega = on_recorded.mean_multiplier.unsqueeze(-1)

        def shrink(step, loc, scale, old_loc, old_scale):
            return (loc + omega * old_loc) / (1 + omega), on_recorded.scale[..., step, :]

    unprojected, olds = [], []

    def project(step, sample, loc, scale):
        old_loc, old_scale = old_actor.transition(observation, sample, step)
        unprojected.append((loc, scale))
        olds.append((old_loc, old_scale))
        return shrink(step, loc, scale, old_loc, old_scale)

    chain = actor.rsample(observation, noise, transform=project)
    loc, scale = (torch.stack(t, -2) for t in zip(*unprojected, strict=True))
    old_loc, old_scale = (torch.stack(t, -2) for t in zip(*olds, strict=True))
    kl_mean, kl_cov = gaussian_kl(chain.loc, chain.scale, old_loc, old_scale)
    kl = (kl_mean + kl_cov).sum(-1).detach()
    metrics.update({"kl_projected_max": kl.max(), "kl_projected_mean": kl.mean()})
    return chain, loc, scale, metrics

"""A reparameterised chain drawn through trust-region-projected transitions (docs/pathwise.md).

The pathwise learner needs a sample of the *projected* policy, with gradients. The projection of
transition j compares the network's (loc, scale) with the old policy's at the same state x_j,
which for a freshly drawn chain the behaviour data never visited: the old policy is a frozen copy
of the actor, evaluated on the new chain's states.

- ``mode="per_step"``: each transition is projected while the chain is drawn, so the chain is a
  genuine Markov chain p̃ whose every step satisfies KL(p̃_j ‖ p_old,j) ≤ ε_μ + ε_Σ at its own
  state; by the chain rule KL(p̃(τ) ‖ p_old(τ)) ≤ K (ε_μ + ε_Σ), and so is the marginal action KL.
- ``mode="trajectory"``: the multiplier needs all K steps, so the chain is drawn unprojected
  (states x_j), the old network is teacher-forced on those states (one batched call), all K
  transitions are projected with one multiplier per chain, and the chain is re-derived with the
  same noise, x̃_{j+1} = loc̃_j + scalẽ_j ξ_{j+1}. The bound Σ_j KL(p̃_j ‖ p_old,j) ≤ ε_μ + ε_Σ
  holds on the unprojected draw's states; the action is the last re-derived sample.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from trudi.constraints import TrajectoryKLProjection, gaussian_kl
from trudi.policies import ChainPolicy
from trudi.samplers import Chain

__all__ = ["projected_rsample"]


def _per_step(actor, old_actor, projection, observation, noise):
    unprojected, olds = [], []

    def project(step, sample, loc, scale):
        old_loc, old_scale = old_actor.transition(observation, sample, step)
        unprojected.append((loc, scale))
        olds.append((old_loc, old_scale))
        row = (t.unsqueeze(-2) for t in (loc, scale, old_loc, old_scale))
        result = projection.project(*row)
        return result.loc.squeeze(-2), result.scale.squeeze(-2)

    chain = actor.rsample(observation, noise, transform=project)
    loc, scale = (torch.stack(t, -2) for t in zip(*unprojected, strict=True))
    old_loc, old_scale = (torch.stack(t, -2) for t in zip(*olds, strict=True))
    return chain, loc, scale, old_loc, old_scale


def _trajectory(actor, old_actor, projection, observation, noise):
    drawn = actor.rsample(observation, noise)
    keys = old_actor.tensor_keys
    states = TensorDict({keys.observation: observation, keys.chain: drawn.chain}, [])
    old = old_actor.get_dist(states)
    projected = projection.project(drawn.loc, drawn.scale, old.loc, old.scale)
    steps = projected.loc + projected.scale * noise[..., 1:, :]
    chain = torch.cat([drawn.chain[..., :1, :], steps], -2)
    return Chain(chain, projected.loc, projected.scale), drawn.loc, drawn.scale, old.loc, old.scale


def projected_rsample(
    actor: ChainPolicy,
    old_actor: ChainPolicy,
    projection: TrajectoryKLProjection,
    observation: torch.Tensor,
    noise: torch.Tensor,
) -> tuple[Chain, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Draw a chain of ``actor`` through transitions projected towards ``old_actor``'s.

    Args:
        actor: the policy being trained.
        old_actor: the frozen old policy (same architecture).
        projection: the trust-region layer; its ``mode`` picks the scheme (see the module doc).
        observation: ``[*B, O]``.
        noise: ξ ``[*B, K+1, A]``.

    Returns:
        ``(chain, loc, scale, metrics)``: the projected :class:`~trudi.samplers.Chain` (its
        ``loc``/``scale`` are the projected transitions), the network's unprojected transitions
        ``[*B, K, A]`` at the same states, and detached ``kl_projected_max`` /
        ``kl_projected_mean`` of Σ_j KL(p̃_j ‖ p_old,j).
    """
    scheme = _per_step if projection.mode == "per_step" else _trajectory
    chain, loc, scale, old_loc, old_scale = scheme(actor, old_actor, projection, observation, noise)
    kl_mean, kl_cov = gaussian_kl(chain.loc, chain.scale, old_loc, old_scale)
    kl = (kl_mean + kl_cov).sum(-1).detach()
    return chain, loc, scale, {"kl_projected_max": kl.max(), "kl_projected_mean": kl.mean()}

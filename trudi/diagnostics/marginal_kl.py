"""The marginal action KL(old ‖ new) of two chain policies beside their exact trajectory KL.

TruDi bounds the trajectory KL of the denoising chain, KL(p_old(τ|s) ‖ p_new(τ|s)), which by the
data processing inequality upper-bounds the KL of the marginals of x_0 (``docs/design.md``, "The
method"). :func:`marginal_kl` measures both at a batch of states, so that the gap, how
conservative the trust region really is, can be watched during training:

- trajectory: n chains drawn from the old policy at each state, the new policy teacher-forced on
  them, and the exact Σ_k KL(old_k ‖ new_k) of each chain (:func:`~trudi.constraints.
  exact_trajectory_kl`) averaged over the chains: a Monte-Carlo estimate of the trajectory KL
  whose only error is the average over n chains;
- marginal: the k-nearest-neighbour estimate (:func:`~trudi.diagnostics.knn_kl`) between the old
  chains' x_0 and n fresh chains of the new policy.

Both are measured on x_0 before squashing. With ``squash="tanh"`` (a bijection) its KL is the
action's; with ``"clip"`` the action's KL is at most x_0's, and clipped actions have atoms, on
which the k-NN estimator is not defined. For a Gaussian head (K = 1, x_0 ~ N(loc(s), scale²))
the two KLs are the same number, so there the ratio of the two measures the k-NN estimator's own
error at that dimension and sample size: a control for the diffusion heads' ratio.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type
from torch import Tensor

from trudi.constraints import exact_trajectory_kl
from trudi.diagnostics.knn_kl import knn_kl
from trudi.policies import ChainPolicy
from trudi.validation import check_int

__all__ = ["MarginalKL", "marginal_kl"]


class MarginalKL(NamedTuple):
    """Result of :func:`marginal_kl`, one value per state.

    Attributes:
        marginal: the k-NN estimate of KL(p_old(x_0|s) ‖ p_new(x_0|s)), ``[S]``.
        trajectory: the chain KL(p_old(τ|s) ‖ p_new(τ|s)), averaged over the old chains, ``[S]``.
    """

    marginal: Tensor
    trajectory: Tensor


def _draw(policy: ChainPolicy, observation: Tensor) -> TensorDict:
    td = TensorDict({policy.tensor_keys.observation: observation}, observation.shape[:-1])
    with set_interaction_type(InteractionType.RANDOM):
        return policy(td)


@torch.no_grad()
def marginal_kl(
    old_policy: ChainPolicy,
    new_policy: ChainPolicy,
    observation: Tensor,
    num_samples: int = 512,
    k: int = 1,
) -> MarginalKL:
    """Marginal and trajectory KL(old ‖ new) of two chain policies at ``S`` states.

    Both policies draw with their training (``InteractionType.RANDOM``) distribution, the one the
    trust region bounds; the random numbers come from torch's global generator (wrap the call in
    ``torch.random.fork_rng`` to leave it untouched). No host synchronisation.

    Args:
        old_policy: the behaviour policy, e.g. ``copy.deepcopy(policy)`` taken before an update,
            or the pathwise loss's ``old_actor_network``.
        new_policy: the updated policy, same head and number of steps.
        observation: ``[S, O]``, one state per row, as the policies read it (normalised).
        num_samples: chains per state and policy, ≥ k + 1 (a few hundred).
        k: the neighbour order of :func:`~trudi.diagnostics.knn_kl`.

    Returns:
        :class:`MarginalKL` with ``marginal`` and ``trajectory``, each ``[S]``.

    Example:
        >>> import copy, torch
        >>> from trudi.policies import DenoiserMLP, DiffusionPolicy
        >>> from trudi.samplers import AncestralSampler, CosineSchedule
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> policy = DiffusionPolicy(DenoiserMLP(3, 2, 4, hidden_dim=16), AncestralSampler(CosineSchedule(4)))
        >>> old = copy.deepcopy(policy)
        >>> with torch.no_grad():
        ...     _ = policy.denoiser.output.bias.add_(0.3)  # a small policy change
        >>> kl = marginal_kl(old, policy, torch.randn(8, 3), num_samples=256)
        >>> kl.marginal.shape, kl.trajectory.shape, bool((kl.trajectory > 0).all())
        (torch.Size([8]), torch.Size([8]), True)
    """
    for name, policy in (("old_policy", old_policy), ("new_policy", new_policy)):
        if not isinstance(policy, ChainPolicy):
            raise ValueError(f"{name} must be a trudi ChainPolicy, got {type(policy).__name__}")
    if (old_policy.num_steps, old_policy.action_dim) != (
        new_policy.num_steps,
        new_policy.action_dim,
    ):
        raise ValueError(
            "old_policy and new_policy must have the same (num_steps, action_dim), got "
            f"{(old_policy.num_steps, old_policy.action_dim)} and "
            f"{(new_policy.num_steps, new_policy.action_dim)}"
        )
    if not isinstance(observation, Tensor) or observation.dim() != 2:
        shape = tuple(observation.shape) if isinstance(observation, Tensor) else type(observation)
        raise ValueError(f"observation must be a tensor [S, O], one state per row, got {shape}")
    check_int("num_samples", num_samples, minimum=k + 1)
    observation = observation.unsqueeze(-2).expand(-1, num_samples, -1)
    old = _draw(old_policy, observation)
    keys = old_policy.tensor_keys
    new_dist = new_policy.get_dist(old)
    trajectory = exact_trajectory_kl(old[keys.loc], old[keys.scale], new_dist.loc, new_dist.scale)
    new = _draw(new_policy, observation)
    old_x0 = old[keys.chain][..., -1, :]
    new_x0 = new[new_policy.tensor_keys.chain][..., -1, :]
    return MarginalKL(knn_kl(old_x0, new_x0, k), trajectory.mean(-1))

"""REPPO (Voelcker et al. 2025): the Gaussian baseline of pathwise TruDi."""

from __future__ import annotations

from trudi.learners.pathwise_loss import TruDiPathwiseLoss
from trudi.learners.q_critic import QCritic
from trudi.policies import ChainPolicy

__all__ = ["REPPOLoss"]


class REPPOLoss(TruDiPathwiseLoss):
    """REPPO's loss: :class:`TruDiPathwiseLoss` with a one-step (Gaussian) chain.

    With K = 1 the pseudo log-density is the exact log-density of the tanh-squashed Gaussian and
    c(s) is the exact KL(old ‖ new) of the two Gaussians in closed form (REPPO estimates it from
    16 samples of the old policy; the value is the same in expectation, and the KL is invariant
    under the squash). The default trust region is REPPO's gate (``"split"``); every keyword is
    :class:`TruDiPathwiseLoss`'s.

    Args:
        actor_network: a chain policy with ``num_steps == 1``, e.g.
            ``GaussianPolicy(loc_net, A, squash="tanh")``.
        critic_network: the :class:`~trudi.learners.QCritic`.
        **kwargs: as for :class:`TruDiPathwiseLoss`.

    Example:
        >>> import torch
        >>> from trudi.learners import HLGaussHead, QCritic, REPPOLoss
        >>> from trudi.policies import GaussianPolicy
        >>> policy = GaussianPolicy(torch.nn.Linear(3, 2), action_dim=2, squash="tanh")
        >>> loss = REPPOLoss(policy, QCritic(3, 2, HLGaussHead(-10.0, 10.0), hidden_dim=16))
        >>> loss.trust_region, round(float(loss.kl_bound), 6)
        ('split', 0.1)
    """

    def __init__(self, actor_network: ChainPolicy, critic_network: QCritic, **kwargs) -> None:
        if getattr(actor_network, "num_steps", None) != 1:
            raise ValueError(
                "actor_network must be a one-step chain policy (e.g. GaussianPolicy) for REPPO, "
                f"got num_steps={getattr(actor_network, 'num_steps', None)!r}; use "
                "TruDiPathwiseLoss for diffusion policies."
            )
        super().__init__(actor_network, critic_network, **kwargs)

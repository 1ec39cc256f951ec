"""The distribution of a diffusion chain: K independent diagonal-Gaussian transitions."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.distributions import Distribution, constraints

from trudi.samplers.log_prob import HALF_LOG_2PI, normal_log_prob

__all__ = ["ChainNormal"]


class ChainNormal(Distribution):
    """Gaussian transitions of a chain, scored on a recorded chain (teacher forcing).

    Transition j is N(loc[..., j, :], diag(scale[..., j, :]²)) over ``chain[..., j + 1, :]``; its
    mean depends on ``chain[..., j, :]`` only through ``loc``, which the policy computed from the
    recorded chain. The trajectory log-likelihood is the sum over steps (``docs/design.md``, "The
    method"; the prior term N(x_K; 0, I) is left out because it cancels in ratios).

    Shapes: by default ``batch_shape = [*B, K]`` and ``event_shape = [A]``, so :meth:`log_prob`
    and :meth:`entropy` return one value per step, ``[*B, K]``. With ``trajectory=True`` the
    steps are part of the event: ``batch_shape = [*B]``, ``event_shape = [K, A]``, and both
    return the whole-chain quantity ``[*B]`` (the form TorchRL's ``ClipPPOLoss`` expects).

    Sampling is not provided: a chain's transitions depend on the previous samples through the
    denoiser, so chains are drawn by the policy (:meth:`DiffusionPolicy.forward`), not here.

    Args:
        loc: transition means ``[*B, K, A]``.
        scale: transition standard deviations ``[*B, K, A]`` (> 0); broadcast against ``loc``.
        trajectory: sum ``log_prob`` and ``entropy`` over the K steps.
        validate_args: check that ``scale`` > 0 (this syncs with the device). On by default,
            regardless of ``torch.distributions``' global default (which TorchRL switches off).
            The shape of ``chain`` is always checked.

    Examples:
        >>> import torch
        >>> from trudi.policies import ChainNormal
        >>> dist = ChainNormal(torch.zeros(4, 3, 2), torch.ones(4, 3, 2))
        >>> chain = torch.zeros(4, 4, 2)
        >>> dist.log_prob(chain).shape, dist.entropy().shape
        (torch.Size([4, 3]), torch.Size([4, 3]))
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    has_rsample = False

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        *,
        trajectory: bool = False,
        validate_args: bool = True,
    ) -> None:
        if loc.dim() < 2:
            raise ValueError(f"loc must have shape [*B, K, A], got {tuple(loc.shape)}.")
        try:
            loc, scale = torch.broadcast_tensors(loc, scale)
        except RuntimeError as error:
            raise ValueError(
                f"scale {tuple(scale.shape)} must broadcast to loc's shape {tuple(loc.shape)}."
            ) from error
        self.loc = loc
        self.scale = scale
        self.trajectory = trajectory
        event_dims = 2 if trajectory else 1
        super().__init__(
            batch_shape=loc.shape[:-event_dims],
            event_shape=loc.shape[-event_dims:],
            validate_args=validate_args,
        )

    @property
    def num_steps(self) -> int:
        """K, the number of transitions."""
        return self.loc.shape[-2]

    @property
    def mean(self) -> torch.Tensor:
        """The transition means ``[*B, K, A]`` (each conditional on the recorded chain)."""
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def stddev(self) -> torch.Tensor:
        return self.scale

    def _reduce(self, per_dim: torch.Tensor) -> torch.Tensor:
        return per_dim.sum((-2, -1)) if self.trajectory else per_dim.sum(-1)

    def log_prob(self, chain: torch.Tensor) -> torch.Tensor:
        """Log-likelihood of each transition of ``chain``.

        Args:
            chain: ``[*B, K + 1, A]``, x_K … x_0.

        Returns:
            ``[*B, K]`` (``[*B]`` with ``trajectory=True``), summed over A.
        """
        expected = (*self.loc.shape[:-2], self.num_steps + 1, self.loc.shape[-1])
        if tuple(chain.shape) != expected:
            raise ValueError(
                f"chain must have shape [*B, K + 1, A] = {expected}, got {tuple(chain.shape)}."
            )
        return self._reduce(normal_log_prob(chain[..., 1:, :], self.loc, self.scale))

    def entropy(self) -> torch.Tensor:
        """Entropy of each transition, ``[*B, K]`` (``[*B]`` with ``trajectory=True``)."""
        return self._reduce(0.5 + HALF_LOG_2PI + self.scale.log())

    def expand(self, batch_shape: torch.Size, _instance: ChainNormal | None = None) -> ChainNormal:
        event_dims = 2 if self.trajectory else 1
        shape = (*batch_shape, *self.loc.shape[-event_dims:])
        return ChainNormal(
            self.loc.expand(shape),
            self.scale.expand(shape),
            trajectory=self.trajectory,
            validate_args=False,
        )

    def __repr__(self) -> str:
        return (
            f"ChainNormal(loc: {tuple(self.loc.shape)}, scale: {tuple(self.scale.shape)}, "
            f"trajectory={self.trajectory})"
        )

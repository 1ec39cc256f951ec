"""HL-Gauss (Imani & White 2018; Farebrother et al. 2024): a value regressed as a histogram.

The value range [v_min, v_max] is split into ``num_bins`` bins of width w = (v_max − v_min)/(bins − 1)
centred on ``linspace(v_min, v_max, bins)``. A scalar target y is turned into the probabilities a
Gaussian N(clip(y), σ²) puts on each bin (bin edges centre ± w/2, renormalised over the covered
range); the critic's logits are trained with the cross-entropy to them, and the value is the
expectation of the bin centres under softmax(logits). REPPO's choices: 151 bins, σ = 0.75 w.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["HLGaussHead", "hl_gauss_target"]


def hl_gauss_target(
    value: torch.Tensor, v_min: float, v_max: float, num_bins: int, sigma: float
) -> torch.Tensor:
    """Bin probabilities of N(clip(value, v_min, v_max), σ²), ``[*B, 1]`` → ``[*B, num_bins]``.

    Examples:
        >>> import torch
        >>> hl_gauss_target(torch.tensor([[0.0]]), -1.0, 1.0, 3, sigma=0.75)
        tensor([[0.2407, 0.5186, 0.2407]])
    """
    width = (v_max - v_min) / (num_bins - 1)
    edges = torch.linspace(
        v_min - width / 2, v_max + width / 2, num_bins + 1, dtype=value.dtype, device=value.device
    )
    y = value.clamp(v_min, v_max)
    cdf = torch.erf((edges - y) / (math.sqrt(2.0) * sigma))
    mass = cdf[..., 1:] - cdf[..., :-1]
    return mass / (cdf[..., -1:] - cdf[..., :1])


class HLGaussHead(nn.Module):
    """The HL-Gauss output layer's support, target and loss (no weights of its own).

    Args:
        v_min, v_max: the value range (targets are clipped to it). Choose it from the returns of
            the task in the critic's units (e.g. reward scale / (1 − γ)); REPPO uses [0, 150]
            on Brax with reward scale 0.1 and [−10, 10] on MJX humanoid.
        num_bins: number of bins (REPPO: 151).
        sigma_ratio: σ / bin width (REPPO: 0.75).

    Examples:
        >>> import torch
        >>> head = HLGaussHead(-10.0, 10.0, num_bins=151)
        >>> logits = torch.zeros(4, 151, requires_grad=True)
        >>> head.loss(logits, torch.full((4, 1), 3.0)).shape, head.value(logits).shape
        (torch.Size([4, 1]), torch.Size([4, 1]))
    """

    def __init__(
        self, v_min: float, v_max: float, num_bins: int = 151, sigma_ratio: float = 0.75
    ) -> None:
        super().__init__()
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an integer >= 2, got {num_bins!r}.")
        if not v_max > v_min:
            raise ValueError(f"v_max must be > v_min ({v_min!r}), got {v_max!r}.")
        if not sigma_ratio > 0:
            raise ValueError(f"sigma_ratio must be > 0, got {sigma_ratio!r}.")
        self.v_min, self.v_max, self.num_bins = float(v_min), float(v_max), num_bins
        self.sigma = sigma_ratio * (self.v_max - self.v_min) / (num_bins - 1)
        self.register_buffer(
            "centers", torch.linspace(self.v_min, self.v_max, num_bins), persistent=False
        )

    def target(self, value: torch.Tensor) -> torch.Tensor:
        """``[*B, 1]`` → ``[*B, num_bins]``."""
        return hl_gauss_target(value, self.v_min, self.v_max, self.num_bins, self.sigma)

    def value(self, logits: torch.Tensor) -> torch.Tensor:
        """The expected bin centre, ``[*B, num_bins]`` → ``[*B, 1]``."""
        return (logits.softmax(-1) * self.centers.to(logits.dtype)).sum(-1, keepdim=True)

    def loss(self, logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``logits`` to the HL-Gauss target of ``value``, ``[*B, 1]``."""
        target = self.target(value.detach()).to(logits.dtype)
        return -(target * logits.log_softmax(-1)).sum(-1, keepdim=True)

    def extra_repr(self) -> str:
        return f"v_min={self.v_min}, v_max={self.v_max}, num_bins={self.num_bins}"

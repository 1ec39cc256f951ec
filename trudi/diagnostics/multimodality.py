"""Spread and mode separation of a policy's actions at fixed states, batched over states.

Three diagnostics of ``[S, n, d]`` samples (n actions of d dims at each of S states), for asking
whether a diffusion policy uses its expressiveness:

- :func:`action_spread`: the mean per-dimension standard deviation and the total variance (the
  trace of the covariance);
- :func:`two_means_silhouette`: the silhouette score of a 2-means clustering, (b − a)/max(a, b)
  averaged over the samples (a: mean distance to the own cluster, b: to the other one; Rousseeuw
  1987). Near 1 for two well-separated modes; a single Gaussian cut in two scores lower, and the
  lower the more dimensions (about 0.5 in one dimension, about 0.2 in ten);
- :func:`bimodality_coefficient`: Sarle's coefficient (g² + 1)/(κ + 3(n−1)²/((n−2)(n−3))) of a
  one-dimensional sample, with the sample skewness g and excess kurtosis κ in their bias-corrected
  forms (SAS). 1/3 for a Gaussian, 5/9 for a uniform, towards 1 for two separated modes; above 5/9
  suggests bimodality. :func:`principal_projection` gives the one-dimensional sample along the
  direction of largest variance, where a split into two modes shows first.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trudi.validation import check_int

__all__ = [
    "action_spread",
    "bimodality_coefficient",
    "principal_projection",
    "silhouette_score",
    "two_means",
    "two_means_silhouette",
]


def _check(name: str, samples: object, dims: int, minimum: int) -> Tensor:
    shape = "[S, n, d]" if dims == 3 else "[S, n]"
    if not isinstance(samples, Tensor) or samples.dim() != dims:
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        raise ValueError(f"{name} must be a tensor {shape}, got {got}")
    if not samples.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {samples.dtype}")
    if samples.shape[1] < minimum:
        raise ValueError(f"{name} needs n >= {minimum} samples per state, got {samples.shape[1]}")
    return samples


def action_spread(samples: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean per-dim std, total variance)`` of ``samples`` ``[S, n, d]``, each ``[S]``.

    Example:
        >>> import torch
        >>> std, var = action_spread(2.0 * torch.randn(4, 10_000, 3))
        >>> [round(v, 1) for v in std.tolist()], round(var.mean().item())
        ([2.0, 2.0, 2.0, 2.0], 12)
    """
    samples = _check("samples", samples, 3, 2)
    variance = samples.var(dim=-2)
    return variance.sqrt().mean(-1), variance.sum(-1)


def principal_projection(samples: Tensor) -> Tensor:
    """``samples`` ``[S, n, d]`` centred and projected on their first principal direction, ``[S, n]``."""
    samples = _check("samples", samples, 3, 2)
    centred = samples - samples.mean(-2, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return (centred * vh[:, :1, :]).sum(-1)


def bimodality_coefficient(samples: Tensor) -> Tensor:
    """Sarle's bimodality coefficient of each row of ``samples`` ``[S, n]`` (n ≥ 4), ``[S]``.

    A row without spread has no skewness or kurtosis; its coefficient is NaN.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> gaussian = torch.randn(1, 4000, generator=g)
        >>> two_modes = gaussian + 4.0 * torch.randint(0, 2, (1, 4000), generator=g)
        >>> bc = bimodality_coefficient(torch.cat([gaussian, two_modes]))
        >>> abs(bc[0].item() - 1 / 3) < 0.05, bc[1].item() > 5 / 9
        (True, True)
    """
    samples = _check("samples", samples, 2, 4)
    n = samples.shape[-1]
    centred = samples - samples.mean(-1, keepdim=True)
    m2 = centred.square().mean(-1)
    g1 = centred.pow(3).mean(-1) / m2.pow(1.5)
    g2 = centred.pow(4).mean(-1) / m2.square() - 3.0
    skewness = g1 * (n * (n - 1)) ** 0.5 / (n - 2)
    kurtosis = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0)
    return (skewness.square() + 1.0) / (kurtosis + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def two_means(
    samples: Tensor,
    *,
    iterations: int = 50,
    restarts: int = 4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """2-means (Lloyd) clustering of each state's samples ``[S, n, d]``; labels ``[S, n]`` in {0, 1}.

    Each of ``restarts`` runs starts from a k-means++ seeding (a random sample, then one drawn
    with probability ∝ its squared distance to the first) and takes ``iterations`` Lloyd steps;
    the run with the smallest within-cluster sum of squares is kept. A cluster that empties keeps
    its centre. The seeding's random draws are made on the CPU, with ``generator`` if given.
    """
    samples = _check("samples", samples, 3, 2)
    check_int("iterations", iterations)
    check_int("restarts", restarts)
    states, n, d = samples.shape
    x = samples.unsqueeze(1).expand(states, restarts, n, d).reshape(states * restarts, n, d)
    runs = torch.arange(x.shape[0], device=x.device)
    first = torch.randint(n, (x.shape[0],), generator=generator).to(x.device)
    weight = (x - x[runs, first].unsqueeze(1)).square().sum(-1)
    # All samples equal: any second centre will do.
    weight = torch.where(weight.sum(-1, keepdim=True) > 0, weight, torch.ones_like(weight))
    second = torch.multinomial(weight.cpu(), 1, generator=generator).squeeze(-1).to(x.device)
    centres = torch.stack([x[runs, first], x[runs, second]], dim=1)  # [R, 2, d]
    for _ in range(iterations):
        onehot = torch.nn.functional.one_hot(torch.cdist(x, centres).argmin(-1), 2).to(x.dtype)
        counts = onehot.sum(1).unsqueeze(-1)  # [R, 2, 1]
        means = (onehot.transpose(1, 2) @ x) / counts.clamp_min(1)
        centres = torch.where(counts > 0, means, centres)
    distance = torch.cdist(x, centres)
    inertia = distance.amin(-1).square().sum(-1).reshape(states, restarts)
    labels = distance.argmin(-1).reshape(states, restarts, n)
    return labels[torch.arange(states, device=x.device), inertia.argmin(-1)]


def silhouette_score(samples: Tensor, labels: Tensor) -> Tensor:
    """Mean silhouette of a two-cluster labelling, per state: ``samples`` ``[S, n, d]``,
    ``labels`` ``[S, n]`` in {0, 1}; returns ``[S]``.

    A sample alone in its cluster scores 0 (Rousseeuw's convention), as does every sample of a
    state whose samples all coincide. Memory: ``[S, n, n]`` distances.
    """
    samples = _check("samples", samples, 3, 2)
    if not isinstance(labels, Tensor) or labels.shape != samples.shape[:2]:
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a tensor [S, n] = {tuple(samples.shape[:2])}, got {got}")
    distance = torch.cdist(samples, samples)
    onehot = torch.nn.functional.one_hot(labels.long(), 2).to(samples.dtype)  # [S, n, 2]
    sums = distance @ onehot  # [S, n, 2]: summed distance to each cluster
    counts = onehot.sum(1, keepdim=True)  # [S, 1, 2]
    own_count = (counts * onehot).sum(-1)
    other_count = (counts * (1 - onehot)).sum(-1)
    a = (sums * onehot).sum(-1) / (own_count - 1).clamp_min(
        1
    )  # the sample's own 0 distance drops out
    b = (sums * (1 - onehot)).sum(-1) / other_count.clamp_min(1)
    score = (b - a) / torch.maximum(a, b).clamp_min(torch.finfo(samples.dtype).tiny)
    score = torch.where((own_count > 1) & (other_count > 0), score, torch.zeros_like(score))
    return score.mean(-1)


def two_means_silhouette(
    samples: Tensor, *, restarts: int = 4, generator: torch.Generator | None = None
) -> Tensor:
    """The silhouette score (:func:`silhouette_score`) of :func:`two_means` on ``samples``
    ``[S, n, d]``, ``[S]``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> gaussian = torch.randn(1, 1000, 4, generator=g)
        >>> two_modes = gaussian + 8.0 * torch.randint(0, 2, (1, 1000, 1), generator=g)
        >>> two_means_silhouette(gaussian, generator=g) < 0.3, two_means_silhouette(two_modes, generator=g) > 0.6
        (tensor([True]), tensor([True]))
    """
    return silhouette_score(samples, two_means(samples, restarts=restarts, generator=generator))

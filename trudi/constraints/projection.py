"""Trust-region projection of diffusion-chain transitions onto a (trajectory) KL ball.

The network's transitions ``(loc, scale)`` at a recorded chain are mapped to the closest
``(loc~, scale~)`` whose divergence to the behaviour transitions ``(old_loc, old_scale)`` satisfies
a mean bound ε_μ and a covariance bound ε_Σ (``docs/design.md``, "Projection"):

- ``mode="trajectory"``: one bound on the sum over all K steps of a chain, one multiplier per chain;
- ``mode="per_step"``: one bound per transition.

Which quantity is bounded: with ``divergence="kl"`` the mean part ``½ Σ (μ - μ_o)²/σ_o²`` and the
covariance part of KL(new ‖ old) are bounded separately (TRPL's decoupled KL). With shared scales
(``cov_bound=None`` and ``scale == old_scale``) their sum is the exact trajectory KL in both
directions, so ``mean_bound`` bounds KL(p_old(τ) ‖ p_new(τ)) and hence the marginal action KL. With
learned scales the exact KL(old ‖ new) is logged by :func:`projection_metrics` rather than bounded.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

import torch
from torch import Tensor, nn

from trudi.constraints.base import (
    BACKENDS,
    DIVERGENCES,
    MODES,
    Backend,
    Divergence,
    Mode,
    Projection,
    row_dims,
)
from trudi.constraints.divergences import cov_terms, interpolate_scale, mean_terms
from trudi.constraints.gaussian_kl import exact_trajectory_kl
from trudi.constraints.kl_cov_projection import kl_cov_projection
from trudi.validation import (
    check_bound,
    check_choice,
    check_int,
    check_scales_positive,
    check_transitions,
)

__all__ = [
    "PROJECT_BACKENDS",
    "Projection",
    "TrajectoryKLProjection",
    "project_transitions",
    "projection_metrics",
]


@functools.cache
def triton_available() -> bool:
    """Whether Triton is installed (the kernels are imported only when first used)."""
    return importlib.util.find_spec("triton") is not None


def _shrink_factor(term: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """``s = sqrt(bound/term)`` where ``term > bound`` else 1, and the multiplier ``1/s - 1``.

    The masked ``term`` keeps the unused branch finite, so no NaN reaches the gradient.
    """
    active = term > bound
    safe = torch.where(active, term, torch.full_like(term, bound))
    factor = (bound / safe).sqrt()
    multiplier = torch.where(active, (safe / bound).sqrt() - 1.0, torch.zeros_like(term))
    return factor, multiplier


def project_transitions(
    loc: Tensor,
    scale: Tensor,
    old_loc: Tensor,
    old_scale: Tensor,
    *,
    mean_bound: float,
    cov_bound: float | None = None,
    divergence: Divergence = "kl",
    mode: Mode = "trajectory",
    solver_iterations: int = 8,
) -> Projection:
    """Functional form of :class:`TrajectoryKLProjection` (torch reference, no input checks).

    Half-precision inputs are computed in float32 and cast back. Scales that broadcast to
    ``loc`` (``[1, K, A]`` for state-independent ones) are projected on their own broadcast
    shape, each distinct row once, and the result is expanded to ``loc``'s shape (a view).
    """
    dtype = loc.dtype
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    loc, scale, old_loc, old_scale = (x.to(compute) for x in (loc, scale, old_loc, old_scale))
    scale, old_scale = torch.broadcast_tensors(scale, old_scale)
    dims = row_dims(mode)

    mean_term = mean_terms(divergence, loc, old_loc, old_scale).sum(dims, keepdim=True)
    factor, mean_multiplier = _shrink_factor(mean_term, mean_bound)
    loc_proj = old_loc + factor * (loc - old_loc)

    if cov_bound is None:
        scale_proj, cov_multiplier = scale, torch.zeros_like(mean_multiplier)
    elif divergence == "kl":
        scale_proj, cov_multiplier = kl_cov_projection(
            scale, old_scale, cov_bound, dims, solver_iterations
        )
    else:
        cov_term = cov_terms(divergence, scale, old_scale).sum(dims, keepdim=True)
        cov_factor, cov_multiplier = _shrink_factor(cov_term, cov_bound)
        scale_proj = interpolate_scale(divergence, scale, old_scale, cov_factor)

    mean_multiplier = mean_multiplier.flatten(-len(dims)).squeeze(-1)
    cov_multiplier = cov_multiplier.flatten(-len(dims)).squeeze(-1)
    return Projection(
        loc_proj.to(dtype),
        scale_proj.to(dtype).expand_as(loc_proj),
        mean_multiplier,
        cov_multiplier.expand_as(mean_multiplier),
    )


def _triton_project_transitions(*args, **kwargs) -> Projection:
    # Imported on first use: importing the package decorates the kernels, which is when Triton
    # reads TRITON_INTERPRET, and the torch path must not need Triton at all.
    from trudi.constraints import triton

    loc, scale, old_loc, old_scale = args  # the kernels take rows of one shape
    scale, old_scale = scale.expand_as(loc), old_scale.expand_as(loc)
    return triton.project_transitions(loc, scale, old_loc, old_scale, **kwargs)


#: One function per backend, all with :func:`project_transitions`' signature.
PROJECT_BACKENDS: dict[str, Callable[..., Projection]] = {
    "torch": project_transitions,
    "triton": _triton_project_transitions,
}


class TrajectoryKLProjection(nn.Module):
    """Differentiable trust-region layer on the transitions of diffusion chains.

    Args:
        mean_bound: ε_μ > 0, the bound on the mean part (per chain or per transition).
        cov_bound: ε_Σ > 0, the bound on the covariance part; ``None`` leaves the scales untouched
            (shared or fixed scales).
        divergence: ``"kl"`` (TRPL's decoupled KL, covariance by a 1-D root find with an implicit
            backward), ``"w2"`` or ``"frobenius"`` (closed form). See
            :mod:`trudi.constraints.divergences` for the terms each one bounds.
        mode: ``"trajectory"`` bounds the sum over the K steps of each chain (one multiplier per
            chain); ``"per_step"`` bounds every transition.
        backend: ``"auto"`` (Triton kernels on CUDA tensors when available, the torch reference
            otherwise), ``"torch"`` or ``"triton"`` (the fused kernels of
            :mod:`trudi.constraints.triton`; on CPU they need ``TRITON_INTERPRET=1``; ImportError
            here if Triton is not installed).
        solver_iterations: fixed number of Newton steps of the KL covariance root find.
        validate_args: check that scales are finite and positive (this synchronises with the
            device; switch it off in compiled or latency-critical code).

    Shapes:
        ``forward(loc, scale, old_loc, old_scale)``: all ``[*B, K, A]``; returns
        ``(loc_proj, scale_proj)``, ``[*B, K, A]``. Gradients flow to ``loc`` and ``scale`` (and to
        the behaviour parameters, which are normally constants). The scales may instead broadcast
        to ``[*B, K, A]`` (``[1, K, A]`` for state-independent scales under one behaviour policy):
        the torch backend then solves the covariance part once per distinct row, which is most of
        the projection's cost, and ``scale_proj`` is its expansion to ``[*B, K, A]``.

    Example:
        >>> import torch
        >>> from trudi.constraints import TrajectoryKLProjection, trajectory_kl
        >>> proj = TrajectoryKLProjection(mean_bound=0.05, cov_bound=0.01)
        >>> old_loc, old_scale = torch.zeros(8, 10, 3), torch.full((8, 10, 3), 0.5)
        >>> loc, scale = old_loc + 1.0, old_scale * 2.0
        >>> loc_p, scale_p = proj(loc, scale, old_loc, old_scale)
        >>> mean_kl, cov_kl = trajectory_kl(loc_p, scale_p, old_loc, old_scale)
        >>> bool((mean_kl <= 0.05 * 1.001).all() and (cov_kl <= 0.01 * 1.001).all())
        True
    """

    def __init__(
        self,
        mean_bound: float,
        cov_bound: float | None = None,
        *,
        divergence: Divergence = "kl",
        mode: Mode = "trajectory",
        backend: Backend = "auto",
        solver_iterations: int = 8,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        check_bound("mean_bound", mean_bound)
        check_bound("cov_bound", cov_bound, optional=True)
        check_choice("divergence", divergence, DIVERGENCES)
        check_choice("mode", mode, MODES)
        check_choice("backend", backend, BACKENDS)
        check_int("solver_iterations", solver_iterations)
        self.mean_bound = float(mean_bound)
        self.cov_bound = None if cov_bound is None else float(cov_bound)
        self.divergence = divergence
        self.mode = mode
        self.backend = backend
        self.solver_iterations = solver_iterations
        self.validate_args = validate_args
        if backend == "triton" and not triton_available():
            raise ImportError(
                "backend='triton' needs the triton package (pip install triton, or trudi[dev]); "
                "use backend='auto' or 'torch' for the torch reference"
            )

    def extra_repr(self) -> str:
        return (
            f"mean_bound={self.mean_bound}, cov_bound={self.cov_bound}, "
            f"divergence={self.divergence!r}, mode={self.mode!r}, backend={self.backend!r}"
        )

    def project(self, loc: Tensor, scale: Tensor, old_loc: Tensor, old_scale: Tensor) -> Projection:
        """Project and also return the multipliers (see :class:`Projection`)."""
        check_transitions(loc, scale, old_loc, old_scale)
        if self.validate_args:
            check_scales_positive(scale=scale, old_scale=old_scale)
        backend = self.backend
        if backend == "auto":
            backend = "triton" if loc.is_cuda and triton_available() else "torch"
        return PROJECT_BACKENDS[backend](
            loc,
            scale,
            old_loc,
            old_scale,
            mean_bound=self.mean_bound,
            cov_bound=self.cov_bound,
            divergence=self.divergence,
            mode=self.mode,
            solver_iterations=self.solver_iterations,
        )

    def forward(
        self, loc: Tensor, scale: Tensor, old_loc: Tensor, old_scale: Tensor
    ) -> tuple[Tensor, Tensor]:
        projection = self.project(loc, scale, old_loc, old_scale)
        return projection.loc, projection.scale

    def penalty(
        self, loc: Tensor, scale: Tensor, target_loc: Tensor, target_scale: Tensor
    ) -> Tensor:
        """The projection's divergence from ``(loc, scale)`` to a target, summed per chain, ``[*B]``.

        Mean term plus covariance term of :attr:`divergence`, with the target in the reference
        role, summed over the K steps and A dims in either mode. With the stop-gradient projected
        transitions as target this is TruDi's trust-region term, which pulls the network onto its
        projection. All four ``[*B, K, A]``; differentiable in every argument.
        """
        mean = mean_terms(self.divergence, loc, target_loc, target_scale)
        return (mean + cov_terms(self.divergence, scale, target_scale)).sum((-2, -1))

    def metrics(
        self,
        loc: Tensor,
        scale: Tensor,
        old_loc: Tensor,
        old_scale: Tensor,
        projection: Projection,
    ) -> dict[str, Tensor]:
        """Detached scalar diagnostics of one projection; see :func:`projection_metrics`."""
        return projection_metrics(
            loc, scale, old_loc, old_scale, projection, divergence=self.divergence, mode=self.mode
        )


@torch.no_grad()
def projection_metrics(
    loc: Tensor,
    scale: Tensor,
    old_loc: Tensor,
    old_scale: Tensor,
    projection: Projection,
    *,
    divergence: Divergence = "kl",
    mode: Mode = "trajectory",
) -> dict[str, Tensor]:
    """Cheap detached diagnostics of a projection, one scalar tensor each (no host sync).

    The names are the ones :class:`~trudi.learners.TruDiLoss` logs:

    - ``kl_trajectory_before``, ``kl_trajectory_after``: the mean exact trajectory KL(old ‖ new)
      per chain (in both modes) before and after projection;
    - ``kl_mean_part_before``, ``kl_mean_part_after``, ``kl_cov_part_before``,
      ``kl_cov_part_after``: the row-mean of the bounded mean and covariance terms of
      ``divergence`` (the KL's parts for ``"kl"``, the W2 or Frobenius terms otherwise);
    - ``frac_projected``: the fraction of rows projected (chains in trajectory mode, transitions
      in per-step mode); ``max_multiplier``: the largest multiplier, over ω and η.
    """
    dims = row_dims(mode)
    before_mean = mean_terms(divergence, loc, old_loc, old_scale).sum(dims)
    after_mean = mean_terms(divergence, projection.loc, old_loc, old_scale).sum(dims)
    before_cov = cov_terms(divergence, scale, old_scale).sum(dims)
    after_cov = cov_terms(divergence, projection.scale, old_scale).sum(dims)
    projected = (projection.mean_multiplier > 0) | (projection.cov_multiplier > 0)
    multipliers = torch.maximum(projection.mean_multiplier, projection.cov_multiplier)
    exact_after = exact_trajectory_kl(old_loc, old_scale, projection.loc, projection.scale)
    return {
        "kl_trajectory_before": exact_trajectory_kl(old_loc, old_scale, loc, scale).float().mean(),
        "kl_trajectory_after": exact_after.float().mean(),
        "kl_mean_part_before": before_mean.float().mean(),
        "kl_mean_part_after": after_mean.float().mean(),
        "kl_cov_part_before": before_cov.float().mean(),
        "kl_cov_part_after": after_cov.float().mean(),
        "frac_projected": projected.float().mean(),
        "max_multiplier": multipliers.float().max(),
    }

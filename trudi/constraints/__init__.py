"""Gaussian and trajectory KL divergences and trust-region projection layers.

The torch implementation here is the reference and the spec (``docs/design.md``, "Backends").

    from trudi.constraints import TrajectoryKLProjection
"""

from trudi.constraints.adaptive_bound import AdaptiveBound
from trudi.constraints.base import DIVERGENCES, Divergence
from trudi.constraints.gaussian_kl import (
    exact_gaussian_kl,
    exact_trajectory_kl,
    gaussian_kl,
    trajectory_kl,
)
from trudi.constraints.kl_cov_projection import kl_cov_projection
from trudi.constraints.projection import (
    Projection,
    TrajectoryKLProjection,
    project_transitions,
    projection_metrics,
)

__all__ = [
    "DIVERGENCES",
    "AdaptiveBound",
    "Divergence",
    "Projection",
    "TrajectoryKLProjection",
    "exact_gaussian_kl",
    "exact_trajectory_kl",
    "gaussian_kl",
    "kl_cov_projection",
    "project_transitions",
    "projection_metrics",
    "trajectory_kl",
]

"""Gaussian and trajectory KL divergences and trust-region projection layers.

The torch implementation here is the reference and the spec (DESIGN.md §4).

    from trudi.constraints import TrajectoryKLProjection
"""

from trudi.constraints.divergences import DIVERGENCES
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
from trudi.constraints.tensordict_module import TrajectoryKLProjectionModule

__all__ = [
    "DIVERGENCES",
    "Projection",
    "TrajectoryKLProjection",
    "TrajectoryKLProjectionModule",
    "exact_gaussian_kl",
    "exact_trajectory_kl",
    "gaussian_kl",
    "kl_cov_projection",
    "project_transitions",
    "projection_metrics",
    "trajectory_kl",
]

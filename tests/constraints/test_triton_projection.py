"""Triton projection kernels against the torch reference (CPU: Triton interpreter).

Tolerances (stated in the module docstring of ``trudi.constraints.triton``): float32 forward and
backward agree with the reference to 1e-5 relative (gradients with an absolute floor of 1e-5 of
their largest entry, for entries that are differences of larger terms); bfloat16 outputs to 2 ulp
(1e-2 relative) as both sides round the same float32 result; float64 through ``gradcheck``.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    # Triton reads this when the kernels are decorated, i.e. at the first import below.
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from tests.constraints.projection_contract import ProjectionContract, make_transitions  # noqa: E402
from trudi.constraints import TrajectoryKLProjection, project_transitions  # noqa: E402
from trudi.constraints import projection as projection_module  # noqa: E402
from trudi.constraints import triton as triton_kernels  # noqa: E402
from trudi.constraints.divergences import cov_terms  # noqa: E402


class TestTritonKLProjection(ProjectionContract):
    divergence = "kl"
    backend = "triton"

    def cov_distance(self, scale_a, scale_b, old_scale):
        return cov_terms("kl", scale_a, scale_b)


class TestTritonW2Projection(ProjectionContract):
    divergence = "w2"
    backend = "triton"

    def cov_distance(self, scale_a, scale_b, old_scale):
        return ((scale_a - scale_b) / old_scale).square()


class TestTritonFrobeniusProjection(ProjectionContract):
    divergence = "frobenius"
    backend = "triton"

    def cov_distance(self, scale_a, scale_b, old_scale):
        return (scale_a.square() - scale_b.square()).square()

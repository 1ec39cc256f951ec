"""Torch-reference projections: every divergence passes the shared projection contract."""

from __future__ import annotations

import pytest
import torch

from tests.constraints.projection_contract import ProjectionContract, make_transitions
from trudi.constraints import (
    TrajectoryKLProjection,
    projection_metrics,
    trajectory_kl,
)
from trudi.constraints.divergences import cov_terms


class TestKLProjection(ProjectionContract):
    divergence = "kl"

    def cov_distance(self, scale_a, scale_b, old_scale):
        # TRPL's primal: the KL from the candidate to the network's covariance.
        return cov_terms("kl", scale_a, scale_b)


class TestW2Projection(ProjectionContract):
    divergence = "w2"

    def cov_distance(self, scale_a, scale_b, old_scale):
        return ((scale_a - scale_b) / old_scale).square()


class TestFrobeniusProjection(ProjectionContract):
    divergence = "frobenius"

    def cov_distance(self, scale_a, scale_b, old_scale):
        return (scale_a.square() - scale_b.square()).square()


def test_kl_bounds_hit_exactly_in_trajectory_mode():
    loc, scale, old_loc, old_scale = make_transitions(11, (32, 10, 21), torch.float64)
    out_loc, out_scale = TrajectoryKLProjection(0.05, 0.01)(loc, scale, old_loc, old_scale)
    mean_kl, cov_kl = trajectory_kl(out_loc, out_scale, old_loc, old_scale)
    torch.testing.assert_close(mean_kl, torch.full_like(mean_kl, 0.05), rtol=1e-9, atol=0)
    # The root find converges within its fixed number of steps (table in kl_cov_projection).
    torch.testing.assert_close(cov_kl, torch.full_like(cov_kl, 0.01), rtol=1e-12, atol=0)


def test_per_step_mode_uses_one_multiplier_per_transition():
    loc, scale, old_loc, old_scale = make_transitions(12, (8, 5, 3), torch.float64)
    projection = TrajectoryKLProjection(0.05, 0.01, mode="per_step").project(
        loc, scale, old_loc, old_scale
    )
    assert projection.mean_multiplier.shape == (8, 5)
    assert projection.cov_multiplier.shape == (8, 5)
    trajectory = TrajectoryKLProjection(0.05, 0.01).project(loc, scale, old_loc, old_scale)
    assert trajectory.mean_multiplier.shape == (8,)


def test_metrics_report_before_and_after():
    loc, scale, old_loc, old_scale = make_transitions(13, (64, 4, 3), torch.float64)
    layer = TrajectoryKLProjection(0.05, 0.01)
    projection = layer.project(loc, scale, old_loc, old_scale)
    metrics = layer.metrics(loc, scale, old_loc, old_scale, projection)
    assert set(metrics) == {
        "kl_mean_part_before",
        "kl_mean_part_after",
        "kl_cov_part_before",
        "kl_cov_part_after",
        "kl_trajectory_before",
        "kl_trajectory_after",
        "frac_projected",
        "max_multiplier",
    }
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())
    assert metrics["kl_mean_part_after"] <= 0.05 * (1 + 1e-6) < metrics["kl_mean_part_before"]
    assert metrics["kl_cov_part_after"] <= 0.01 * (1 + 1e-6) < metrics["kl_cov_part_before"]
    assert metrics["kl_trajectory_after"] < metrics["kl_trajectory_before"]
    expected_frac = ((projection.mean_multiplier > 0) | (projection.cov_multiplier > 0)).float()
    assert metrics["frac_projected"] == expected_frac.mean()
    assert 0 < metrics["frac_projected"] <= 1
    unchanged = projection_metrics(
        loc,
        scale,
        loc,
        scale,
        projection._replace(
            loc=loc,
            scale=scale,
            mean_multiplier=torch.zeros(64, dtype=torch.float64),
            cov_multiplier=torch.zeros(64, dtype=torch.float64),
        ),
    )
    assert unchanged["frac_projected"] == 0 and unchanged["kl_trajectory_before"] == 0


def test_penalty_is_the_exact_kl_to_the_target():
    # With the target in the reference role, the decoupled KL's two parts sum to the exact
    # KL(current ‖ target): torch.distributions is an independent oracle.
    loc, scale, target_loc, target_scale = make_transitions(14, (6, 4, 3), torch.float64)
    layer = TrajectoryKLProjection(0.05, 0.01)
    penalty = layer.penalty(loc, scale, target_loc, target_scale)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(loc, scale), torch.distributions.Normal(target_loc, target_scale)
    ).sum((-2, -1))
    assert penalty.shape == (6,)
    torch.testing.assert_close(penalty, expected)
    assert (layer.penalty(loc, scale, loc, scale) == 0).all()


@pytest.mark.parametrize("divergence", ["w2", "frobenius"])
def test_penalty_sums_the_divergence_terms(divergence):
    loc, scale, target_loc, target_scale = make_transitions(15, (6, 4, 3), torch.float64)
    layer = TrajectoryKLProjection(0.05, 0.01, divergence=divergence, mode="per_step")
    mahalanobis = ((loc - target_loc) / target_scale).square()
    if divergence == "w2":
        cov = (1 - scale / target_scale).square()
    else:
        cov = (scale.square() - target_scale.square()).square()
    expected = (mahalanobis + cov).sum((-2, -1))
    torch.testing.assert_close(layer.penalty(loc, scale, target_loc, target_scale), expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mean_bound": 0.0}, "mean_bound"),
        ({"mean_bound": -1.0}, "mean_bound"),
        ({"mean_bound": float("nan")}, "mean_bound"),
        ({"mean_bound": 0.1, "cov_bound": 0.0}, "cov_bound"),
        ({"mean_bound": 0.1, "cov_bound": float("inf")}, "cov_bound"),
        ({"mean_bound": 0.1, "divergence": "js"}, "divergence"),
        ({"mean_bound": 0.1, "mode": "chain"}, "mode"),
        ({"mean_bound": 0.1, "backend": "cuda"}, "backend"),
        ({"mean_bound": 0.1, "solver_iterations": 0}, "solver_iterations"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrajectoryKLProjection(**kwargs)


def test_bad_inputs_name_the_argument():
    layer = TrajectoryKLProjection(0.1, 0.1)
    loc = torch.zeros(4, 3, 2)
    scale = torch.ones(4, 3, 2)
    with pytest.raises(ValueError, match=r"old_scale must have the shape of loc \(4, 3, 2\)"):
        layer(loc, scale, loc, torch.ones(4, 3, 3))
    with pytest.raises(ValueError, match=r"scale must .* or one that broadcasts to it"):
        layer(loc, torch.ones(2, 3, 2), loc, scale)  # 2 rows do not broadcast to 4
    layer(loc, torch.ones(1, 3, 2), loc, torch.ones(3, 2))  # state-independent scales broadcast
    with pytest.raises(ValueError, match="loc must have shape"):
        layer(torch.zeros(3), scale, loc, scale)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        layer(loc, scale.clone().fill_(-1.0), loc, scale)
    with pytest.raises(ValueError, match="old_scale must be finite and > 0"):
        layer(loc, scale, loc, scale.clone().fill_(float("nan")))
    # With validate_args=False the check (and its device sync) is skipped.
    TrajectoryKLProjection(0.1, validate_args=False)(loc, scale.clone().fill_(-1.0), loc, scale)

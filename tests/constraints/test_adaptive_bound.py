"""AdaptiveBound: the multiplicative rule, its range, its checkpoint, and a projection that obeys it."""

from __future__ import annotations

import io
import math

import pytest
import torch

from trudi.constraints import AdaptiveBound, TrajectoryKLProjection, trajectory_kl


def test_rule_widens_keeps_and_tightens():
    rule = AdaptiveBound(target=0.1, factor=2.0, tolerance=1.5)
    assert rule.step(0.1 / 1.6) == 2.0  # below target / tolerance
    assert rule.step(0.1 / 1.4) == 2.0  # inside the band
    assert rule.step(0.1 * 1.4) == 2.0
    assert rule.step(0.1 * 1.6) == 1.0  # above target · tolerance
    assert rule.step(1.0) == 0.5


def test_scale_is_clamped_to_its_range():
    rule = AdaptiveBound(target=0.1, factor=1.5, min_scale=0.5, max_scale=2.0)
    for _ in range(10):
        rule.step(0.0)
    assert rule.scale == 2.0
    for _ in range(10):
        rule.step(10.0)
    assert rule.scale == 0.5


@pytest.mark.parametrize("measured", [math.nan, math.inf, -math.inf])
def test_non_finite_measurement_changes_nothing(measured):
    rule = AdaptiveBound(target=0.1)
    rule.step(0.0)
    assert rule.step(measured) == 1.5


def test_checkpoint_round_trip_continues_exactly():
    measurements = [0.01, 0.02, 0.3, 0.05, 0.001, 0.2]
    rule = AdaptiveBound(target=0.05, factor=1.3, max_scale=4.0)
    for value in measurements[:3]:
        rule.step(value)
    buffer = io.BytesIO()
    torch.save(rule.state_dict(), buffer)
    buffer.seek(0)
    resumed = AdaptiveBound(target=0.05, factor=1.3, max_scale=4.0)
    resumed.load_state_dict(torch.load(buffer))
    assert resumed.scale == rule.scale
    assert [resumed.step(v) for v in measurements[3:]] == [rule.step(v) for v in measurements[3:]]


def test_load_refuses_another_rule_or_an_out_of_range_scale():
    state = AdaptiveBound(target=0.05).state_dict()
    with pytest.raises(ValueError, match="saved rule has settings"):
        AdaptiveBound(target=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="scale must lie in"):
        AdaptiveBound(target=0.05).load_state_dict({**state, "scale": 20.0})


@pytest.mark.parametrize("cov_bound", [0.01, None])
def test_projection_uses_the_adapted_bounds(cov_bound):
    """Transitions far outside the region land on its boundary: after widening once (x1.5),
    the projected mean part is 1.5 times the configured bound, and so is the covariance part."""
    old_loc, old_scale = torch.zeros(4, 5, 3, dtype=torch.float64), torch.ones(4, 5, 3).double()
    loc, scale = old_loc + 1.0, old_scale * (2.0 if cov_bound else 1.0)
    projection = TrajectoryKLProjection(0.05, cov_bound, solver_iterations=30)
    rule = AdaptiveBound(target=0.1)
    rule.step(0.0)
    rule.apply(projection, mean_bound=0.05, cov_bound=cov_bound)
    assert projection.mean_bound == pytest.approx(0.075)
    mean_kl, cov_kl = trajectory_kl(*projection(loc, scale, old_loc, old_scale), old_loc, old_scale)
    torch.testing.assert_close(mean_kl, torch.full_like(mean_kl, 0.075))
    if cov_bound is None:
        assert projection.cov_bound is None and torch.equal(cov_kl, torch.zeros_like(cov_kl))
    else:
        torch.testing.assert_close(cov_kl, torch.full_like(cov_kl, 0.015))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 0.0}, "target must be a positive"),
        ({"target": 0.1, "factor": 1.0}, "factor must be > 1"),
        ({"target": 0.1, "tolerance": 0.9}, "tolerance must be >= 1"),
        ({"target": 0.1, "min_scale": 2.0}, "min_scale <= 1 <= max_scale"),
        ({"target": 0.1, "max_scale": 0.5}, "min_scale <= 1 <= max_scale"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveBound(**kwargs)


def test_apply_checks_the_bounds():
    with pytest.raises(ValueError, match="mean_bound must be a positive"):
        AdaptiveBound(target=0.1).apply(TrajectoryKLProjection(0.1), mean_bound=-1.0)

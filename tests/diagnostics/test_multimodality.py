"""The multimodality metrics on hand-worked samples and on synthetic unimodal / bimodal ones.

Thresholds for the random samples (n = 1,000, fixed seeds) lie several standard deviations from
the values each metric takes there (measured over 16 states: Sarle's coefficient of a Gaussian
0.33 ± 0.02, at most 0.37; of two unit-variance modes 6 apart at least 0.70; the 2-means
silhouette of a 2-D Gaussian 0.31 ± 0.01, at most 0.33, of two modes 8 apart at least 0.77), so they separate the
cases without sitting on a noisy edge.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from trudi.diagnostics import (
    action_spread,
    bimodality_coefficient,
    principal_projection,
    silhouette_score,
    two_means,
    two_means_silhouette,
)


def bimodal(states: int, n: int, d: int, separation: float, seed: int) -> torch.Tensor:
    """Two equal modes N(0, I) and N(separation · e_1, I)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(states, n, d, generator=g, dtype=torch.float64)
    x[..., 0] += separation * torch.randint(0, 2, (states, n), generator=g)
    return x


def sarle_by_hand(values: list[float]) -> float:
    """Sarle's coefficient from its definition (SAS's bias-corrected skewness and kurtosis)."""
    n = len(values)
    mean = statistics.fmean(values)
    m2, m3, m4 = (statistics.fmean((v - mean) ** p for v in values) for p in (2, 3, 4))
    g = (n * (n - 1)) ** 0.5 / (n - 2) * m3 / m2**1.5
    kappa = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2**2 - 3) + 6)
    return (g * g + 1) / (kappa + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def test_spread_of_a_hand_worked_sample():
    samples = torch.tensor([[[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]]])
    std, variance = action_spread(samples)
    # Per-dim unbiased variances: 4 and 3.
    torch.testing.assert_close(variance, torch.tensor([7.0]))
    torch.testing.assert_close(std, torch.tensor([(2.0 + 3.0**0.5) / 2]))


def test_bimodality_coefficient_against_its_definition():
    g = torch.Generator().manual_seed(1)
    samples = torch.cat([torch.randn(1, 50, generator=g).exp(), torch.randn(1, 50, generator=g)])
    samples = samples.double()
    expected = torch.tensor([sarle_by_hand(row.tolist()) for row in samples], dtype=torch.float64)
    torch.testing.assert_close(bimodality_coefficient(samples), expected)


def test_two_point_sample_is_maximally_bimodal():
    """±1, half each: no skew, excess kurtosis −2, so the coefficient tends to 1 (0.951 at n = 100)."""
    samples = torch.tensor([[-1.0, 1.0] * 50], dtype=torch.float64)
    assert bimodality_coefficient(samples).item() == pytest.approx(sarle_by_hand([-1.0, 1.0] * 50))
    assert bimodality_coefficient(samples).item() > 0.95


def test_gaussian_low_and_two_modes_high():
    gaussian = bimodal(16, 1000, 3, separation=0.0, seed=2)
    two_modes = bimodal(16, 1000, 3, separation=6.0, seed=3)
    bc_gaussian = bimodality_coefficient(principal_projection(gaussian))
    bc_modes = bimodality_coefficient(principal_projection(two_modes))
    assert (bc_gaussian < 5 / 9).all() and abs(bc_gaussian.mean().item() - 1 / 3) < 0.03
    assert (bc_modes > 5 / 9).all()


def test_principal_projection_finds_the_widest_direction():
    g = torch.Generator().manual_seed(4)
    direction = torch.tensor([0.6, 0.8, 0.0], dtype=torch.float64)
    x = 0.1 * torch.randn(2, 500, 3, generator=g, dtype=torch.float64)
    coordinate = 3.0 * torch.randn(2, 500, 1, generator=g, dtype=torch.float64)
    x = x + coordinate * direction
    projected = principal_projection(x)
    assert projected.shape == (2, 500)
    centred = coordinate.squeeze(-1) - coordinate.squeeze(-1).mean(-1, keepdim=True)
    correlation = (projected * centred).sum(-1) / (projected.norm(dim=-1) * centred.norm(dim=-1))
    assert (correlation.abs() > 0.999).all()


def test_silhouette_of_a_hand_worked_labelling():
    """1-D points 0, 1, 10, 11 in clusters {0, 1}, {10, 11}: a = 1 for each, b = 10.5 or 9.5."""
    samples = torch.tensor([[[0.0], [1.0], [10.0], [11.0]]], dtype=torch.float64)
    labels = torch.tensor([[0, 0, 1, 1]])
    expected = (2 * (9.5 / 10.5) + 2 * (8.5 / 9.5)) / 4
    torch.testing.assert_close(silhouette_score(samples, labels), torch.tensor([expected]).double())


def test_two_means_recovers_separated_clusters():
    samples = bimodal(4, 300, 2, separation=12.0, seed=5)
    labels = two_means(samples, generator=torch.Generator().manual_seed(0))
    truth = samples[..., 0] > 6.0
    agree = (labels.bool() == truth).float().mean(-1)
    assert ((agree == 1) | (agree == 0)).all()


def test_silhouette_gaussian_low_and_two_modes_high():
    g = torch.Generator().manual_seed(6)
    gaussian = two_means_silhouette(bimodal(16, 1000, 2, 0.0, seed=7), generator=g)
    modes = two_means_silhouette(bimodal(16, 1000, 2, 8.0, seed=8), generator=g)
    assert (gaussian < 0.4).all() and (modes > 0.7).all()


def test_clusterings_are_reproducible_with_a_generator():
    samples = bimodal(3, 200, 2, 2.0, seed=9)
    first = two_means(samples, generator=torch.Generator().manual_seed(1))
    again = two_means(samples, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again)


def test_samples_without_spread():
    samples = torch.ones(2, 10, 3)
    std, variance = action_spread(samples)
    assert torch.equal(std, torch.zeros(2)) and torch.equal(variance, torch.zeros(2))
    assert torch.equal(two_means_silhouette(samples), torch.zeros(2))
    assert bimodality_coefficient(samples[..., 0]).isnan().all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: action_spread(torch.randn(10, 3)), "samples must be a tensor \\[S, n, d\\]"),
        (lambda: bimodality_coefficient(torch.randn(2, 3)), "needs n >= 4"),
        (
            lambda: bimodality_coefficient(torch.randn(2, 5, 1)),
            "samples must be a tensor \\[S, n\\]",
        ),
        (
            lambda: silhouette_score(torch.randn(2, 5, 1), torch.zeros(2, 4)),
            "labels must be a tensor \\[S, n\\]",
        ),
        (lambda: two_means(torch.randn(2, 5, 1), restarts=0), "restarts must be an integer"),
        (lambda: action_spread(torch.ones(2, 5, 1, dtype=torch.long)), "floating-point"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()

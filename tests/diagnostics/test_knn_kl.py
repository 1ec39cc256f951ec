"""The k-NN KL estimator against analytic Gaussian KLs, at zero, under affine maps, on bad input.

Every accuracy test averages S independent replicates (one "state" each, batched) and allows
4 standard errors of that mean, computed from the replicates themselves: a correct estimator
fails one such check with probability ~6e-5. Beyond the noise, the allowance is the estimator's
finite-sample bias documented in ``trudi/diagnostics/knn_kl.py``: none beyond 5% of the KL in one
and two dimensions, a factor of two either way up to 17 dimensions.
"""

from __future__ import annotations

import math

import pytest
import torch

from trudi.diagnostics import knn_kl

STATES, SAMPLES = 32, 300


def gaussian_kl(m_p, s_p, m_q, s_q) -> float:
    """KL(N(m_p, diag s_p²) ‖ N(m_q, diag s_q²))."""
    return float((torch.log(s_q / s_p) + (s_p**2 + (m_p - m_q) ** 2) / (2 * s_q**2) - 0.5).sum())


def pair(d: int, kind: str, seed: int):
    """Samples ``[S, n, d]`` of p and q and their true KL: "shift" (KL 0.5) or "wider"."""
    g = torch.Generator().manual_seed(seed)
    m_p, s_p = torch.zeros(d), torch.ones(d)
    if kind == "shift":
        m_q, s_q = torch.full((d,), math.sqrt(2 * 0.5 / d)), torch.ones(d)
    else:
        m_q, s_q = torch.full((d,), 0.2), torch.full((d,), 1.3)
    p = m_p + s_p * torch.randn(STATES, SAMPLES, d, generator=g, dtype=torch.float64)
    q = m_q + s_q * torch.randn(STATES, SAMPLES, d, generator=g, dtype=torch.float64)
    return p, q, gaussian_kl(m_p, s_p, m_q, s_q)


def mean_and_noise(estimates: torch.Tensor) -> tuple[float, float]:
    """The replicates' mean and 4 standard errors of it."""
    return estimates.mean().item(), 4 * estimates.std().item() / math.sqrt(estimates.numel())


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("kind", ["shift", "wider"])
def test_low_dimensional_gaussians_within_noise(d, kind):
    p, q, true = pair(d, kind, seed=d)
    mean, noise = mean_and_noise(knn_kl(p, q))
    assert abs(mean - true) <= noise + 0.05 * true, (mean, true, noise)


@pytest.mark.parametrize("d", [5, 10, 17])
@pytest.mark.parametrize("kind", ["shift", "wider"])
def test_high_dimensional_gaussians_within_a_factor_of_two(d, kind):
    p, q, true = pair(d, kind, seed=100 + d)
    mean, noise = mean_and_noise(knn_kl(p, q))
    assert true / 2 - noise <= mean <= 2 * true + noise, (mean, true, noise)


@pytest.mark.parametrize("d", [1, 5, 17])
def test_identical_distributions_give_zero_up_to_noise(d):
    g = torch.Generator().manual_seed(7 + d)
    p = torch.randn(64, SAMPLES, d, generator=g)
    q = torch.randn(64, SAMPLES, d, generator=g)
    mean, noise = mean_and_noise(knn_kl(p, q))
    assert abs(mean) <= noise


@pytest.mark.parametrize("k", [1, 3])
def test_invariant_under_a_common_similarity_transform(k):
    """Rotating, scaling and shifting both sets alike scales every distance alike: the
    log-ratios, hence even the unwhitened estimate, do not change."""
    g = torch.Generator().manual_seed(3)
    p, q, _ = pair(4, "wider", seed=3)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    shift = torch.randn(4, generator=g, dtype=torch.float64)
    moved = [2.5 * x @ rotation.T + shift for x in (p, q)]
    torch.testing.assert_close(knn_kl(*moved, k=k, whiten=False), knn_kl(p, q, k=k, whiten=False))


def test_whitened_estimate_is_invariant_under_any_common_affine_map():
    g = torch.Generator().manual_seed(4)
    p, q, _ = pair(4, "wider", seed=4)
    linear = torch.randn(4, 4, generator=g, dtype=torch.float64) + 3 * torch.eye(4).double()
    moved = [x @ linear.T + 1.0 for x in (p, q)]
    torch.testing.assert_close(knn_kl(*moved), knn_kl(p, q))


def test_whitening_sees_a_shift_along_a_narrow_dimension():
    """Dims of scales 0.01 … 1 and a shift of half a std along the three narrowest (KL 0.375):
    raw distances hide it behind the wide dims; whitened it reads as an isotropic pair does."""
    g = torch.Generator().manual_seed(5)
    scales = torch.logspace(-2, 0, 17, dtype=torch.float64)
    shift = torch.zeros(17, dtype=torch.float64)
    shift[:3] = 0.5 * scales[:3]
    true = 0.5 * 3 * 0.25
    shape = (4 * STATES, SAMPLES, 17)
    p = scales * torch.randn(shape, generator=g, dtype=torch.float64)
    q = shift + scales * torch.randn(shape, generator=g, dtype=torch.float64)
    whitened, noise = mean_and_noise(knn_kl(p, q))
    raw, raw_noise = mean_and_noise(knn_kl(p, q, whiten=False))
    assert true / 2 - noise <= whitened <= 2 * true + noise
    assert raw + raw_noise < true / 2


def test_larger_k_is_also_consistent():
    p, q, true = pair(1, "shift", seed=11)
    mean, noise = mean_and_noise(knn_kl(p, q, k=5))
    assert abs(mean - true) <= noise + 0.05 * true


def test_unequal_sample_sizes():
    """The log(m/(n − 1)) term corrects for m ≠ n: identical distributions still give ~0."""
    g = torch.Generator().manual_seed(5)
    p = torch.randn(64, 200, 2, generator=g)
    q = torch.randn(64, 800, 2, generator=g)
    mean, noise = mean_and_noise(knn_kl(p, q))
    assert abs(mean) <= noise


def test_duplicate_samples_stay_finite():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(2, 50, 3, generator=g)
    p[:, 1] = p[:, 0]
    q = torch.cat([p[:, :5], torch.randn(2, 45, 3, generator=g)], dim=1)
    assert torch.isfinite(knn_kl(p, q)).all()


def test_float32_and_float64_agree():
    p, q, _ = pair(3, "shift", seed=9)
    torch.testing.assert_close(
        knn_kl(p.float(), q.float()).double(), knn_kl(p, q), atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize(
    ("p_shape", "q_shape", "k", "message"),
    [
        ((4, 10), (4, 10, 2), 1, "p_samples must have shape"),
        ((4, 10, 2), (4, 10), 1, "q_samples must have shape"),
        ((4, 10, 2), (3, 10, 2), 1, "must share S and d"),
        ((4, 10, 2), (4, 10, 3), 1, "must share S and d"),
        ((4, 3, 2), (4, 10, 2), 3, "needs n >= k \\+ 1"),
        ((4, 10, 2), (4, 2, 2), 3, "m >= k"),
        ((4, 10, 2), (4, 10, 2), 0, "k must be an integer >= 1"),
    ],
)
def test_bad_input_is_named(p_shape, q_shape, k, message):
    with pytest.raises(ValueError, match=message):
        knn_kl(torch.randn(p_shape), torch.randn(q_shape), k=k)


def test_integer_samples_are_refused():
    with pytest.raises(ValueError, match="floating-point"):
        knn_kl(torch.ones(2, 5, 1, dtype=torch.long), torch.randn(2, 5, 1))
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        knn_kl([[1.0]], torch.randn(2, 5, 1))

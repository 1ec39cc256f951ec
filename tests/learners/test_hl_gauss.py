"""HL-Gauss targets, values and loss against hand computations."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from trudi.learners import HLGaussHead, hl_gauss_target


def _erf_mass(y: float, edges: list[float], sigma: float) -> list[float]:
    cdf = [math.erf((e - y) / (math.sqrt(2) * sigma)) for e in edges]
    total = cdf[-1] - cdf[0]
    return [(b - a) / total for a, b in itertools.pairwise(cdf)]


def test_three_bins_by_hand():
    # Bins centred on -1, 0, 1 (width 1, edges ±0.5 around them), σ = 0.75; target y = 0.25.
    head = HLGaussHead(-1.0, 1.0, num_bins=3, sigma_ratio=0.75)
    expected = _erf_mass(0.25, [-1.5, -0.5, 0.5, 1.5], 0.75)
    target = head.target(torch.tensor([[0.25]], dtype=torch.float64))
    torch.testing.assert_close(target, torch.tensor([expected], dtype=torch.float64))
    # loss = −Σ p_i log softmax(l)_i; value = Σ softmax(l)_i c_i.
    probs = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)
    logits = probs.log()
    loss = head.loss(logits, torch.tensor([[0.25]], dtype=torch.float64))
    by_hand = -sum(p * math.log(q) for p, q in zip(expected, [0.2, 0.3, 0.5], strict=True))
    assert loss.item() == pytest.approx(by_hand, rel=1e-12)
    assert head.value(logits).item() == pytest.approx(-0.2 + 0.5, rel=1e-12)


def test_targets_outside_the_range_are_clipped():
    head = HLGaussHead(-1.0, 1.0, num_bins=3)
    far = head.target(torch.tensor([[7.0]], dtype=torch.float64))
    edge = head.target(torch.tensor([[1.0]], dtype=torch.float64))
    torch.testing.assert_close(far, edge)


def test_151_bins_recover_the_value():
    head = HLGaussHead(-10.0, 10.0)  # REPPO: 151 bins, σ = 0.75 bin width
    value = torch.tensor([[-3.3], [0.0], [2.71], [8.0]], dtype=torch.float64)
    target = hl_gauss_target(value, -10.0, 10.0, 151, head.sigma)
    assert target.shape == (4, 151)
    torch.testing.assert_close(target.sum(-1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(head.value(target.log()), value, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"v_min": 1.0, "v_max": 1.0}, "v_max"),
        ({"v_min": 0.0, "v_max": 1.0, "num_bins": 1}, "num_bins"),
        ({"v_min": 0.0, "v_max": 1.0, "sigma_ratio": 0.0}, "sigma_ratio"),
    ],
)
def test_bad_arguments_raise(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        HLGaussHead(**kwargs)

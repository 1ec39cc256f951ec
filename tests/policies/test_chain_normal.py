"""ChainNormal against an independent torch.distributions computation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

from trudi.policies import ChainNormal

BATCH_SHAPE, K, A = (3, 2), 4, 5


def _random_chain_params(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    loc = torch.randn(*BATCH_SHAPE, K, A, generator=generator, dtype=torch.float64)
    scale = torch.rand(*BATCH_SHAPE, K, A, generator=generator, dtype=torch.float64) + 0.1
    chain = torch.randn(*BATCH_SHAPE, K + 1, A, generator=generator, dtype=torch.float64)
    return loc, scale, chain


def test_log_prob_matches_torch_normal():
    loc, scale, chain = _random_chain_params()
    expected = Normal(loc, scale).log_prob(chain[..., 1:, :]).sum(-1)
    log_prob = ChainNormal(loc, scale).log_prob(chain)
    assert log_prob.shape == (*BATCH_SHAPE, K)
    torch.testing.assert_close(log_prob, expected)


def test_entropy_matches_torch_normal():
    loc, scale, _ = _random_chain_params()
    entropy = ChainNormal(loc, scale).entropy()
    assert entropy.shape == (*BATCH_SHAPE, K)
    torch.testing.assert_close(entropy, Normal(loc, scale).entropy().sum(-1))


def test_trajectory_sums_over_steps():
    loc, scale, chain = _random_chain_params()
    per_step = ChainNormal(loc, scale)
    whole = ChainNormal(loc, scale, trajectory=True)
    assert whole.batch_shape == BATCH_SHAPE and whole.event_shape == (K, A)
    assert per_step.batch_shape == (*BATCH_SHAPE, K) and per_step.event_shape == (A,)
    torch.testing.assert_close(whole.log_prob(chain), per_step.log_prob(chain).sum(-1))
    torch.testing.assert_close(whole.entropy(), per_step.entropy().sum(-1))


def test_broadcast_scale_and_gradients():
    loc, scale, chain = _random_chain_params()
    loc.requires_grad_(True)
    shared_scale = scale[0, 0].clone().requires_grad_(True)
    ChainNormal(loc, shared_scale).log_prob(chain).sum().backward()
    assert loc.grad is not None and shared_scale.grad is not None


def test_sampling_is_not_provided():
    loc, scale, _ = _random_chain_params()
    with pytest.raises(NotImplementedError):
        ChainNormal(loc, scale).sample()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda loc, scale, chain: ChainNormal(loc[..., 0, 0, 0], scale[..., 0, 0, 0]), "loc"),
        (lambda loc, scale, chain: ChainNormal(loc, scale[..., :2]), "scale"),
        (lambda loc, scale, chain: ChainNormal(loc, -scale), "scale"),
        (lambda loc, scale, chain: ChainNormal(loc, scale).log_prob(chain[..., 1:, :]), "chain"),
    ],
)
def test_bad_input_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make(*_random_chain_params())


@settings(max_examples=25, deadline=None)
@given(
    batch_shape=st.lists(st.integers(1, 3), max_size=3),
    num_steps=st.integers(1, 4),
    action_dim=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_log_prob_matches_torch_normal_for_any_shape(batch_shape, num_steps, action_dim, seed):
    generator = torch.Generator().manual_seed(seed)
    shape = (*batch_shape, num_steps, action_dim)
    loc = torch.randn(shape, generator=generator, dtype=torch.float64)
    scale = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 + 1e-3
    chain = torch.randn(
        (*batch_shape, num_steps + 1, action_dim), generator=generator, dtype=torch.float64
    )
    expected = Normal(loc, scale).log_prob(chain[..., 1:, :]).sum(-1)
    torch.testing.assert_close(ChainNormal(loc, scale).log_prob(chain), expected)

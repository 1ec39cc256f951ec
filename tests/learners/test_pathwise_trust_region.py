"""The two trust regions of TruDiPathwiseLoss on a fixed batch under large optimiser steps.

A critic Q = 5 Σ_a a pulls every action to the upper bound, and Adam (lr 1e-2) on a fixed batch
moves the network far outside the region within a few steps (exact KL(old ‖ new) > 1 on the
recorded chains). Observed (seed 0, 64 states, K = 8, 40 steps): ``"split"`` — λ climbs from 0.01
to ~48 while c(s) > ε and the batch KL comes back to 0.06–0.10; ``"projection"`` — the projected
chains stay at Σ_j KL ≤ ε on the recorded chains (trajectory mode; ≤ 1.13 ε on the drawn ones) and
≤ K ε_step (per-step mode) while the network itself is far outside.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type

from trudi.constraints import TrajectoryKLProjection
from trudi.learners import HLGaussHead, QCritic, QOutput, TruDiPathwiseLoss
from trudi.policies import DenoiserMLP, DiffusionPolicy
from trudi.samplers import EulerMaruyamaSampler

STEPS, BOUND = 8, 0.1


class Slope(QCritic):
    """Q(s, a) = 5 Σ_a a, whatever the state."""

    def forward(self, observation, action):
        value = 5.0 * action.sum(-1, keepdim=True)
        logits = value.expand(*value.shape[:-1], self.head.num_bins)
        return QOutput(value, logits, value, None)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def setup(trust_region: str, projection=None):
    torch.manual_seed(0)
    denoiser = DenoiserMLP(2, 2, STEPS, hidden_dim=32, num_blocks=1)
    policy = DiffusionPolicy(denoiser, EulerMaruyamaSampler(STEPS), squash="tanh")
    critic = Slope(2, 2, HLGaussHead(-1.0, 1.0, num_bins=5), hidden_dim=4, next_embedding=False)
    with set_interaction_type(InteractionType.RANDOM), torch.no_grad():
        td = policy(TensorDict({"observation": torch.randn(64, 2)}, [64]))
    td["value_target"] = torch.zeros(64, 1)
    loss = TruDiPathwiseLoss(
        policy,
        critic,
        trust_region=trust_region,
        kl_bound=BOUND,
        projection=projection,
        embedding_coeff=0.0,
    )
    return policy, loss, td


def test_split_lagrange_rises_while_outside_and_the_kl_comes_back():
    policy, loss, td = setup("split")
    actor = torch.optim.Adam(policy.parameters(), lr=1e-2)
    # Plain gradient steps on the dual: log λ moves by lr · mean(c − ε), i.e. dual ascent.
    dual = torch.optim.SGD([loss.log_lagrange], lr=1.0)
    kls, lagranges = [], []
    for _ in range(40):
        out = loss(td)
        kls.append(out["kl_trajectory"].item())
        lagranges.append(out["lagrange"].item())
        actor.zero_grad()
        dual.zero_grad()
        (out["loss_objective"] + out["loss_lagrange"]).backward()
        actor.step()
        dual.step()
    assert max(kls) > 5 * BOUND  # the large steps leave the region
    for kl, before, after in zip(kls, lagranges, lagranges[1:], strict=False):
        assert (after > before) == (kl > BOUND)
    assert max(lagranges) > 100 * lagranges[0]
    assert max(kls[-10:]) < 1.5 * BOUND  # and the KL comes back


@pytest.mark.parametrize(
    ("projection", "limit"),
    [
        (TrajectoryKLProjection(BOUND / 2, BOUND / 2), BOUND),
        (TrajectoryKLProjection(BOUND / 2, BOUND / 2, mode="per_step"), STEPS * BOUND),
    ],
    ids=["trajectory", "per-step"],
)
def test_projection_never_exceeds_the_bound(projection, limit):
    policy, loss, td = setup("projection", projection)
    actor = torch.optim.Adam(policy.parameters(), lr=1e-2)
    network_kls = []
    for _ in range(30):
        out = loss(td)
        network_kls.append(out["kl_trajectory"].item())
        exact = out.get("kl_projected_recorded_max", out["kl_projected_max"])
        assert exact.item() <= limit * (1 + 1e-4)
        actor.zero_grad()
        out["loss_objective"].backward()
        actor.step()
    assert max(network_kls) > 3 * limit  # the network itself left the region

"""``DiffusionPolicy(autocast=torch.bfloat16)``: the denoiser network runs in bfloat16, while the
chain, its transitions and log-probs, and what a loss computes from them (KLs, the projection)
stay float32. On CPU (where autocast supports bfloat16 too) and, with CUDA, on the GPU."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, TensorDictModule, set_interaction_type

from trudi.constraints import TrajectoryKLProjection
from trudi.learners import TruDiLoss
from trudi.policies import DenoiserMLP, DiffusionPolicy
from trudi.samplers import AncestralSampler, CosineSchedule

OBS, A, K = 5, 3, 4
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CHAIN_KEYS = ("chain", "loc", "scale", "chain_log_prob", "log_prob")


def _loss(autocast, device):
    torch.manual_seed(0)
    denoiser = DenoiserMLP(OBS, A, K, hidden_dim=32, num_blocks=2, layer_norm=True)
    policy = DiffusionPolicy(
        denoiser, AncestralSampler(CosineSchedule(K), min_std=0.1), learn_scale=True,
        autocast=autocast,
    )  # fmt: skip
    critic = TensorDictModule(torch.nn.Linear(OBS, 1), ["observation"], ["state_value"])
    return TruDiLoss(policy, critic, TrajectoryKLProjection(0.05, 0.01)).to(device)


def _batch(loss, device):
    g = torch.Generator().manual_seed(1)
    td = TensorDict({"observation": torch.randn(16, OBS, generator=g)}, [16]).to(device)
    with set_interaction_type(InteractionType.RANDOM):
        td = loss.actor_network(td)
    td["advantage"] = torch.randn(16, 1, generator=g).to(device)
    td["value_target"] = torch.randn(16, 1, generator=g).to(device)
    return td


@pytest.mark.parametrize("device", DEVICES)
def test_bfloat16_denoiser_keeps_everything_else_float32(device):
    loss = _loss(torch.bfloat16, device)
    policy = loss.actor_network
    network_dtypes, projected_dtypes = [], []
    policy.denoiser.register_forward_hook(lambda m, args, out: network_dtypes.append(out.dtype))
    project = loss.projection.project

    def recording_project(*transitions):
        projected_dtypes.extend(x.dtype for x in transitions)
        return project(*transitions)

    loss.projection.project = recording_project
    td = _batch(loss, device)
    for key in CHAIN_KEYS:
        assert td["diffusion", key].dtype == torch.float32, key
    out = loss(td)
    assert network_dtypes and set(network_dtypes) == {torch.bfloat16}
    assert projected_dtypes and set(projected_dtypes) == {torch.float32}
    for key, value in out.items():
        assert value.dtype == torch.float32, key
    sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    for name, parameter in loss.named_parameters():
        if parameter.grad is not None:
            assert parameter.grad.dtype == torch.float32, name
            assert parameter.grad.isfinite().all(), name


@pytest.mark.parametrize("device", DEVICES)
def test_bfloat16_denoiser_approximates_float32(device):
    """The same parameters give the same chain scores up to bfloat16 rounding of the network."""
    exact, cast = _loss(None, device), _loss(torch.bfloat16, device)
    td = _batch(exact, device)
    reference = exact.actor_network.get_dist(td)
    rounded = cast.actor_network.get_dist(td)
    assert rounded.loc.dtype == torch.float32
    torch.testing.assert_close(rounded.loc, reference.loc, rtol=0.05, atol=0.05)
    assert not torch.equal(rounded.loc, reference.loc)  # the network did run in bfloat16


def test_rejects_a_non_floating_dtype():
    with pytest.raises(ValueError, match="autocast must be None or a floating"):
        DiffusionPolicy(DenoiserMLP(OBS, A, K), AncestralSampler(CosineSchedule(K)), autocast=3)

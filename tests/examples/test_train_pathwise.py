"""The pathwise arms of the training example: a smoke run of each, with its own critic and targets."""

from __future__ import annotations

import pytest
import torch

from tests.examples.test_train import config, load_checkpoint, train


@pytest.mark.parametrize(
    ("algo", "trust_region", "policy_type", "extra"),
    [
        ("trudi_pathwise", "split", "diffusion", ["policy.num_steps=3"]),
        ("trudi_pathwise", "projection", "diffusion", ["policy.num_steps=3"]),
        ("reppo", "split", "gaussian", []),
    ],
)
def test_smoke_run_pathwise_arm(algo, trust_region, policy_type, extra, tmp_path):
    cfg = config(
        *extra,
        f"algo={algo}",
        f"algo.trust_region={trust_region}",
        # TINY's batch settings win over the arm's REPPO-sized ones (command-line overrides).
        "total_frames=128",
    )
    metrics = train.train(cfg, tmp_path)
    assert metrics["frames"] == 128
    losses = {k: v for k, v in metrics.items() if k.startswith("loss_")}
    assert {"loss_objective", "loss_critic", "loss_temperature"} <= set(losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert "eval_return_deterministic" in metrics
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["config"]["policy"]["type"] == policy_type
    assert saved["config"]["algo"]["trust_region"] == trust_region

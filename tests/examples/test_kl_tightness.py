"""The example's KL-tightness diagnostic and adaptive trust region (examples/kl_tightness.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from examples import train
from examples.build import build_critic, build_loss, build_policy
from examples.checkpoint import load_checkpoint
from examples.config import ConfigError
from examples.envs import make_env
from examples.kl_tightness import KLTightness
from examples.run_dir import RunDirectoryError, check_resumable
from tests.examples.helpers import config

# 4 iterations, measured after the 2nd and the 4th; few states and chains (Pendulum: A = 1).
MEASURED = (
    "total_frames=256",
    "eval_every=0",
    "diagnostics.kl_tightness_every=2",
    "diagnostics.kl_states=4",
    "diagnostics.kl_samples=32",
)
METRICS = {"kl_marginal", "kl_marginal_se", "kl_trajectory_update", "kl_tightness_ratio"}


@pytest.mark.parametrize(
    "arm",
    [
        ("algo=trudi",),
        ("algo=ppo",),
        ("algo=trudi_pathwise", "policy.num_steps=3"),
        ("algo=trudi_pathwise", "policy.num_steps=3", "algo.trust_region=projection"),
    ],
    ids=["trudi", "ppo", "pathwise-split", "pathwise-projection"],
)
def test_measured_every_n_iterations_for_each_arm(arm, tmp_path):
    train.train(config(*arm, *MEASURED), tmp_path)
    history = load_checkpoint(tmp_path / "checkpoint.pt")["history"]
    assert [METRICS <= row.keys() for row in history] == [False, True, False, True]
    for row in history[1::2]:
        assert row["kl_trajectory_update"] >= 0
        assert row["kl_tightness_ratio"] == pytest.approx(
            row["kl_marginal"] / row["kl_trajectory_update"]
        )
    assert (tmp_path / "logs" / "scalars" / "kl_tightness_ratio.csv").exists()


def test_the_diagnostic_does_not_change_training(tmp_path):
    """Its random numbers come from a forked generator: the run is the run without it."""
    plain = train.train(config("total_frames=192", "eval_every=0"), tmp_path / "plain")
    measured = train.train(
        config(
            "total_frames=192",
            "eval_every=0",
            "diagnostics.kl_tightness_every=1",
            "diagnostics.kl_states=4",
            "diagnostics.kl_samples=32",
        ),
        tmp_path / "measured",
    )
    assert METRICS <= measured.keys()
    for key, value in plain.items():
        if key.startswith(("loss_", "kl_trajectory_", "ratio_")):
            assert measured[key] == value, key


def _stop_after(n: int):
    """An ``on_iteration`` hook that dies (Ctrl-C) after iteration ``n`` is logged."""

    def hook(iteration, metrics):
        if iteration == n:
            raise KeyboardInterrupt

    return hook


def test_adaptive_bound_follows_the_target_and_resumes_exactly(tmp_path):
    """A target far above any measured KL widens the bounds x1.5 at every measurement. A run that
    dies in iteration 3 resumes from the checkpoint of iteration 2, whose rule has widened once,
    and ends where the uninterrupted run ends."""
    adaptive = (*MEASURED, "projection.adaptive=true", "projection.marginal_target=100")
    full = train.train(config(*adaptive), tmp_path / "full")
    saved = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    assert [row.get("trust_region_scale") for row in saved["history"]] == [None, 1.0, None, 1.5]
    assert saved["kl_tightness"]["scale"] == 1.5**2

    stopped = (*adaptive, "checkpoint_every=2")
    with pytest.raises(KeyboardInterrupt):
        train.train(config(*stopped), tmp_path / "resumed", on_iteration=_stop_after(3))
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["kl_tightness"]["scale"] == 1.5
    resumed = train.train(config(*stopped, "resume=true"), tmp_path / "resumed")
    assert (
        load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["kl_tightness"]
        == saved["kl_tightness"]
    )
    for key in ("loss_objective", "kl_marginal", "kl_trajectory_update", "trust_region_scale"):
        assert resumed[key] == full[key], key


@pytest.mark.parametrize(
    ("arm", "bound"),
    [
        (("algo=trudi",), "projection"),
        (("algo=trpl",), "projection"),
        (
            ("algo=trudi_pathwise", "policy.num_steps=3", "algo.trust_region=projection"),
            "projection",
        ),
        (("algo=trudi_pathwise", "policy.num_steps=3"), "gate"),
        (("algo=reppo",), "gate"),
    ],
)
def test_adaptive_step_sets_the_losses_bounds(arm, bound):
    cfg = config(*arm, *MEASURED, "projection.adaptive=true", "projection.marginal_target=100")
    env = make_env(cfg.env.name, 2, seed=0)
    policy = build_policy(cfg, env)
    loss = build_loss(cfg, policy, build_critic(cfg, env))
    tightness = KLTightness(cfg, loss, policy, seed=0)
    batch = env.rollout(3, policy).unsqueeze(0)
    tightness.before_update(1)
    metrics = tightness.after_update(1, batch)
    assert metrics["trust_region_scale"] == 1.0
    if bound == "projection":
        assert loss.projection.mean_bound == pytest.approx(1.5 * cfg.projection.mean_bound)
        assert loss.projection.cov_bound == pytest.approx(1.5 * cfg.projection.cov_bound)
    else:
        assert loss.kl_bound.item() == pytest.approx(1.5 * cfg.algo.kl_bound)
    env.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("projection.adaptive=true",), "needs diagnostics.kl_tightness_every >= 1"),
        (
            ("algo=ppo", "projection.adaptive=true", "diagnostics.kl_tightness_every=1"),
            "clips its ratio",
        ),
        (("diagnostics.knn_k=3", "diagnostics.kl_samples=3"), "must be > diagnostics.knn_k"),
        (("projection.adaptive_min=2",), "projection.adaptive_min: must be <= 1"),
    ],
)
def test_bad_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config(*overrides)


def test_checkpoint_without_the_new_fields_resumes_at_their_defaults(tmp_path):
    """A checkpoint written before a field existed resumes if the field holds its default."""
    cfg = config("total_frames=128")
    saved = OmegaConf.to_container(cfg, resolve=True)
    del saved["diagnostics"], saved["projection"]["adaptive"]
    check_resumable(saved, cfg, tmp_path / "checkpoint.pt")
    with pytest.raises(RunDirectoryError, match=r"diagnostics\.kl_tightness_every: None -> 2"):
        check_resumable(
            saved, config("total_frames=128", "diagnostics.kl_tightness_every=2"), tmp_path
        )

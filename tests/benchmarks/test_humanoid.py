"""The humanoid study's driver: its plan, its configs, and its tables and plots on synthetic CSVs."""

from __future__ import annotations

import argparse
import csv
import math
import threading

import pytest
import torch

pytest.importorskip("hydra")

from benchmarks import humanoid, learning
from examples.config import compose_config


def args_for(tmp_path, **kwargs) -> argparse.Namespace:
    defaults = {
        "out": tmp_path / "results",
        "runs": tmp_path / "runs",
        "frames": None,
        "eval_episodes": 8,
        "overrides": [],
        "jobs": 1,
        "memory_gb": 100.0,
    }
    return argparse.Namespace(**{**defaults, **kwargs})


def test_the_plan_is_seed_major_with_one_g1_seed_and_two_adaptive_tasks():
    runs = humanoid.plan(list(humanoid.TASKS), list(humanoid.ARMS))
    assert len(runs) == 3 * 4 * 3 + 4 * 1 + 2 * 3
    assert [r.seed for r in runs] == sorted(r.seed for r in runs)
    assert {r.seed for r in runs if r.task == "g1_joystick"} == {0}
    adaptive = {(r.task, r.seed) for r in runs if r.arm == "trudi-adaptive"}
    assert adaptive == {(t, s) for t in humanoid.ADAPTIVE_TASKS for s in (0, 1, 2)}
    assert all(r.task in humanoid.MEMORY_GB for r in runs)


def test_every_planned_run_has_a_valid_config(tmp_path):
    """The overrides each run gets from learning.run_one and from the study compose and validate;
    every run collects scale=massive's 16,384 frames per iteration with the diagnostic on."""
    args = args_for(tmp_path)
    for run in humanoid.plan(list(humanoid.TASKS), list(humanoid.ARMS), seeds=[0]):
        ns = humanoid.run_namespace(run, args)
        cfg = compose_config(
            f"env={run.task}",
            *learning.arm_overrides(run.arm, ns.overrides),
            f"total_frames={ns.frames}",
            f"eval_every={ns.eval_every}",
            *ns.overrides,
        )
        assert cfg.env.short == run.task
        assert cfg.num_envs * cfg.rollout_length == 16_384
        assert cfg.diagnostics.kl_tightness_every == 5
        assert cfg.projection.adaptive == (run.arm == "trudi-adaptive")
        if run.task == "g1_joystick":
            assert (cfg.num_envs, cfg.gamma, ns.frames) == (128, 0.97, 2_000_000)
        else:
            assert (cfg.num_envs, ns.frames) == (1024, 5_000_000)


def test_arm_overrides_reach_only_their_arm(tmp_path):
    args = args_for(tmp_path, overrides=["threads=1"], arm_overrides={"reppo": ["lr=1e-4"]})
    reppo = humanoid.run_namespace(humanoid.Run("humanoid", "reppo", 0), args).overrides
    ppo = humanoid.run_namespace(humanoid.Run("humanoid", "ppo", 0), args).overrides
    assert reppo[-2:] == ["threads=1", "lr=1e-4"] and ppo[-1] == "threads=1"


def test_kl_csv_holds_the_measured_iterations(tmp_path):
    args = args_for(tmp_path)
    run = humanoid.Run("humanoid", "trudi", 0)
    run_dir = args.runs / "humanoid" / "trudi" / "seed0"
    run_dir.mkdir(parents=True)
    history = [
        {"frames": 10, "loss_objective": 1.0},
        {
            "frames": 20,
            "kl_marginal": 0.1,
            "kl_marginal_se": 0.01,
            "kl_trajectory_update": 0.4,
            "kl_tightness_ratio": 0.25,
        },
    ]
    torch.save({"history": history}, run_dir / "checkpoint.pt")
    path = humanoid.write_kl_csv(run, args)
    rows = list(csv.DictReader(path.open()))
    assert [float(rows[0][k]) for k in ("frames", "kl_marginal", "kl_tightness_ratio")] == [
        20,
        0.1,
        0.25,
    ]
    assert math.isnan(float(rows[0]["trust_region_scale"]))
    assert humanoid.write_kl_csv(humanoid.Run("humanoid", "ppo", 0), args) is None


def test_windowed_ratio_is_a_ratio_of_sums():
    rows = [
        {"frames": f, "kl_marginal": m, "kl_trajectory_update": t}
        for f, m, t in [(1, 0.1, 0.5), (2, -0.1, 0.001), (3, 0.3, 0.5), (4, 1.0, 1.0)]
    ]
    assert humanoid.windowed_ratio(rows, window=3) == [(3, pytest.approx(0.3 / 1.001))]
    assert humanoid.run_ratio(rows) == pytest.approx(1.3 / 2.001)


def write_csv(path, fields, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        writer.writerows(rows)


def test_report_on_synthetic_csvs(tmp_path):
    out = tmp_path / "results"
    finals = {("trudi", 0): 300.0, ("trudi", 1): 500.0, ("ppo", 0): 100.0, ("ppo", 1): 200.0}
    for (arm, seed), final in finals.items():
        rows = [(16384 * i, 60.0 * i, final * i / 3, final * i / 4) for i in (1, 2, 3)]
        write_csv(out / "humanoid" / f"{arm}-seed{seed}.csv", learning.FIELDS, rows)
        kl = [
            (16384 * i, 0.05 * (seed + 1), 0.01, 0.2, 0.25 * (seed + 1), math.nan)
            for i in range(1, 11)
        ]
        write_csv(out / "kl" / "humanoid" / f"{arm}-seed{seed}.csv", humanoid.KL_FIELDS, kl)
    humanoid.report(out, ["humanoid"], ["trudi", "ppo"])
    table = (out / "table.md").read_text()
    assert "| humanoid | TruDi | 400 ± 141 (n=2) | 300 ± 106 (n=2) | 49,152 | 3.0 |" in table
    assert "| humanoid | Gaussian PPO | 150 ± 71 (n=2) |" in table
    tightness = (out / "kl_tightness.md").read_text()
    # Run ratios 0.25 and 0.5 (Σ marginal / Σ trajectory), their mean ± std over the two seeds.
    assert (
        "| humanoid | TruDi | 0.075 ± 0.035 (n=2) | 0.200 ± 0.000 (n=2) | 0.38 ± 0.18 (n=2) | 10 |"
        in tightness
    )
    for name in ("humanoid.png", "kl_tightness.png"):
        assert (out / name).stat().st_size > 0


def test_runs_start_only_while_their_memory_fits(tmp_path, monkeypatch):
    """Two DMC runs (14 GB each) never overlap under a 20 GB limit; every run runs once; a
    Humanoid-v5 run may start ahead of a DMC run that has to wait."""
    lock, active, peaks, done = threading.Lock(), [], [], []

    def fake_run_one(task, arm, seed, ns):
        with lock:
            active.append(humanoid.MEMORY_GB[task])
            peaks.append(sum(active))
        threading.Event().wait(0.01)
        with lock:
            active.remove(humanoid.MEMORY_GB[task])
            done.append((task, arm, seed))

    monkeypatch.setattr(learning, "run_one", fake_run_one)
    runs = humanoid.plan(["dmc_humanoid_walk", "humanoid"], ["trudi", "ppo"], seeds=[0, 1])
    humanoid.run_all(runs, args_for(tmp_path, jobs=2, memory_gb=20.0))
    assert sorted(done) == sorted((r.task, r.arm, r.seed) for r in runs)
    assert max(peaks) <= 20.0


def test_a_run_too_large_for_the_limit_runs_alone(tmp_path, monkeypatch):
    done = []
    monkeypatch.setattr(learning, "run_one", lambda task, arm, seed, ns: done.append(arm))
    runs = humanoid.plan(["dmc_humanoid_walk"], ["trudi", "ppo"], seeds=[0], adaptive=False)
    humanoid.run_all(runs, args_for(tmp_path, jobs=2, memory_gb=10.0))
    assert sorted(done) == ["ppo", "trudi"]


def test_a_failed_run_stops_the_study(tmp_path, monkeypatch):
    def failing(task, arm, seed, ns):
        raise RuntimeError(f"{task} {arm} failed")

    monkeypatch.setattr(learning, "run_one", failing)
    runs = humanoid.plan(["humanoid"], ["trudi", "ppo"], seeds=[0])
    with pytest.raises(RuntimeError, match="failed"):
        humanoid.run_all(runs, args_for(tmp_path, jobs=2))

"""The learning benchmark's table: arm labels, time to target and the external row, on synthetic CSVs."""

from __future__ import annotations

import argparse
import csv
import sys

import pytest

pytest.importorskip("hydra")

from benchmarks import learning
from examples.config import compose_config

TASK = "halfcheetah"


def write_run(out, task, arm, seed, returns, wall_clock, frames_step=100):
    path = out / task / f"{arm}-seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(learning.FIELDS)
        for i, (value, seconds) in enumerate(zip(returns, wall_clock, strict=True)):
            writer.writerow([(i + 1) * frames_step, seconds, value, value / 2])


@pytest.fixture
def out(tmp_path):
    # Gaussian PPO ends at 900 and 1,100: the target is their mean, 1,000.
    write_run(tmp_path, TASK, "ppo", 0, [800, 1000, 900], [30, 60, 90], frames_step=50)
    write_run(tmp_path, TASK, "ppo", 1, [600, 900, 1100], [30, 60, 90], frames_step=50)
    # TruDi's seed 0 reaches 1,000 at the second point, the mean (500, 900, 1100, 1200) at the third.
    # (Interpolating would give 155 s, seed 0 alone 125 s, the final wall-clock is 245 s.)
    write_run(tmp_path, TASK, "trudi", 0, [400, 1000, 1000, 1300], [60, 120, 180, 240])
    write_run(tmp_path, TASK, "trudi", 1, [600, 800, 1200, 1100], [70, 130, 190, 250])
    # DPPO's mean peaks at 990: not reached. A shorter seed truncates the aligned curve.
    write_run(tmp_path, TASK, "dppo", 0, [100, 990, 2000], [10, 20, 30])
    write_run(tmp_path, TASK, "dppo", 1, [100, 990], [10, 20])
    # Humanoid has no PPO runs and no Zoo entry.
    write_run(tmp_path, "humanoid", "trudi", 0, [100, 200], [60, 120])
    return tmp_path


def rows(lines):
    return {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line for line in lines}


def cells(line):
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_arm_labels_and_defaults():
    assert {arm: learning.ARMS[arm][0] for arm in learning.DEFAULT_ARMS} == {
        "trudi": "TruDi",
        "pathwise": "Pathwise TruDi",
        "reppo": "REPPO",
        "ppo": "Gaussian PPO",
        "ppo-w256": "Gaussian PPO (w256)",
        "trpl": "Gaussian TRPL",
        "dppo": "DPPO",
    }
    assert "algo.trust_region=split" in learning.ARMS["pathwise"][1]
    assert learning.ARMS["pathwise-projection"][0] == "Pathwise TruDi (projection)"


@pytest.mark.parametrize(("arm", "width"), [("reppo", 256), ("pathwise", 128)])
def test_pathwise_arms_run_their_tuned_batch_unless_a_scale_is_picked(arm, width):
    """The 1M-step tuning's batch and width (results/tuning/reppo/PLAN.md); ``scale=massive``
    still sets the batch (the humanoid study), and the width stays."""
    cfg = compose_config(f"env={TASK}", *learning.arm_overrides(arm, []))
    assert (cfg.num_envs, cfg.rollout_length, cfg.minibatches, cfg.epochs) == (64, 64, 8, 4)
    assert (cfg.policy.hidden_dim, cfg.critic.hidden_dim) == (width, width)
    massive = ["scale=massive"]
    cfg = compose_config(f"env={TASK}", *learning.arm_overrides(arm, massive), *massive)
    assert (cfg.num_envs, cfg.rollout_length, cfg.minibatches, cfg.epochs) == (1024, 16, 8, 5)
    assert cfg.policy.hidden_dim == width
    assert learning.arm_overrides("trudi", massive) == learning.ARMS["trudi"][1]


def test_time_to_target_uses_the_mean_curve_at_evaluation_points(out):
    table = rows(learning.table_lines(out, ["halfcheetah", "humanoid", "ant"], learning.ARMS))
    trudi = cells(table[TASK, "TruDi"])
    assert trudi[2] == "1200 ± 141 (n=2)" and trudi[5] == "4.1"
    assert trudi[6:] == ["3.1", "300"]  # 185 s, at the third evaluation (300 steps)
    # Its own mean (700, 950, 1000) reaches it at the third point; a shorter step puts the same
    # point at fewer env steps.
    assert cells(table[TASK, "Gaussian PPO"])[6:] == ["1.5", "150"]
    dppo = cells(table[TASK, "DPPO"])
    assert dppo[6:] == ["not reached", "not reached"]
    assert cells(table["humanoid", "TruDi"])[6:] == ["–", "–"]  # no PPO runs
    assert not any(task == "ant" for task, _ in table)  # no runs, no rows


def test_external_row(out):
    lines = learning.table_lines(out, ["halfcheetah", "humanoid"], learning.ARMS)
    table = rows(lines)
    zoo = cells(table[TASK, learning.ZOO_LABEL])
    assert zoo[2:] == ["5819 ± 664 (1 run)", "–", "1,000,000", "–", "–", "–"]
    task_rows = [i for i, line in enumerate(lines) if line.startswith(f"| {TASK} |")]
    assert lines[task_rows[-1]] == table[TASK, learning.ZOO_LABEL]  # after the task's arms
    assert ("humanoid", learning.ZOO_LABEL) not in table
    assert learning.ZOO_PPO == {
        "halfcheetah": (5819.099, 663.530),
        "hopper": (2410.435, 10.026),
        "walker2d": (3478.798, 821.708),
        "ant": (1327.158, 451.577),
    }


def test_report_only_writes_the_table_and_plots(out, monkeypatch):
    argv = ["learning", "--report-only", "--out", str(out), "--tasks", TASK, "humanoid"]
    monkeypatch.setattr(sys, "argv", argv)
    learning.main()
    text = (out / "table.md").read_text()
    assert "| task | arm | deterministic eval |" in text.splitlines()[0]
    assert learning.ZOO_LABEL in text and "Time to PPO's final" in text
    assert (out / f"{TASK}.png").exists() and (out / "humanoid.png").exists()


def test_evaluations_are_placed_in_environment_steps():
    args = argparse.Namespace(eval_every=None, eval_every_frames=102_400, overrides=[])
    assert learning.eval_every(TASK, "trudi", args) == 25  # 64 x 64 steps per iteration
    assert learning.eval_every(TASK, "dppo", args) == 10  # 10 x 1,000
    assert learning.eval_every(TASK, "reppo", args) == 25  # its tuned 64 x 64
    args.overrides = ["num_envs=32", "hydra.run.dir=x"]
    assert learning.eval_every(TASK, "trudi", args) == 50
    args.eval_every = 7
    assert learning.eval_every(TASK, "dppo", args) == 7

"""The humanoid study (issue 18): TruDi against Gaussian policies on humanoids at scale=massive.

    python -m benchmarks.humanoid --jobs 2                           # the whole plan (days of CPU)
    python -m benchmarks.humanoid --tasks dmc_humanoid_walk --arms trudi ppo --seeds 0
    python -m benchmarks.humanoid --report-only                      # tables and plots from the CSVs

Every run is one ``benchmarks.learning.run_one`` (its command line, run directory, skip-if-done
and resume-from-checkpoint), with ``scale=massive`` (1,024 envs x 16 steps) unless a task says
otherwise, and the KL-tightness diagnostic on (``diagnostics.kl_tightness_every``,
``examples/kl_tightness.py``). The plan (:data:`TASKS`):

- ``dmc_humanoid_stand``, ``dmc_humanoid_walk``, ``humanoid`` (Humanoid-v5): 5M env steps, 3 seeds;
- ``g1_joystick``: 2M env steps, 1 seed, ``num_envs=128 rollout_length=128`` (the same 16,384
  frames per iteration as scale=massive) and Playground's ``gamma=0.97``. EnvPool holds ~87 MB per
  G1 env (measured: 128 envs 11.5 GB, 64 envs 6.3 GB), so 1,024 envs would need ~90 GB;
- arms (:data:`ARMS`, named as in the learning table): TruDi, pathwise TruDi (the split gate, the
  better mode in the 1M-step check), REPPO, Gaussian PPO; and TruDi with the adaptive trust region
  (``trudi-adaptive``) on :data:`ADAPTIVE_TASKS`.

Memory decides what may run together: 1,024 EnvPool DMC humanoids hold 12.4 GB (and take ~5 min to
start), 1,024 Humanoid-v5 1.4 GB, 128 G1 11.5 GB. With ``--jobs`` > 1, whenever a slot is free the
first waiting run whose estimate (:data:`MEMORY_GB`) fits beside the runs in flight in
``--memory-gb`` (default: 85% of this machine's) starts: on 24 GB a DMC run pairs with a
Humanoid-v5 run, never with another DMC or a G1 run.

Written under ``--out`` (default ``benchmarks/results/humanoid/``): ``<task>/<arm>-seed<seed>.csv``
and ``table.md`` and ``<task>.png`` exactly as ``benchmarks.learning`` writes them;
``kl/<task>/<arm>-seed<seed>.csv`` (the diagnostic's metrics of each measured iteration, from the
run's checkpoint); ``kl_tightness.md`` (per task and arm, mean ± std over seeds of each run's
ratio of summed marginal to summed trajectory KL) and ``kl_tightness.png`` (that ratio over
training, per run, in windows of :data:`WINDOW` measurements, with the KLs themselves).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import statistics
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import learning
from examples.plotting import arm_colour

ROOT = learning.ROOT
# The study's own arm, registered in the learning benchmark's table so that its run_one,
# write_table and plot know it.
learning.ARMS.setdefault(
    "trudi-adaptive",
    (
        "TruDi (adaptive bound)",
        ["algo=trudi", "projection.adaptive=true", "algo.name=trudi-adaptive"],
    ),
)
PATHWISE = "pathwise"  # labelled "Pathwise TruDi" (the split gate), as in the learning table
ARMS = ("trudi", PATHWISE, "reppo", "ppo")
ADAPTIVE_TASKS = ("dmc_humanoid_walk", "humanoid")
COMMON = [
    "scale=massive",
    "diagnostics.kl_tightness_every=5",
    "diagnostics.kl_states=64",
    "diagnostics.kl_samples=512",
]


@dataclass(frozen=True)
class Task:
    """A task of the study: its env-step budget, seeds and extra overrides."""

    frames: int
    seeds: tuple[int, ...]
    overrides: tuple[str, ...] = ()
    eval_every: int = 12  # iterations (~197k frames at 16,384 per iteration)


TASKS = {
    "dmc_humanoid_stand": Task(5_000_000, (0, 1, 2)),
    "dmc_humanoid_walk": Task(5_000_000, (0, 1, 2)),
    "humanoid": Task(5_000_000, (0, 1, 2)),
    "g1_joystick": Task(
        2_000_000, (0,), ("num_envs=128", "rollout_length=128", "gamma=0.97"), eval_every=12
    ),
}
# Resident memory of one run (GB): its envs as measured (EnvPool, 1,024 DMC humanoids 12.4 GB,
# 1,024 Humanoid-v5 1.4 GB, 128 G1 11.5 GB) plus ~1.5 GB for the learner.
MEMORY_GB = {
    "dmc_humanoid_stand": 14.0,
    "dmc_humanoid_walk": 14.0,
    "humanoid": 3.0,
    "g1_joystick": 13.0,
}
KL_FIELDS = (
    "frames",
    "kl_marginal",
    "kl_marginal_se",
    "kl_trajectory_update",
    "kl_tightness_ratio",
    "trust_region_scale",
)
WINDOW = 5


@dataclass(frozen=True)
class Run:
    task: str
    arm: str
    seed: int


def plan(tasks, arms, seeds: list[int] | None = None, adaptive: bool = True) -> list[Run]:
    """The runs, seed-major (every task and arm gets a first seed before any gets a second);
    ``seeds`` replaces every task's own; ``trudi-adaptive`` joins on :data:`ADAPTIVE_TASKS`."""
    runs = []
    for task in tasks:
        task_arms = [*arms, *(["trudi-adaptive"] if adaptive and task in ADAPTIVE_TASKS else [])]
        for seed in seeds if seeds is not None else TASKS[task].seeds:
            runs += [Run(task, arm, seed) for arm in task_arms]
    return sorted(runs, key=lambda r: r.seed)


def overrides(run: Run, extra: list[str], per_arm: dict[str, list[str]] | None = None) -> list[str]:
    """Every Hydra override of a run beyond those ``learning.run_one`` adds: the study's, the
    task's, then ``extra`` (every run's) and ``per_arm[run.arm]``."""
    return [*COMMON, *TASKS[run.task].overrides, *extra, *(per_arm or {}).get(run.arm, [])]


def run_namespace(run: Run, args: argparse.Namespace) -> argparse.Namespace:
    """The arguments ``learning.run_one`` reads, for this run."""
    task = TASKS[run.task]
    return argparse.Namespace(
        out=args.out,
        runs=args.runs,
        frames=args.frames or task.frames,
        eval_every=task.eval_every,
        eval_episodes=args.eval_episodes,
        overrides=overrides(run, args.overrides, getattr(args, "arm_overrides", None)),
    )


def write_kl_csv(run: Run, args: argparse.Namespace) -> Path | None:
    """``kl/<task>/<arm>-seed<seed>.csv`` from the run's checkpoint (``None`` without one)."""
    out_csv = args.out / "kl" / run.task / f"{run.arm}-seed{run.seed}.csv"
    checkpoint = args.runs / run.task / run.arm / f"seed{run.seed}" / "checkpoint.pt"
    if not checkpoint.exists():
        return None
    history = torch.load(checkpoint, weights_only=False)["history"]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(KL_FIELDS)
        for row in history:
            if "kl_marginal" in row:
                writer.writerow([row.get(k, math.nan) for k in KL_FIELDS])
    return out_csv


def windowed_ratio(rows: list[dict[str, float]], window: int = WINDOW) -> list[tuple[float, float]]:
    """``(frames, Σ marginal / Σ trajectory)`` over consecutive windows of ``window`` rows: a
    ratio of sums, which one noisy near-zero trajectory KL cannot blow up."""
    points = []
    for start in range(0, len(rows) - window + 1, window):
        chunk = rows[start : start + window]
        trajectory = sum(r["kl_trajectory_update"] for r in chunk)
        if trajectory > 0:
            marginal = sum(r["kl_marginal"] for r in chunk)
            points.append((chunk[-1]["frames"], marginal / trajectory))
    return points


def run_ratio(rows: list[dict[str, float]]) -> float:
    """One run's Σ marginal / Σ trajectory over all its measurements."""
    trajectory = sum(r["kl_trajectory_update"] for r in rows)
    return sum(r["kl_marginal"] for r in rows) / trajectory if trajectory > 0 else math.nan


def _mean_std(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f} (n={len(values)})"


def write_tightness_table(out: Path, tasks, arms) -> str:
    """``kl_tightness.md``: per task and arm, mean ± std over seeds of the run means."""
    lines = [
        "| task | arm | kl_marginal | kl_trajectory_update | marginal / trajectory | measurements |",
        "|---|---|---|---|---|---|",
    ]
    for task, arm in itertools.product(tasks, arms):
        runs = learning.read_runs(out / "kl", task, arm)
        if not runs:
            continue
        marginal = [statistics.mean(r["kl_marginal"] for r in rows) for rows in runs]
        trajectory = [statistics.mean(r["kl_trajectory_update"] for r in rows) for rows in runs]
        lines.append(
            f"| {task} | {learning.ARMS[arm][0]} | {_mean_std(marginal)} | {_mean_std(trajectory)} "
            f"| {_mean_std([run_ratio(rows) for rows in runs], 2)} "
            f"| {statistics.mean(len(rows) for rows in runs):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "kl_tightness.md").write_text(text)
    return text


def plot_tightness(out: Path, tasks, arms) -> None:
    """``kl_tightness.png``: one row per task; the windowed ratio per run, and the two KLs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [t for t in tasks if any(learning.read_runs(out / "kl", t, a) for a in arms)]
    if not found:
        return
    fig, axes = plt.subplots(len(found), 2, figsize=(11, 3.2 * len(found)), squeeze=False)
    for (ratio_ax, kl_ax), task in zip(axes, found, strict=True):
        for arm in arms:
            colour = arm_colour(arm)
            for i, rows in enumerate(learning.read_runs(out / "kl", task, arm)):
                label = learning.ARMS[arm][0] if i == 0 else None
                points = windowed_ratio(rows)
                if points:
                    ratio_ax.plot(*zip(*points, strict=True), color=colour, label=label, alpha=0.8)
                frames = [r["frames"] for r in rows]
                kl_ax.plot(
                    frames,
                    [r["kl_trajectory_update"] for r in rows],
                    color=colour,
                    alpha=0.7,
                    label=label and f"{label}: trajectory",
                )
                kl_ax.plot(
                    frames,
                    [r["kl_marginal"] for r in rows],
                    color=colour,
                    alpha=0.7,
                    linestyle=":",
                    label=label and f"{label}: marginal (k-NN)",
                )
        ratio_ax.axhline(1.0, color="grey", linewidth=0.8)
        ratio_ax.set_ylabel("marginal / trajectory KL")
        ratio_ax.set_title(f"{task}: tightness (windows of {WINDOW} measurements)")
        kl_ax.set_yscale("symlog", linthresh=1e-3)
        kl_ax.set_ylabel("KL(old ‖ new) per update")
        kl_ax.set_title(f"{task}: KLs")
        for ax in (ratio_ax, kl_ax):
            ax.set_xlabel("environment steps")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "kl_tightness.png", dpi=120)
    plt.close(fig)


def report(out: Path, tasks, arms) -> None:
    """Every table and figure, from the CSVs under ``out``."""
    arms = [*arms, *(["trudi-adaptive"] if "trudi-adaptive" not in arms else [])]
    learning.write_table(out, tasks, arms)
    learning.plot(out, tasks, arms)
    print(write_tightness_table(out, tasks, arms))
    plot_tightness(out, tasks, arms)


def machine_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def run_all(runs: list[Run], args: argparse.Namespace) -> None:
    """Run ``runs``, ``args.jobs`` at a time: whenever a slot is free, the first waiting run whose
    memory fits beside those in flight (``args.memory_gb``) starts; a run alone always starts."""
    lock = threading.Condition()
    waiting = list(runs)
    state = {"jobs": 0, "memory": 0.0, "error": None}

    def fits(run: Run) -> bool:
        return state["jobs"] == 0 or (
            state["jobs"] < args.jobs and state["memory"] + MEMORY_GB[run.task] <= args.memory_gb
        )

    def worker(run: Run) -> None:
        try:
            learning.run_one(run.task, run.arm, run.seed, run_namespace(run, args))
            write_kl_csv(run, args)
        except BaseException as error:  # raised again by the main thread
            with lock:
                state["error"] = state["error"] or error
        finally:
            with lock:
                state["jobs"] -= 1
                state["memory"] -= MEMORY_GB[run.task]
                lock.notify_all()

    threads = []
    while waiting:
        with lock:
            lock.wait_for(lambda: state["error"] is not None or any(map(fits, waiting)))
            if state["error"] is not None:
                break
            run = next(r for r in waiting if fits(r))
            waiting.remove(run)
            state["jobs"] += 1
            state["memory"] += MEMORY_GB[run.task]
        thread = threading.Thread(target=worker, args=(run,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    if state["error"] is not None:
        raise state["error"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(learning.ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, help="replace every task's own seeds")
    parser.add_argument("--no-adaptive", action="store_true", help="leave out trudi-adaptive")
    parser.add_argument("--frames", type=int, help="replace every task's own budget")
    parser.add_argument("--eval-episodes", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    parser.add_argument("--memory-gb", type=float, default=0.85 * machine_memory_gb())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "humanoid")
    parser.add_argument("--runs", type=Path, default=ROOT / "outputs" / "humanoid")
    parser.add_argument(
        "--arm-override",
        action="append",
        default=[],
        metavar="ARM=OVERRIDE",
        help="a Hydra override for one arm's runs, e.g. pathwise=policy.hidden_dim=128",
    )
    parser.add_argument("--report-only", action="store_true", help="tables and plots only")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    args.arm_overrides = {}
    for item in args.arm_override:
        arm, _, override = item.partition("=")
        if arm not in learning.ARMS or "=" not in override:
            parser.error(f"--arm-override: expected ARM=KEY=VALUE with a known arm, got {item!r}")
        args.arm_overrides.setdefault(arm, []).append(override)
    if not args.report_only:
        runs = plan(args.tasks, args.arms, args.seeds, adaptive=not args.no_adaptive)
        run_all(runs, args)
    report(args.out, args.tasks, args.arms)


if __name__ == "__main__":
    main()

"""Learning benchmark: TruDi, pathwise TruDi, REPPO, Gaussian PPO/TRPL and DPPO on Gymnasium MuJoCo v5.

    python -m benchmarks.learning                                   # 5 tasks x 4 arms x 3 seeds, 1M steps
    python -m benchmarks.learning --tasks halfcheetah --arms trudi ppo --seeds 0 --jobs 2
    python -m benchmarks.learning --report-only                     # table and plots from the CSVs

Every run is ``python -m examples.train`` with the same configuration apart from the arm
(``algo``; for pathwise TruDi also ``algo.trust_region``), so the arms share environment steps,
optimizer and evaluation protocol; the likelihood-ratio arms (TruDi, PPO, TRPL, DPPO) also share
the V critic and GAE, the pathwise ones (pathwise TruDi, REPPO) a Q critic on soft λ-returns.
Runs go one after another (``--jobs`` at a time, each on one thread), each in its own
process and run directory (``--runs``/<task>/<arm>/seed<seed>); a run whose CSV already exists is
skipped, so an interrupted benchmark continues where it stopped (and a run with a checkpoint
resumes it with ``resume=true``). Written under ``benchmarks/results/learning/``:

- ``<task>/<arm>-seed<seed>.csv``: env steps, wall-clock (training time, s), evaluation return with
  the deterministic sampler and with the stochastic one;
- ``table.md``: mean ± std over seeds of both evaluation returns at the budget, per task and arm;
- ``<task>.png``: learning curves (deterministic evaluation, mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from examples.plotting import arm_colour

ROOT = Path(__file__).resolve().parents[1]
# Arm: its name in tables, and the overrides that select it.
ARMS = {
    "trudi": ("TruDi", ["algo=trudi"]),
    "ppo": ("Gaussian PPO", ["algo=ppo"]),
    "trpl": ("Gaussian TRPL", ["algo=trpl"]),
    "dppo": ("DPPO", ["algo=dppo"]),
    "pathwise-split": (
        "Pathwise TruDi (split)",
        ["algo=trudi_pathwise", "algo.trust_region=split", "algo.name=pathwise-split"],
    ),
    "pathwise-projection": (
        "Pathwise TruDi (projection)",
        ["algo=trudi_pathwise", "algo.trust_region=projection", "algo.name=pathwise-projection"],
    ),
    "reppo": ("REPPO", ["algo=reppo"]),
}
DEFAULT_ARMS = ("trudi", "ppo", "trpl", "dppo")
TASKS = ("halfcheetah", "hopper", "walker2d", "ant", "humanoid")
FIELDS = ("frames", "wall_clock", "eval_return_deterministic", "eval_return_stochastic")


def run_one(task: str, arm: str, seed: int, args: argparse.Namespace) -> Path:
    """Train one (task, arm, seed) and write its CSV; returns the CSV path."""
    out_csv = args.out / task / f"{arm}-seed{seed}.csv"
    if out_csv.exists():
        return out_csv
    run_dir = args.runs / task / arm / f"seed{seed}"
    resume = (run_dir / "checkpoint.pt").exists()
    command = [
        sys.executable,
        "-m",
        "examples.train",
        f"env={task}",
        *ARMS[arm][1],
        f"seed={seed}",
        f"total_frames={args.frames}",
        f"eval_every={args.eval_every}",
        f"eval_episodes={args.eval_episodes}",
        "progress_bar=false",
        f"resume={str(resume).lower()}",
        f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log = run_dir.parent / f"seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        subprocess.run(command, check=True, stdout=f, stderr=subprocess.STDOUT, env=env)
    history = torch.load(run_dir / "checkpoint.pt", weights_only=False)["history"]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for row in history:
            if "eval_return_deterministic" in row:
                writer.writerow([row[k] for k in FIELDS])
    print(f"done {task} {arm} seed {seed}: {out_csv}", flush=True)
    return out_csv


def read_runs(out: Path, task: str, arm: str) -> list[list[dict[str, float]]]:
    runs = []
    for path in sorted((out / task).glob(f"{arm}-seed*.csv")):
        with path.open() as f:
            runs.append([{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)])
    return [r for r in runs if r]


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.0f} ± {std:.0f} (n={len(values)})"


def write_table(out: Path, tasks, arms) -> None:
    lines = [
        "| task | arm | deterministic eval | stochastic eval | env steps | wall-clock (min) |",
        "|---|---|---|---|---|---|",
    ]
    for task, arm in itertools.product(tasks, arms):
        runs = read_runs(out, task, arm)
        if not runs:
            continue
        finals = [r[-1] for r in runs]
        lines.append(
            f"| {task} | {ARMS[arm][0]} | {mean_std([f['eval_return_deterministic'] for f in finals])} "
            f"| {mean_std([f['eval_return_stochastic'] for f in finals])} "
            f"| {int(statistics.mean(f['frames'] for f in finals)):,} "
            f"| {statistics.mean(f['wall_clock'] for f in finals) / 60:.1f} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(out: Path, tasks, arms) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for task in tasks:
        fig, ax = plt.subplots(figsize=(6, 4))
        for arm in arms:
            runs = read_runs(out, task, arm)
            if not runs:
                continue
            length = min(len(r) for r in runs)
            frames = [runs[0][i]["frames"] for i in range(length)]
            values = [[r[i]["eval_return_deterministic"] for r in runs] for i in range(length)]
            mean = [statistics.mean(v) for v in values]
            std = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            colour = arm_colour(arm)
            ax.plot(frames, mean, label=f"{ARMS[arm][0]} (n={len(runs)})", color=colour)
            ax.fill_between(
                frames,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                alpha=0.2,
                color=colour,
            )
        if ax.lines:
            ax.set_xlabel("environment steps")
            ax.set_ylabel("evaluation return (deterministic)")
            ax.set_title(task)
            ax.legend()
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(out / f"{task}.png", dpi=120)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--eval-every", type=int, default=25, help="iterations between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "learning")
    parser.add_argument("--runs", type=Path, default=ROOT / "outputs" / "benchmark")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only write the table and plots from the CSVs already under --out (no training)",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    if args.report_only:
        write_table(args.out, args.tasks, args.arms)
        plot(args.out, args.tasks, args.arms)
        return
    # Seed-major order: every task and arm gets a first seed before any gets a second.
    runs = [
        (task, arm, seed)
        for seed, task, arm in itertools.product(args.seeds, args.tasks, args.arms)
    ]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in [pool.submit(run_one, *run, args) for run in runs]:
            future.result()
    write_table(args.out, args.tasks, args.arms)
    plot(args.out, args.tasks, args.arms)


if __name__ == "__main__":
    main()

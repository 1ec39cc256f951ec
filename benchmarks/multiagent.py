"""TruDi, pathwise TruDi and MAPPO on VMAS at a fixed frame budget, over seeds; and the tuning.

    python -m benchmarks.multiagent                                   # 3 scenarios x 3 arms x 3 seeds
    python -m benchmarks.multiagent --scenarios navigation --arms trudi mappo --seeds 0 --jobs 2
    python -m benchmarks.multiagent --frames 4096000 trudi_pathwise:policy.num_steps=5 scale=massive
    python -m benchmarks.multiagent --report-only                     # table and plot from the CSVs
    python -m benchmarks.multiagent --tune --arms trudi mappo         # the tuning of PLAN.md

Every run is ``python -m examples.multiagent`` with the example's configuration apart from the arm
(``algo``), the scenario, the seed and the budget, in its own process and run directory
(``--runs``/<scenario>/<arm>/seed<seed>); extra Hydra overrides go to every run, or to one arm's
runs as ``<arm>:<override>``. A run whose CSV exists is skipped and a run with a checkpoint is
resumed (``resume=true``), so an interrupted benchmark continues where it stopped. Runs go
``--jobs`` at a time, one thread each, seed-major. Written under ``--out``
(``benchmarks/results/multiagent/``):

- ``<scenario>/<arm>-seed<seed>.csv``: env steps, wall-clock (training s), training return (mean
  over agents of the episodes finished in the iteration), env steps/s;
- ``table.md``: the return at the budget, mean ± std over seeds, and wall-clock against MAPPO's;
- ``multiagent.png``: mean ± std learning curves, one panel per scenario.

``--tune`` runs every configuration of :data:`TUNING` for the given arms on navigation only (the
same budget and seeds for every arm; defaults: ``--frames 2048000 --seeds 100 101``) into
``--out`` (``benchmarks/results/tuning/multiagent/``) ``<arm>/<config>/`` and ranks them by the
rule of ``benchmarks/results/tuning/multiagent/PLAN.md`` in ``table.md`` there.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from examples.plotting import arm_colour

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# Arm: its name in tables, and the overrides that select it.
ARMS = {
    "trudi": ("TruDi", ["algo=trudi"]),
    "trudi_pathwise": ("Pathwise TruDi", ["algo=trudi_pathwise"]),
    "mappo": ("MAPPO", ["algo=mappo"]),
}
SCENARIOS = ("navigation", "balance", "transport")
BASELINE = "mappo"
FIELDS = ("frames", "wall_clock", "train_return", "steps_per_second")
# The tuning (PLAN.md): the default and five one-at-a-time changes per arm, three of them shared
# (learning rate up and down, four times the minibatches at the same cost), two of the method's own.
TUNING = {
    "mappo": {
        "default": [],
        "lr1e-3": ["lr=1e-3"],
        "lr1e-4": ["lr=1e-4"],
        "mb32": ["minibatches=32"],
        "clip0.1": ["algo.clip_epsilon=0.1"],
        "clip0.3": ["algo.clip_epsilon=0.3"],
    },
    "trudi": {
        "default": [],
        "lr1e-3": ["lr=1e-3"],
        "lr1e-4": ["lr=1e-4"],
        "mb32": ["minibatches=32"],
        "bound0.05": ["projection.mean_bound=0.05", "projection.cov_bound=0.005"],
        "floor0.15": ["sampler.min_std=0.15"],
    },
}
TUNING_OUT = RESULTS / "tuning" / "multiagent"


def _overrides(arm: str, overrides: list[str]) -> list[str]:
    """The overrides for ``arm``'s runs: the plain ones and the ``<arm>:``-prefixed ones."""
    chosen = []
    for override in overrides:
        prefix, colon, rest = override.partition(":")
        if colon and prefix in ARMS and "=" not in prefix:
            chosen += [rest] if prefix == arm else []
        else:
            chosen.append(override)
    return chosen


def run_one(
    scenario: str, arm: str, seed: int, out: Path, runs: Path, frames: int, overrides: list[str]
) -> Path:
    """Train one (scenario, arm, seed) unless its CSV exists; returns the CSV path."""
    out_csv = out / scenario / f"{arm}-seed{seed}.csv"
    if out_csv.exists():
        return out_csv
    run_dir = runs / scenario / arm / f"seed{seed}"
    resume = (run_dir / "checkpoint.pt").exists()
    command = [
        sys.executable,
        "-m",
        "examples.multiagent",
        *ARMS[arm][1],
        f"env.scenario={scenario}",
        f"seed={seed}",
        f"total_frames={frames}",
        "progress_bar=false",
        f"resume={str(resume).lower()}",
        f"hydra.run.dir={run_dir}",
        *_overrides(arm, overrides),
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log = run_dir.parent / f"seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        subprocess.run(command, check=True, stdout=f, stderr=subprocess.STDOUT, env=env)
    history = torch.load(run_dir / "checkpoint.pt", weights_only=False)["history"]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for row in history:
            writer.writerow([row.get(k, math.nan) for k in FIELDS])
    print(f"done {scenario} {arm} seed {seed}: {out_csv}", flush=True)
    return out_csv


def read_runs(out: Path, scenario: str, arm: str) -> list[list[dict[str, float]]]:
    runs = []
    for path in sorted((out / scenario).glob(f"{arm}-seed*.csv")):
        with path.open() as f:
            runs.append([{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)])
    return [r for r in runs if r]


def _mean_std(values: list[float], digits: int = 3) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {std:.{digits}f}"


def final_returns(runs: list[list[dict[str, float]]]) -> list[float]:
    """Each run's training return at the budget (its last finished episodes)."""
    return [r[-1]["train_return"] for r in runs if math.isfinite(r[-1]["train_return"])]


def write_table(out: Path, scenarios, arms, command: str) -> str:
    lines = [
        "| scenario | arm | return at budget | env steps | wall-clock (min) | x MAPPO | env steps/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        base = read_runs(out, scenario, BASELINE)
        base_time = statistics.fmean(r[-1]["wall_clock"] for r in base) if base else None
        for arm in arms:
            runs = read_runs(out, scenario, arm)
            if not runs:
                continue
            time = statistics.fmean(r[-1]["wall_clock"] for r in runs)
            ratio = f"{time / base_time:.1f}" if base_time else "–"
            speed = statistics.fmean(r[-1]["frames"] / r[-1]["wall_clock"] for r in runs)
            lines.append(
                f"| {scenario} | {ARMS[arm][0]} | {_mean_std(final_returns(runs))} "
                f"(n={len(runs)}) | {int(runs[0][-1]['frames']):,} | {time / 60:.1f} | {ratio} "
                f"| {speed:,.0f} |"
            )
    text = (
        f"Command: `{command}`\n\nReturn: the training return (mean over agents) of the episodes "
        "finished in the last iteration; mean ± std over seeds. Wall-clock: training time per "
        "run, one thread.\n\n" + "\n".join(lines) + "\n"
    )
    (out / "table.md").write_text(text)
    return text


def plot(out: Path, scenarios, arms) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 3.8), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for arm in arms:
            runs = read_runs(out, scenario, arm)
            if not runs:
                continue
            length = min(len(r) for r in runs)
            frames = [runs[0][i]["frames"] for i in range(length)]
            curves = torch.tensor([[r[i]["train_return"] for i in range(length)] for r in runs])
            mean = curves.nanmean(0)
            std = curves.std(0) if len(runs) > 1 else torch.zeros_like(mean)
            keep = mean.isfinite()
            x = [f for f, k in zip(frames, keep.tolist(), strict=True) if k]
            colour = arm_colour(arm)
            ax.plot(x, mean[keep], label=f"{ARMS[arm][0]} (n={len(runs)})", color=colour)
            low, high = (mean - std.nan_to_num())[keep], (mean + std.nan_to_num())[keep]
            ax.fill_between(x, low, high, alpha=0.25, color=colour)
        ax.set(title=scenario, xlabel="env steps", ylabel="training return (mean over agents)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out / "multiagent.png", dpi=120)
    plt.close(fig)


def write_tuning_table(out: Path, arms) -> str:
    """Rank each arm's tuning configurations by PLAN.md's rule: the highest mean over the tuning
    seeds of the navigation return at the budget; within 0.01 of the default, the default."""
    lines = [
        "| arm | config | overrides | return at budget (navigation) | seeds | wall-clock (min) |"
    ]
    lines.append("|---|---|---|---|---|---|")
    chosen = []
    for arm in arms:
        scores = {}
        for name, overrides in TUNING[arm].items():
            runs = read_runs(out / arm / name, "navigation", arm)
            returns = final_returns(runs)
            if not returns:
                continue
            scores[name] = statistics.fmean(returns)
            time = statistics.fmean(r[-1]["wall_clock"] for r in runs) / 60
            shown = " ".join(overrides) or "(the example's defaults)"
            lines.append(
                f"| {ARMS[arm][0]} | {name} | `{shown}` | {_mean_std(returns)} | {len(returns)} "
                f"| {time:.1f} |"
            )
        if scores:
            best = max(scores, key=scores.get)
            if "default" in scores and scores[best] - scores["default"] <= 0.01:
                best = "default"
            chosen.append(f"- {ARMS[arm][0]}: **{best}** ({scores[best]:.3f})")
    text = "\n".join(lines) + "\n\nChosen by the rule (PLAN.md):\n\n" + "\n".join(chosen) + "\n"
    (out / "table.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default 0 1 2")
    parser.add_argument("--frames", type=int, default=None, help="env steps per run (2,048,000)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    parser.add_argument(
        "--out", type=Path, help="results/multiagent, or with --tune results/tuning/multiagent"
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "outputs" / "benchmark-multiagent")
    parser.add_argument("--report-only", action="store_true", help="table and plot, no training")
    parser.add_argument("--tune", action="store_true", help="PLAN.md's tuning, navigation only")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, all runs or <arm>:<override>"
    )
    args = parser.parse_args()
    frames = args.frames or 2_048_000
    if args.tune:
        out = args.out or TUNING_OUT
        arms = [arm for arm in args.arms if arm in TUNING]
        seeds = args.seeds or [100, 101]
        if not args.report_only:
            jobs = [
                (arm, name, seed)
                for seed, arm in itertools.product(seeds, arms)
                for name in TUNING[arm]
            ]
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                futures = [
                    pool.submit(
                        run_one,
                        "navigation",
                        arm,
                        seed,
                        out / arm / name,
                        args.runs / "tuning" / arm / name,
                        frames,
                        [*args.overrides, *TUNING[arm][name]],
                    )
                    for arm, name, seed in jobs
                ]
                for future in futures:
                    future.result()
        print(write_tuning_table(out, arms))
        return
    seeds = args.seeds or [0, 1, 2]
    args.out = args.out or RESULTS / "multiagent"
    if not args.report_only:
        runs = itertools.product(seeds, args.scenarios, args.arms)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [
                pool.submit(
                    run_one, scenario, arm, seed, args.out, args.runs, frames, args.overrides
                )
                for seed, scenario, arm in runs
            ]
            for future in futures:
                future.result()
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.multiagent " + " ".join(sys.argv[1:])
    if args.report_only and (args.out / "table.md").exists():  # keep the command that trained
        command = (args.out / "table.md").read_text().split("`")[1]
    print(write_table(args.out, args.scenarios, args.arms, command))
    plot(args.out, args.scenarios, args.arms)


if __name__ == "__main__":
    main()

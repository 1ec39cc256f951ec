"""TruDi vs MAPPO on VMAS navigation and balance at a fixed frame budget, over seeds.

    python -m benchmarks.multiagent                     # 2 scenarios x 2 algos x 3 seeds, CPU
    python -m benchmarks.multiagent --frames 2000000 --num-envs 4096 --device cuda

Each run is ``examples/multiagent.py``'s ``train`` with the example's config (Hydra overrides
below) and a different seed. Writes to ``benchmarks/results/``:

- ``multiagent.json``: every run's learning curve (rewritten after each run);
- ``multiagent.md``: the episode return at the budget (mean ± std over seeds) and wall-clock;
- ``multiagent.png``: mean ± std learning curves, one panel per scenario.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from examples.multiagent import train
from examples.plotting import arm_colour

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "benchmarks" / "results"
CONFIG_DIR = ROOT / "examples" / "conf" / "multiagent"


def config(algo: str, scenario: str, seed: int, args: argparse.Namespace):
    from hydra import compose, initialize_config_dir

    overrides = [
        f"algo={algo}",
        f"env.scenario={scenario}",
        f"seed={seed}",
        f"device={args.device}",
        f"env.num_envs={args.num_envs}",
        f"collector.frames_per_batch={args.num_envs * 100}",
        f"collector.total_frames={args.frames}",
        "log.progress_bar=false",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("config", overrides=overrides)


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def write_table(runs: list[dict], args: argparse.Namespace, path: Path) -> None:
    lines = [
        f"# TruDi vs MAPPO on VMAS ({args.frames:,} env frames, {args.num_envs} envs, "
        f"{args.device}, {len(args.seeds)} seeds)",
        "",
        "Command: `python -m benchmarks.multiagent "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in _cli(args).items())
        + "`",
        "",
        "Return: episode return (mean over agents) of the episodes finished in the last "
        "iteration; mean ± std over seeds. Wall-clock: seconds per run (collection + update).",
        "",
        "| scenario | algo | return at budget | wall-clock (s) |",
        "|---|---|---|---|",
    ]
    for scenario in args.scenarios:
        for algo in args.algos:
            rows = [r for r in runs if r["scenario"] == scenario and r["algo"] == algo]
            if not rows:
                continue
            returns = [r["history"][-1]["return"] for r in rows]
            times = [r["history"][-1]["time_s"] for r in rows]
            lines.append(f"| {scenario} | {algo} | {_mean_std(returns)} | {_mean_std(times)} |")
    path.write_text("\n".join(lines) + "\n")


def plot(runs: list[dict], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(args.scenarios)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.8), squeeze=False)
    for ax, scenario in zip(axes[0], args.scenarios, strict=True):
        for algo in args.algos:
            rows = [r for r in runs if r["scenario"] == scenario and r["algo"] == algo]
            if not rows:
                continue
            frames = [h["frames"] for h in rows[0]["history"]]
            curves = torch.tensor([[h["return"] for h in r["history"]] for r in rows])
            mean, std = curves.mean(0), curves.std(0) if len(rows) > 1 else curves[0] * 0
            ax.plot(frames, mean, label=f"{algo} (n={len(rows)})", color=arm_colour(algo))
            ax.fill_between(frames, mean - std, mean + std, alpha=0.25, color=arm_colour(algo))
        ax.set(title=scenario, xlabel="env frames", ylabel="episode return")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _cli(args: argparse.Namespace) -> dict:
    return {
        "frames": args.frames,
        "num_envs": args.num_envs,
        "device": args.device,
        "seeds": " ".join(map(str, args.seeds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=307_200)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scenarios", nargs="+", default=["navigation", "balance"])
    parser.add_argument("--algos", nargs="+", default=["trudi", "mappo"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    runs = []
    for scenario in args.scenarios:
        for seed in args.seeds:
            for algo in args.algos:
                history = train(config(algo, scenario, seed, args))
                runs.append({"scenario": scenario, "algo": algo, "seed": seed, "history": history})
                last = history[-1]
                print(
                    f"{scenario:>10} {algo:>5} seed {seed}: return {last['return']:.3f} "
                    f"in {last['time_s']:.0f} s",
                    flush=True,
                )
                (args.out / "multiagent.json").write_text(json.dumps(runs, indent=1))
                write_table(runs, args, args.out / "multiagent.md")
    plot(runs, args, args.out / "multiagent.png")
    print((args.out / "multiagent.md").read_text())


if __name__ == "__main__":
    main()

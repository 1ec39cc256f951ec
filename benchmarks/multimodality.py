"""Multimodality of trained policies: spread and mode separation of their actions at fixed states.

    python -m benchmarks.multimodality RUN_DIR [RUN_DIR ...] --out benchmarks/results/humanoid/multimodality
    python -m benchmarks.multimodality outputs/humanoid/dmc_humanoid_walk/trudi/seed0 \\
        outputs/humanoid/dmc_humanoid_walk/ppo/seed0 --labels TruDi "Gaussian PPO"

For each run (a directory with the ``checkpoint.pt`` of ``examples.train``, or the file itself):

1. the states: the env of the run's config with its observation normaliser (frozen), ``--states``
   envs (default 16) seeded with ``--seed``, rolled ``--warmup`` steps (default 200) with the
   trained policy's training (stochastic) distribution; the observation each env has reached is
   one state: in-distribution states of that run's own policy (each run has its own normaliser
   and visits its own states, so the states are not shared between runs);
2. ``--samples`` actions (default 1,000) from the training distribution at each state;
3. per state (``trudi.diagnostics``): the spread (mean per-dimension std, total variance), the
   2-means silhouette, the same for a Gaussian with the samples' mean and covariance (the score a
   unimodal policy of that spread and dimension gets: the silhouette falls with the dimension,
   so only the excess over it means separated modes), Sarle's bimodality coefficient along the
   first principal direction and its maximum over the action dimensions (> 5/9 suggests two
   modes; 1/3 for a Gaussian), and the fraction of action components at or beyond the bounds.

``--space action`` (default) measures what the env receives, the squashed actions. A wide
Gaussian clipped to the bounds puts mass at both ends of a dimension, which reads as bimodal:
the ``at bound`` column shows where that can be the cause. ``--space latent`` measures x_0 before
squashing instead.

Written under ``--out``: ``multimodality.md`` (a summary per run, mean ± std over the states, and
the per-state table), ``multimodality.json`` (every number), ``multimodality.png`` (the actions of
the first ``--plot-states`` states in their first two principal components, coloured by the 2-means
clusters, one row per run).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type

from examples.build import build_critic, build_loss, build_policy
from examples.checkpoint import load_checkpoint
from examples.envs import env_options, make_env, normalizer
from trudi.diagnostics import (
    action_spread,
    bimodality_coefficient,
    principal_projection,
    silhouette_score,
    two_means,
)

COLUMNS = {
    "mean_std": "mean std",
    "total_variance": "total var",
    "silhouette": "2-means silhouette",
    "silhouette_gaussian": "silhouette, Gaussian fit",
    "bimodality_pc1": "BC (PC 1)",
    "bimodality_max_dim": "BC (max dim)",
    "at_bound": "at bound",
}


def load_run(path: Path):
    """``(cfg, checkpoint)`` of a run directory or a ``checkpoint.pt``."""
    path = Path(path)
    checkpoint = load_checkpoint(path / "checkpoint.pt" if path.is_dir() else path)
    return OmegaConf.create(checkpoint["config"]), checkpoint


@torch.no_grad()
def draw_actions(
    cfg, checkpoint, states: int, samples: int, warmup: int, seed: int, space: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[states, samples, A]`` actions (or x_0) of the run's policy at its own rollout states,
    and the action bounds ``low``, ``high`` ``[A]``."""
    options = env_options(cfg.env)
    loaded = make_env(cfg.env.name, 1, seed=seed, reward_scale=cfg.env.reward_scale, **options)
    loaded.transform.load_state_dict(checkpoint["env_transform"])
    obs_norm = normalizer(loaded)
    env = make_env(
        cfg.env.name,
        states,
        seed=seed,
        reward_scale=cfg.env.reward_scale,
        obs_norm=None if obs_norm is None else obs_norm.frozen_copy(),
        **options,
    )
    loaded.close()
    policy = build_policy(cfg, env)
    build_loss(cfg, policy, build_critic(cfg, env)).load_state_dict(checkpoint["loss"])
    torch.manual_seed(seed)
    with set_interaction_type(InteractionType.RANDOM):
        rollout = env.rollout(warmup, policy, break_when_any_done=False)
        observation = rollout[..., -1]["next", "observation"]
        key = policy.tensor_keys.observation
        td = TensorDict({key: observation.unsqueeze(1).expand(-1, samples, -1)}, [states, samples])
        td = policy(td)
    low, high = env.action_spec.space.low, env.action_spec.space.high
    env.close()
    keys = policy.tensor_keys
    drawn = td[keys.action] if space == "action" else td[keys.chain][..., -1, :]
    # The spec of a batched env repeats the bounds per env: [N, A].
    return drawn, low.reshape(-1, low.shape[-1])[0], high.reshape(-1, high.shape[-1])[0]


def state_metrics(
    actions: torch.Tensor,
    low: torch.Tensor | float = -1.0,
    high: torch.Tensor | float = 1.0,
    seed: int = 0,
) -> dict[str, list[float]]:
    """The per-state metrics of ``actions`` ``[S, n, A]`` with bounds ``low``, ``high`` (``[A]``
    or scalars), each a list of S floats; ``at_bound`` counts components at or beyond a bound."""
    actions = actions.double()
    g = torch.Generator().manual_seed(seed)
    mean_std, total_variance = action_spread(actions)
    silhouette = silhouette_score(actions, two_means(actions, generator=g))
    # A Gaussian of the same mean and covariance: the silhouette of one mode at this spread.
    centred = actions - actions.mean(1, keepdim=True)
    covariance = centred.transpose(1, 2) @ centred / (actions.shape[1] - 1)
    jitter = 1e-9 * torch.eye(actions.shape[-1], dtype=actions.dtype)
    factor = torch.linalg.cholesky(covariance + jitter)
    noise = torch.randn(actions.shape, generator=g, dtype=actions.dtype)
    gaussian = actions.mean(1, keepdim=True) + noise @ factor.transpose(1, 2)
    silhouette_gaussian = silhouette_score(gaussian, two_means(gaussian, generator=g))
    per_dim = bimodality_coefficient(actions.transpose(1, 2).reshape(-1, actions.shape[1]))
    low, high = (torch.as_tensor(b, dtype=actions.dtype) for b in (low, high))
    span = 1e-6 * (high - low)
    at_bound = ((actions <= low + span) | (actions >= high - span)).double().mean((1, 2))
    values = {
        "mean_std": mean_std,
        "total_variance": total_variance,
        "silhouette": silhouette,
        "silhouette_gaussian": silhouette_gaussian,
        "bimodality_pc1": bimodality_coefficient(principal_projection(actions)),
        "bimodality_max_dim": per_dim.reshape(actions.shape[0], -1).nan_to_num(0.0).amax(-1),
        "at_bound": at_bound,
    }
    return {name: value.tolist() for name, value in values.items()}


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f}"


def write_report(results: dict[str, dict[str, list[float]]], out: Path, note: str = "") -> str:
    """``multimodality.md`` and ``multimodality.json`` from ``{label: state_metrics(...)}``."""
    out.mkdir(parents=True, exist_ok=True)
    header = "| run | " + " | ".join(COLUMNS.values()) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    lines = [note, "", "Mean ± std over the states:", "", header, rule] if note else [header, rule]
    for label, metrics in results.items():
        cells = " | ".join(_mean_std(metrics[name]) for name in COLUMNS)
        lines.append(f"| {label} | {cells} |")
    lines += ["", "Per state:", "", header.replace("| run |", "| run | state |"), rule + "---|"]
    for label, metrics in results.items():
        for i in range(len(metrics["mean_std"])):
            cells = " | ".join(f"{metrics[name][i]:.3f}" for name in COLUMNS)
            lines.append(f"| {label} | {i} | {cells} |")
    text = "\n".join(lines) + "\n"
    (out / "multimodality.md").write_text(text)
    (out / "multimodality.json").write_text(json.dumps(results, indent=1))
    return text


def plot_states(actions: dict[str, torch.Tensor], out: Path, states: int, seed: int = 0) -> None:
    """``multimodality.png``: each run's actions at its first ``states`` states, in their first
    two principal components, coloured by the 2-means clusters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(actions)
    fig, axes = plt.subplots(rows, states, figsize=(2.6 * states, 2.6 * rows), squeeze=False)
    for row, (label, samples) in enumerate(actions.items()):
        samples = samples[:states].double()
        labels = two_means(samples, generator=torch.Generator().manual_seed(seed))
        centred = samples - samples.mean(1, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        pcs = centred @ vh[:, :2].transpose(1, 2)
        for i, ax in enumerate(axes[row]):
            if pcs.shape[-1] == 1:  # one action dimension: a histogram per cluster
                parts = [pcs[i, labels[i] == c, 0] for c in (0, 1)]
                ax.hist(parts, bins=40, stacked=True, color=["C0", "C3"], alpha=0.7)
            else:
                ax.scatter(*pcs[i].T, c=labels[i], s=3, alpha=0.4, cmap="coolwarm")
                ax.set_aspect("equal", adjustable="datalim")
            ax.set_title(f"{label}, state {i}", fontsize=8)
            ax.tick_params(labelsize=6)
        axes[row][0].set_ylabel("PC 2" if pcs.shape[-1] > 1 else "count")
    for ax in axes[-1]:
        ax.set_xlabel("PC 1")
    fig.tight_layout()
    fig.savefig(out / "multimodality.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or checkpoint.pt")
    parser.add_argument("--labels", nargs="+", help="one per run (default: the run's algo.name)")
    parser.add_argument("--states", type=int, default=16)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200, help="policy steps before the states")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--space", choices=("action", "latent"), default="action")
    parser.add_argument("--plot-states", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/humanoid/multimodality")
    )
    args = parser.parse_args()
    if args.labels is not None and len(args.labels) != len(args.runs):
        parser.error(f"--labels: one per run ({len(args.runs)}), got {len(args.labels)}")
    torch.set_num_threads(args.threads)
    actions, results, tasks = {}, {}, set()
    for i, path in enumerate(args.runs):
        cfg, checkpoint = load_run(path)
        label = args.labels[i] if args.labels else cfg.algo.name
        tasks.add(cfg.env.short)
        drawn, low, high = draw_actions(
            cfg, checkpoint, args.states, args.samples, args.warmup, args.seed, args.space
        )
        actions[label] = drawn
        results[label] = state_metrics(drawn, low, high, seed=args.seed)
        print(f"{label}: {path} at {checkpoint['frames']:,} env steps", flush=True)
    note = (
        f"{', '.join(sorted(tasks))}: {args.samples} {args.space}s at each of {args.states} "
        f"states (seed {args.seed}, after {args.warmup} steps of each run's own policy); "
        f"runs: {', '.join(f'{k} = {p}' for k, p in zip(results, args.runs, strict=True))}."
    )
    print(write_report(results, args.out, note))
    plot_states(actions, args.out, min(args.plot_states, args.states), args.seed)


if __name__ == "__main__":
    main()

"""Train TruDi (or DPPO, PPO, TRPL) on a Gymnasium MuJoCo task, configured with Hydra.

    python examples/train.py                                  # TruDi on HalfCheetah-v5 (default)
    python examples/train.py algo=ppo env=hopper total_frames=1_000_000
    python examples/train.py --multirun seed=0,1,2 algo=trudi,ppo
    python examples/train.py resume=true                      # continue the last checkpoint

Arms (``algo``): ``trudi`` (diffusion policy + TruDiLoss), ``dppo`` (diffusion policy +
DPPOLoss), ``ppo`` (Gaussian policy + TorchRL's ClipPPOLoss) and ``trpl`` (Gaussian policy +
TruDiLoss). Every arm shares the env, critic, GAE, optimizer and evaluation protocol.

Outputs go to ``outputs/<env>/<algo>/seed<seed>/``: CSV logs (TorchRL's ``CSVLogger``; TensorBoard
or W&B with ``logger=tensorboard|wandb``), ``checkpoint.pt`` (written atomically every
``checkpoint_every`` iterations) and ``learning_curve.png``. A non-finite loss stops the run with a
clear error before the optimizer step, so the last checkpoint stays good.
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

import hydra
import torch
from build import build_critic, build_loss, build_policy
from checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from envs import env_options, env_state, load_env_state, make_env, normalizer
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDictBase
from tensordict.nn import InteractionType, set_interaction_type
from torchrl.objectives.value import GAE
from torchrl.record.loggers import get_logger
from tqdm import tqdm


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the run stops before the optimizer step."""


def collect(env, policy, td: TensorDictBase, steps: int) -> tuple[TensorDictBase, TensorDictBase]:
    """Roll the policy for ``steps`` steps; returns the batch ``[N, T]`` and the carry-over td."""
    transitions = []
    with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
        for _ in range(steps):
            td = policy(td)
            transition, td = env.step_and_maybe_reset(td)
            transitions.append(transition)
    return torch.stack(transitions, dim=-1), td


@torch.no_grad()
def evaluate(cfg: DictConfig, train_env, policy, seed: int) -> dict[str, float]:
    """Mean return of one episode per eval env, with the deterministic sampler (probability-flow
    ODE for diffusion policies, the mean for Gaussian ones) and with the stochastic one."""
    obs_norm = normalizer(train_env)
    results = {}
    for name, interaction in (
        ("deterministic", InteractionType.DETERMINISTIC),
        ("stochastic", InteractionType.RANDOM),
    ):
        env = make_env(
            cfg.env.name,
            cfg.eval_episodes,
            seed=seed,
            obs_norm=None if obs_norm is None else obs_norm.frozen_copy(),
            **env_options(cfg.env),
        )
        with set_interaction_type(interaction):
            rollout = env.rollout(cfg.env.max_episode_steps, policy, break_when_any_done=False)
        done = rollout["next", "done"].squeeze(-1)
        # The first episode of each env (its last step if it never ended within the horizon).
        last = torch.full_like(done[..., :1], done.shape[-1] - 1, dtype=torch.long)
        first_done = torch.where(
            done.any(-1, keepdim=True), done.float().argmax(dim=-1, keepdim=True), last
        )
        returns = rollout["next", "episode_reward"].squeeze(-1).gather(-1, first_done)
        results[f"eval_return_{name}"] = returns.mean().item()
        env.close()
    return results


def plot_learning_curve(history: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("train_return", "training episodes"),
        ("eval_return_deterministic", "eval, deterministic"),
        ("eval_return_stochastic", "eval, stochastic"),
    ):
        points = [(h["frames"], h[key]) for h in history if key in h and math.isfinite(h[key])]
        if points:
            ax.plot(*zip(*points, strict=True), label=label, marker="." if "eval" in key else None)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# Fields that may change between a run and its resumption: they do not touch the training itself.
RESUME_MAY_CHANGE = frozenset({"resume", "progress_bar", "logger"})


def _flatten(config: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        flat.update(_flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def check_resumable(saved: dict, cfg: DictConfig, path: Path) -> None:
    """Refuse to resume a checkpoint written under another configuration (another head, bound,
    budget...), which would otherwise load silently when the parameter shapes happen to agree."""
    old, new = _flatten(saved), _flatten(OmegaConf.to_container(cfg))
    changed = sorted(
        key
        for key in old.keys() | new.keys()
        if key.split(".")[0] not in RESUME_MAY_CHANGE and old.get(key) != new.get(key)
    )
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise ValueError(
            f"resume=true: the checkpoint {path} was written under another configuration "
            f"({details}); resume with the same configuration or use a new output directory."
        )


def train(cfg: DictConfig, out_dir: str | Path) -> dict[str, float]:
    """Run the configured training; returns the last iteration's metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)

    env = make_env(
        cfg.env.name,
        cfg.num_envs,
        seed=cfg.seed,
        reward_scale=cfg.env.reward_scale,
        **env_options(cfg.env),
    )
    policy = build_policy(cfg, env)
    critic = build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    advantage = GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=critic, average_gae=False)
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr, eps=1e-5)
    frames_per_iter = cfg.num_envs * cfg.rollout_length
    iterations = max(1, cfg.total_frames // frames_per_iter)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 1.0 - i / iterations if cfg.lr_schedule == "linear" else 1.0
    )

    ckpt_path = out_dir / "checkpoint.pt"
    history: list[dict[str, float]] = []
    start, logger_state = 0, None
    td = env.reset()
    if cfg.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        check_resumable(ckpt["config"], cfg, ckpt_path)
        loss.load_state_dict(ckpt["loss"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        env.transform.load_state_dict(ckpt["env_transform"])
        td = load_env_state(env, ckpt["env_state"], ckpt["carry"])
        set_rng_state(ckpt["rng"])
        start, history, logger_state = ckpt["iteration"], ckpt["history"], ckpt["logger"]
    logger = get_logger(
        cfg.logger,
        logger_name=str(out_dir),
        experiment_name="logs",
        state_dict=logger_state,
        **(
            {"wandb_kwargs": {"project": "trudi", "config": OmegaConf.to_container(cfg)}}
            if cfg.logger == "wandb"
            else {}
        ),
    )

    def checkpoint(iteration: int) -> None:
        save_checkpoint(
            ckpt_path,
            {
                "iteration": iteration,
                "loss": loss.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "env_transform": env.transform.state_dict(),
                "env_state": env_state(env),
                "carry": td,
                "rng": rng_state(),
                "history": history,
                "logger": logger.state_dict() if hasattr(logger, "state_dict") else None,
                "config": OmegaConf.to_container(cfg),
            },
        )

    minibatch = frames_per_iter // cfg.minibatches
    progress = tqdm(
        total=iterations * frames_per_iter,
        initial=start * frames_per_iter,
        unit="step",
        dynamic_ncols=True,
        disable=not cfg.progress_bar,
    )
    recent_returns: list[float] = [h["train_return"] for h in history[-5:] if "train_return" in h]
    metrics: dict[str, float] = {}
    wall_clock = history[-1]["wall_clock"] if history else 0.0  # training time, evaluation excluded
    for iteration in range(start, iterations):
        tic = time.perf_counter()
        batch, td = collect(env, policy, td, cfg.rollout_length)
        finished = batch["next", "done"].squeeze(-1)
        if finished.any():
            recent_returns = [
                *recent_returns,
                batch["next", "episode_reward"][finished].mean().item(),
            ][-5:]
        collect_time = time.perf_counter() - tic

        with torch.no_grad():
            advantage(batch)
        flat = batch.reshape(-1)
        sums: dict[str, float] = {}
        for _ in range(cfg.epochs):
            for index in torch.randperm(flat.numel()).split(minibatch):
                out = loss(flat[index])
                total = sum(v for k, v in out.items() if k.startswith("loss_"))
                if not torch.isfinite(total):
                    bad = [k for k, v in out.items() if k.startswith("loss_") and not v.isfinite()]
                    raise NonFiniteLossError(
                        f"non-finite {bad} at iteration {iteration}; nothing was stepped. The "
                        f"last good checkpoint is {ckpt_path} (resume=true continues from it)."
                    )
                optimizer.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), cfg.max_grad_norm)
                optimizer.step()
                for key, value in out.items():
                    if value.numel() == 1:
                        sums[key] = sums.get(key, 0.0) + value.item()
        schedule.step()
        wall_clock += time.perf_counter() - tic
        updates = cfg.epochs * math.ceil(flat.numel() / minibatch)
        frames = (iteration + 1) * frames_per_iter
        metrics = {k: v / updates for k, v in sums.items()}
        metrics.update(
            frames=frames,
            train_return=recent_returns[-1] if recent_returns else float("nan"),
            steps_per_second=frames_per_iter / (time.perf_counter() - tic),
            collect_fraction=collect_time / (time.perf_counter() - tic),
            lr=schedule.get_last_lr()[0],
            wall_clock=wall_clock,
        )
        last = iteration + 1 == iterations
        if cfg.eval_every and ((iteration + 1) % cfg.eval_every == 0 or last):
            metrics.update(evaluate(cfg, env, policy, seed=cfg.seed + 10_000 + iteration))
        history.append(metrics)
        for key, value in metrics.items():
            logger.log_scalar(key, value, step=frames)
        progress.update(frames_per_iter)
        progress.set_postfix(
            ret=f"{metrics['train_return']:.0f}",
            sps=f"{metrics['steps_per_second']:.0f}",
            kl=f"{metrics.get('kl_trajectory_after', metrics.get('kl_approx', 0.0)):.3f}",
            proj=f"{metrics.get('frac_projected', metrics.get('clip_fraction', 0.0)):.2f}",
        )
        if (iteration + 1) % cfg.checkpoint_every == 0 or last:
            checkpoint(iteration + 1)
    progress.close()
    plot_learning_curve(
        history, out_dir / "learning_curve.png", f"{cfg.algo.name} on {cfg.env.name}"
    )
    env.close()
    return metrics


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    out_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    metrics = train(cfg, out_dir)
    print(
        f"done: {metrics.get('frames', 0):,} env steps, last training return "
        f"{metrics.get('train_return', float('nan')):.1f}, deterministic eval return "
        f"{metrics.get('eval_return_deterministic', float('nan')):.1f}; outputs in {out_dir}"
    )
    return metrics.get("eval_return_deterministic", float("nan"))


if __name__ == "__main__":
    sys.exit(main())

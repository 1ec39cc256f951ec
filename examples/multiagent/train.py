"""The multi-agent training loop: collect, advantages or soft returns, update, log, checkpoint.

The training example's loop shape and pieces (:mod:`examples.train`'s ``collect``,
:func:`examples.update.update`, the run directory, atomic checkpoints, Ctrl-C and non-finite-loss
stops) with VMAS envs and agent-level keys. Resume continues the learner exactly (networks,
optimizer, schedule, duals, random state, history); the VMAS envs cannot be saved, so a resumed run
starts every env on a new episode, as the training example's EnvPool backend does.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torchrl.record.loggers import get_logger
from tqdm import tqdm

from examples.checkpoint import rng_state, save_checkpoint, set_rng_state
from examples.config import ConfigError
from examples.interrupt import StopRequest, TrainingInterrupted
from examples.multiagent.build import EPISODE_REWARD, broadcast_team_done, make_env, make_loss
from examples.multiagent.config import validate_multiagent
from examples.plotting import plot_learning_curve
from examples.run_dir import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    check_resumable,
    describe,
    open_run,
    trim_csv_logs,
)
from examples.train import NonFiniteLossError, collect
from examples.update import update

__all__ = ["train"]


def train(
    cfg: DictConfig,
    out_dir: str | Path,
    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Run the configured multi-agent training in ``out_dir``; returns one metrics row per iteration.

    ``train_return`` is the episode return, mean over agents, of the episodes finished in the
    iteration (the last value carries over an iteration without one). ``on_iteration(iteration,
    metrics)`` runs after each iteration is logged, before its checkpoint. Errors as
    :func:`examples.train.train`'s: :class:`~examples.config.ConfigError` and
    :class:`~examples.run_dir.RunDirectoryError` before anything is built, Ctrl-C as
    :class:`~examples.interrupt.TrainingInterrupted`, a non-finite loss as
    :class:`~examples.train.NonFiniteLossError` before its iteration is saved.
    """
    validate_multiagent(cfg)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT
    ckpt = open_run(out_dir, cfg.resume)
    if ckpt is not None:
        check_resumable(ckpt["config"], cfg, ckpt_path)
    frames_per_iter = cfg.num_envs * cfg.rollout_length
    iterations = cfg.total_frames // frames_per_iter
    if iterations == 0:  # validate checked it; a config changed after composition may not be
        raise ConfigError(f"total_frames: must be >= one iteration of {frames_per_iter:,} steps")
    budget = iterations * frames_per_iter
    if ckpt is not None and ckpt["iteration"] == iterations:
        print(f"{out_dir} already finished at {describe(ckpt)}; nothing to train.")
        return ckpt["history"]
    print(f"budget: {iterations} iterations x {frames_per_iter:,} env steps = {budget:,}")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)

    env = make_env(cfg)
    loss, policy = make_loss(cfg, env)
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr, eps=1e-5)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 1.0 - i / iterations if cfg.lr_schedule == "linear" else 1.0
    )
    history: list[dict[str, float]] = []
    start, logger_state = 0, None
    if ckpt is not None:
        loss.load_state_dict(ckpt["loss"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        set_rng_state(ckpt["rng"])
        start, history, logger_state = ckpt["iteration"], ckpt["history"], ckpt["logger"]
        trim_csv_logs(out_dir / "logs", ckpt["frames"])
        print(f"resumed {ckpt_path} at {describe(ckpt)}; the envs start new episodes")
    td = env.reset()
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
                "format": CHECKPOINT_FORMAT,
                "iteration": iteration,
                "frames": iteration * frames_per_iter,
                "budget": budget,
                "loss": loss.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "rng": rng_state(),
                "history": history,
                "logger": logger.state_dict() if hasattr(logger, "state_dict") else None,
                "config": OmegaConf.to_container(cfg, resolve=True),
            },
        )

    if ckpt is None:
        checkpoint(0)  # so that any later stop, however hard, leaves a checkpoint to resume
        OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    saved = start
    progress = tqdm(
        total=budget,
        initial=start * frames_per_iter,
        unit="step",
        dynamic_ncols=True,
        disable=not cfg.progress_bar,
    )
    train_return = history[-1].get("train_return") if history else None
    wall_clock = history[-1]["wall_clock"] if history else 0.0
    stop = StopRequest()
    try:
        with stop:
            for iteration in range(start, iterations):
                tic = time.perf_counter()
                batch, td = collect(env, policy, td, cfg.rollout_length)
                collect_time = time.perf_counter() - tic
                batch = broadcast_team_done(batch)
                done = batch["next", "done"]  # [E, T, 1], the team's
                returns = batch.get(("next", *EPISODE_REWARD)).mean(-2)  # over agents, [E, T, 1]
                episodes = [(returns * done).sum(), done.sum()]
                if hasattr(loss, "sync_old_policy"):  # pathwise: old policy = behaviour one
                    loss.sync_old_policy()
                with torch.no_grad():
                    loss.value_estimator(batch)
                means = update(cfg, loss, optimizer, batch)
                # The iteration's one host-device sync.
                *values, finished_return, finished = torch.stack(
                    [*means.values(), *episodes]
                ).tolist()
                metrics = dict(zip(means, values, strict=True))
                bad = [
                    k for k, v in metrics.items() if k.startswith("loss_") and not math.isfinite(v)
                ]
                if bad:
                    raise NonFiniteLossError(
                        f"non-finite {bad} in iteration {iteration + 1}, which is not saved. The "
                        f"last good checkpoint is {ckpt_path} (resume=true continues from it)."
                    )
                schedule.step()
                elapsed = time.perf_counter() - tic
                wall_clock += elapsed
                if finished:
                    train_return = finished_return / finished
                frames = (iteration + 1) * frames_per_iter
                metrics.update(
                    frames=frames,
                    steps_per_second=frames_per_iter / elapsed,
                    collect_fraction=collect_time / elapsed,
                    lr=schedule.get_last_lr()[0],
                    wall_clock=wall_clock,
                )
                if train_return is not None:
                    metrics["train_return"] = train_return
                history.append(metrics)
                for key, value in metrics.items():
                    logger.log_scalar(key, value, step=frames)
                progress.update(frames_per_iter)
                progress.set_postfix(_postfix(metrics))
                if on_iteration is not None:
                    on_iteration(iteration + 1, metrics)
                last = iteration + 1 == iterations
                if stop.requested or last or (iteration + 1) % cfg.checkpoint_every == 0:
                    checkpoint(iteration + 1)
                    saved = iteration + 1
                if stop.requested and not last:
                    raise TrainingInterrupted(saved, graceful=True)
    except KeyboardInterrupt as error:
        if isinstance(error, TrainingInterrupted):
            raise
        raise TrainingInterrupted(saved, graceful=False) from None
    finally:
        progress.close()
        title = f"{cfg.algo.name} on VMAS {cfg.env.scenario}"
        plot_learning_curve(history, out_dir / "learning_curve.png", title, cfg.algo.name)
        env.close()
    return history


def _postfix(metrics: dict[str, float]) -> dict[str, str]:
    postfix = {"ret": f"{metrics['train_return']:.3f}"} if "train_return" in metrics else {}
    postfix["sps"] = f"{metrics['steps_per_second']:.0f}"
    kl = metrics.get("kl_trajectory_after", metrics.get("kl_trajectory", metrics.get("kl_approx")))
    if kl is not None:
        postfix["kl"] = f"{kl:.3f}"
    return postfix

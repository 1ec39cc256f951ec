"""Train TruDi (or DPPO, PPO, TRPL) on a Gymnasium MuJoCo task, configured with Hydra.

Run from the repository root (``examples`` is a package):

    python -m examples.train                                  # TruDi on HalfCheetah-v5 (default)
    python -m examples.train algo=ppo env=hopper total_frames=1_000_000
    python -m examples.train --multirun seed=0,1,2 algo=trudi,ppo
    python -m examples.train resume=true                      # continue this run's checkpoint

Arms (``algo``): ``trudi`` (diffusion policy + TruDiLoss), ``dppo`` (diffusion policy +
DPPOLoss), ``ppo`` (Gaussian policy + TorchRL's ClipPPOLoss) and ``trpl`` (Gaussian policy +
TruDiLoss) share the env, V critic, GAE, optimizer and evaluation protocol; the pathwise arms
``trudi_pathwise`` (``algo.trust_region=split|projection``) and ``reppo`` use a Q critic and their
loss's soft lambda-returns instead (docs/pathwise.md). Every field is declared and documented in
``examples/config.py`` and checked before anything is built.

Each run has its own directory, ``outputs/<env>/<algo>/seed<seed>/`` (``hydra.run.dir=`` picks
another), and a fresh run refuses one that holds an earlier run (``examples/run_dir.py``). It
writes CSV logs (TorchRL's ``CSVLogger``; TensorBoard or W&B with ``logger=tensorboard|wandb``),
``checkpoint.pt`` (atomically, at the start and every ``checkpoint_every`` iterations) and
``learning_curve.png``. Ctrl-C finishes the iteration, writes both and prints the resume command;
a non-finite loss stops the run before that iteration is saved, so the last checkpoint stays good.

Data-parallel on N processes (``docs/distributed.md``), every arm and env:

    torchrun --standalone --nproc_per_node=2 -m examples.train env=pendulum

Each rank steps ``num_envs`` envs of its own (seeds offset by rank); ``total_frames`` counts the
steps of all ranks. Gradients and normaliser statistics are averaged over the ranks, so the ranks
keep identical parameters; rank 0 alone logs, evaluates, plots and writes the checkpoint, which
holds every rank's envs and random state and resumes with the same number of ranks.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDictBase
from tensordict.nn import InteractionType, set_interaction_type
from torchrl.record.loggers import get_logger
from tqdm import tqdm

from examples import distributed
from examples.build import (
    build_critic,
    build_loss,
    build_optimizer,
    build_policy,
    build_value_estimator,
)
from examples.checkpoint import rng_state, save_checkpoint, set_rng_state
from examples.compiling import compile_for_training
from examples.config import CONFIG_DIR, ConfigError, validate
from examples.envs import env_options, env_state, load_env_state, make_env, normalizer
from examples.evaluate import evaluate
from examples.interrupt import StopRequest, TrainingInterrupted
from examples.kl_tightness import KLTightness
from examples.plotting import plot_learning_curve
from examples.run_dir import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    RunDirectoryError,
    check_resumable,
    describe,
    open_run,
    resume_command,
    trim_csv_logs,
)
from examples.update import update


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the run stops before checkpointing that iteration."""


def collect(env, policy, td: TensorDictBase, steps: int) -> tuple[TensorDictBase, TensorDictBase]:
    """Roll the policy for ``steps`` steps; returns the batch ``[N, T]`` and the carry-over td.

    A hand-written loop rather than TorchRL's ``Collector`` (which collects as fast: 104-105% of
    this loop's frames/s, ``benchmarks/results/envs.md``) because resume is exact on the gymnasium
    backend only if the checkpoint holds ``td``, the tensordict the next step starts from (the
    observation normalised with the statistics of that moment, ``step_count``, the running
    ``episode_reward``), and torchrl 0.14's ``Collector`` can neither hand it out nor take it back
    through public API: it keeps it in the private ``_carrier``; ``Collector.__init__`` fills it
    with ``env.reset()`` unconditionally; ``reset()`` refills it with ``env.reset(...)``, which
    restarts the simulator; and ``state_dict()`` / ``load_state_dict()`` keep only the env
    transforms, the policy weights, the frame counters and the trajectory-id pool, never the
    carrier's content. A resumed run would start every env on a new episode, as EnvPool's do.
    """
    transitions = []
    with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
        for _ in range(steps):
            td = policy(td)
            transition, td = env.step_and_maybe_reset(td)
            transitions.append(transition)
    return torch.stack(transitions, dim=-1), td


def train(
    cfg: DictConfig,
    out_dir: str | Path,
    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Run the configured training in ``out_dir``; returns the last iteration's metrics.

    ``on_iteration(iteration, metrics)`` runs after each iteration is logged, before its
    checkpoint (``iteration`` counts from 1). :class:`~examples.config.ConfigError` and
    :class:`~examples.run_dir.RunDirectoryError` come before anything is built; Ctrl-C ends in
    :class:`~examples.interrupt.TrainingInterrupted`.

    Under torchrun (or in a process group already initialised) this process is one rank of a
    data-parallel run (``examples/distributed.py``); the metrics returned are the ranks' means,
    with rank 0's evaluation.
    """
    validate(cfg)
    rank = distributed.setup()
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT
    ckpt = distributed.from_main(lambda: _open_run(cfg, out_dir, rank.world_size))
    # Every rank's envs step num_envs x rollout_length per iteration.
    frames_per_iter = cfg.num_envs * cfg.rollout_length * rank.world_size
    iterations = cfg.total_frames // frames_per_iter
    if iterations == 0:
        raise ConfigError(
            f"invalid configuration:\n  total_frames: must be >= one iteration of "
            f"{rank.world_size} ranks x num_envs x rollout_length = {frames_per_iter:,}, "
            f"got {cfg.total_frames:,}"
        )
    budget = iterations * frames_per_iter
    if ckpt is not None and ckpt["iteration"] == iterations:
        if rank.is_main:
            print(f"{out_dir} already finished at {describe(ckpt)}; nothing to train.")
        return ckpt["history"][-1]
    rounded = (
        "" if budget == cfg.total_frames else f", total_frames={cfg.total_frames:,} rounded down"
    )
    ranks = f" ({rank.world_size} ranks)" if rank.world_size > 1 else ""
    if rank.is_main:
        print(
            f"budget: {iterations} iterations x {frames_per_iter:,} env steps{ranks} = "
            f"{budget:,}{rounded}"
        )
    seed = cfg.seed + rank.rank
    torch.manual_seed(seed)
    random.seed(seed)
    torch.set_num_threads(cfg.threads)

    # Sub-env i of rank r gets seed + r * num_envs + i: the ranks' envs are those of one big env.
    env_seed = cfg.seed + rank.rank * cfg.num_envs
    env = make_env(
        cfg.env.name,
        cfg.num_envs,
        seed=env_seed,
        reward_scale=cfg.env.reward_scale,
        **env_options(cfg.env),
    )
    policy = build_policy(cfg, env)
    critic = build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    distributed.broadcast_parameters(loss)
    if cfg.compile:
        compile_for_training(policy, loss, cfg.compile_mode)
    advantage = build_value_estimator(cfg, loss, critic)
    tightness = KLTightness(cfg, loss, policy, seed)
    optimizer = build_optimizer(cfg, loss, critic)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 1.0 - i / iterations if cfg.lr_schedule == "linear" else 1.0
    )

    history: list[dict[str, float]] = []
    start, logger_state = 0, None
    td = env.reset()
    if ckpt is not None:
        loss.load_state_dict(ckpt["loss"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        env.transform.load_state_dict(ckpt["env_transform"])
        own = ckpt if rank.is_main else ckpt["other_ranks"][rank.rank - 1]
        td = load_env_state(env, own["env_state"], own["carry"])
        set_rng_state(own["rng"])
        tightness.load_state_dict(ckpt.get("kl_tightness"))
        start, history, logger_state = ckpt["iteration"], ckpt["history"], ckpt["logger"]
        if rank.is_main:
            # After a hard stop the logs hold steps past the checkpoint, which this run logs again.
            trim_csv_logs(out_dir / "logs", ckpt["frames"])
            print(f"resumed {ckpt_path} at {describe(ckpt)}")
    logger = None
    if rank.is_main:
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
        # What differs between ranks; rank 0 writes all of it (the rest is the same on every rank).
        states = distributed.gather({"env_state": env_state(env), "carry": td, "rng": rng_state()})
        if not rank.is_main:
            return
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
                "kl_tightness": tightness.state_dict(),
                "env_transform": env.transform.state_dict(),
                **states[0],
                "world_size": rank.world_size,
                "other_ranks": states[1:],
                "history": history,
                "logger": logger.state_dict() if hasattr(logger, "state_dict") else None,
                "config": OmegaConf.to_container(cfg, resolve=True),
            },
        )

    if ckpt is None:
        checkpoint(0)  # so that any later stop, however hard, leaves a checkpoint to resume
        if rank.is_main:
            OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    saved = start
    progress = tqdm(
        total=budget,
        initial=start * frames_per_iter,
        unit="step",
        dynamic_ncols=True,
        disable=not (cfg.progress_bar and rank.is_main),
    )
    train_return = history[-1].get("train_return") if history else None
    wall_clock = history[-1]["wall_clock"] if history else 0.0  # training time, evaluation excluded
    metrics: dict[str, float] = {}
    stop = StopRequest()
    try:
        with stop:
            for iteration in range(start, iterations):
                tic = time.perf_counter()
                batch, td = collect(env, policy, td, cfg.rollout_length)
                distributed.average_normalizer(normalizer(env))
                collect_time = time.perf_counter() - tic
                done = batch["next", "done"]
                episodes = [(batch["next", "episode_reward"] * done).sum(), done.sum()]
                if hasattr(loss, "sync_old_policy"):  # pathwise arms: old policy = behaviour one
                    loss.sync_old_policy()
                with torch.no_grad():
                    advantage(batch)
                tightness.before_update(iteration)
                means = update(cfg, loss, optimizer, batch)
                # The ranks' means (a ratio of sums is a ratio of means), so that every rank takes
                # the same decisions; the iteration's one host-device sync.
                reduced = distributed.all_mean(torch.stack([*means.values(), *episodes]))
                *values, returns, finished = reduced.tolist()
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
                wall_clock += time.perf_counter() - tic
                if finished:
                    train_return = returns / finished
                frames = (iteration + 1) * frames_per_iter
                metrics.update(
                    frames=frames,
                    steps_per_second=frames_per_iter / (time.perf_counter() - tic),
                    collect_fraction=collect_time / (time.perf_counter() - tic),
                    lr=schedule.get_last_lr()[0],
                    wall_clock=wall_clock,
                )
                if train_return is not None:
                    metrics["train_return"] = train_return
                metrics.update(tightness.after_update(iteration, batch))
                last = iteration + 1 == iterations
                evaluating = cfg.eval_every and ((iteration + 1) % cfg.eval_every == 0 or last)
                if evaluating and rank.is_main:
                    metrics.update(evaluate(cfg, env, policy, seed=cfg.seed + 10_000 + iteration))
                history.append(metrics)
                for key, value in metrics.items() if logger is not None else ():
                    logger.log_scalar(key, value, step=frames)
                progress.update(frames_per_iter)
                progress.set_postfix(_postfix(metrics))
                if on_iteration is not None:
                    on_iteration(iteration + 1, metrics)
                stopping = distributed.any_rank(stop.requested)
                if stopping or last or (iteration + 1) % cfg.checkpoint_every == 0:
                    checkpoint(iteration + 1)
                    saved = iteration + 1
                if stopping and not last:
                    raise TrainingInterrupted(saved, graceful=True)
    except KeyboardInterrupt as error:
        if isinstance(error, TrainingInterrupted):
            raise
        raise TrainingInterrupted(saved, graceful=False) from None
    finally:
        progress.close()
        if rank.is_main:
            title = f"{cfg.algo.name} on {cfg.env.name}"
            plot_learning_curve(history, out_dir / "learning_curve.png", title, cfg.algo.name)
        env.close()
    return metrics


def _open_run(cfg: DictConfig, out_dir: Path, world_size: int) -> dict | None:
    """The checkpoint to resume (``None`` for a fresh run), checked against this run."""
    ckpt = open_run(out_dir, cfg.resume)
    if ckpt is None:
        return None
    check_resumable(ckpt["config"], cfg, out_dir / CHECKPOINT)
    saved = ckpt.get("world_size", 1)
    if saved != world_size:
        raise RunDirectoryError(
            f"resume=true: the checkpoint {out_dir / CHECKPOINT} was written by {saved} rank(s), "
            f"this run has {world_size}; each rank resumes its own envs, so resume with "
            f"torchrun --nproc_per_node={saved} (or plain python for 1)."
        )
    return ckpt


def _postfix(metrics: dict[str, float]) -> dict[str, str]:
    """The progress bar's figures; the return only once an episode has finished."""
    postfix = {"ret": f"{metrics['train_return']:.0f}"} if "train_return" in metrics else {}
    postfix["sps"] = f"{metrics['steps_per_second']:.0f}"
    postfix["kl"] = f"{metrics.get('kl_trajectory_after', metrics.get('kl_approx', 0.0)):.3f}"
    postfix["proj"] = f"{metrics.get('frac_projected', metrics.get('clip_fraction', 0.0)):.2f}"
    return postfix


def _summary(metrics: dict[str, float]) -> str:
    parts = [f"{metrics['frames']:,} env steps"]
    if "train_return" in metrics:
        parts.append(f"last training return {metrics['train_return']:.1f}")
    if "eval_return_deterministic" in metrics:
        parts.append(f"deterministic eval return {metrics['eval_return_deterministic']:.1f}")
    return ", ".join(parts)


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    run = HydraConfig.get()
    out_dir = Path(run.runtime.output_dir)
    rank = distributed.setup()
    # Every rank raises the same errors and stops together; rank 0 alone tells the user.
    say = print if rank.is_main else lambda *args: None
    try:
        metrics = train(cfg, out_dir)
    except (ConfigError, RunDirectoryError) as error:
        sys.exit(f"error: {error}" if rank.is_main else 1)
    except KeyboardInterrupt as stop:
        if isinstance(stop, TrainingInterrupted) and stop.graceful:
            say(
                f"stopped at iteration {stop.checkpoint_iteration}; checkpoint and plot in {out_dir}."
            )
        elif isinstance(stop, TrainingInterrupted):
            say(
                f"stopped at once; the last checkpoint is of iteration {stop.checkpoint_iteration} "
                f"(resuming redoes the steps after it); plot in {out_dir}."
            )
        else:
            say("stopped while starting, before the first iteration.")
        if (out_dir / CHECKPOINT).exists():
            command = resume_command(out_dir, list(run.overrides.task), nproc=rank.world_size)
            say(f"resume with:\n  {command}")
        sys.exit(130)
    finally:
        distributed.shutdown()
    say(f"done: {_summary(metrics)}; outputs in {out_dir}")
    return metrics.get("eval_return_deterministic", float("nan"))


if __name__ == "__main__":
    sys.exit(main())

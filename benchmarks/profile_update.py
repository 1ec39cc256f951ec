"""Where the update's time goes: torch.profiler over the example's update, per op, by self CPU time.

    python -m benchmarks.profile_update [--task halfcheetah] [--threads 1] [--arm trudi] [--top 25]
        [--rounds 3] [--no-profile] [overrides ...]

Builds the training example's arm (``examples/conf``, TruDi K = 5 by default) on ``--task``, collects
one iteration (64 envs x 64 steps) with it, then runs that iteration's update with
``examples.update.update`` (the example's own: ``epochs`` x ``minibatches`` steps of loss, backward,
gradient clip, optimizer) ``--rounds`` times after a warm-up; it prints the best round's
milliseconds per minibatch update, by wall-clock and by this process's CPU time, and, unless
``--no-profile``, the profiler's table (by self CPU time) of one more round. Extra arguments are
Hydra overrides (``compile=true``, ``policy.num_steps=10``).
"""

from __future__ import annotations

import argparse
import time

import torch
from omegaconf import open_dict
from tensordict.nn import InteractionType, set_interaction_type
from torch.profiler import ProfilerActivity, profile

from examples.build import (
    build_critic,
    build_loss,
    build_optimizer,
    build_policy,
    build_value_estimator,
)
from examples.compiling import compile_for_training
from examples.config import compose_config
from examples.envs import make_env
from examples.update import update

ARMS = {"trudi": ["algo=trudi"], "ppo": ["algo=ppo"], "pathwise": ["algo=trudi_pathwise"]}


def prepare(cfg):
    """The arm's loss and optimizer and one collected batch ``[N, T]`` with advantages."""
    torch.manual_seed(cfg.seed)
    env = make_env(cfg.env.name, cfg.num_envs, seed=cfg.seed, reward_scale=cfg.env.reward_scale)
    policy, critic = build_policy(cfg, env), build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    if cfg.compile:
        compile_for_training(policy, loss, cfg.compile_mode)
    advantage = build_value_estimator(cfg, loss, critic)
    optimizer = build_optimizer(cfg, loss, critic)
    td, steps = env.reset(), []
    with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
        for _ in range(cfg.rollout_length):
            step, td = env.step_and_maybe_reset(policy(td))
            steps.append(step)
    env.close()
    batch = torch.stack(steps, dim=-1)
    if hasattr(loss, "sync_old_policy"):
        loss.sync_old_policy()
    with torch.no_grad():
        advantage(batch)
    return loss, optimizer, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="halfcheetah")
    parser.add_argument("--arm", default="trudi", choices=sorted(ARMS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    cfg = compose_config(
        f"env={args.task}", "env.backend=gymnasium", *ARMS[args.arm], *args.overrides
    )
    torch.set_num_threads(args.threads)
    loss, optimizer, batch = prepare(cfg)
    updates = cfg.epochs * cfg.minibatches
    with open_dict(cfg):
        warm_up = cfg.copy()
        warm_up.epochs = 1
    update(warm_up, loss, optimizer, batch)  # warm-up (and compilation, with compile=true)
    wall, cpu = float("inf"), float("inf")
    for _ in range(args.rounds):
        tic, cpu_tic = time.perf_counter(), time.process_time()
        update(cfg, loss, optimizer, batch)
        wall = min(wall, time.perf_counter() - tic)
        cpu = min(cpu, time.process_time() - cpu_tic)
    print(
        f"{args.arm} on {args.task}, {args.threads} thread(s), {updates} minibatches of "
        f"{batch.numel() // cfg.minibatches}: {1e3 * wall / updates:.2f} ms per update "
        f"(wall-clock), {1e3 * cpu / updates:.2f} ms (CPU time), best of {args.rounds}"
    )
    if args.no_profile:
        return
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        update(cfg, loss, optimizer, batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()

"""Where the update's time goes: torch.profiler over the example's update, per op, by self CPU time.

    python -m benchmarks.profile_update [--task halfcheetah] [--threads 1] [--arm trudi] [--top 25]
        [--updates 16] [--rounds 5] [--no-profile] [overrides ...]

Builds the training example's arm (``examples/conf``, TruDi K = 5 by default) on ``--task``, collects
one iteration (64 envs x 64 steps) with it, then runs ``--updates`` minibatch updates of
``examples.update.update`` (the example's own update step: loss, backward, gradient clip, Adam),
``--rounds`` times; it prints the best round's milliseconds per minibatch update and, unless
``--no-profile``, the profiler's table of one more round. Extra arguments are Hydra overrides
(``compile=true``, ``policy.num_steps=10``).
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
    parser.add_argument("--updates", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    cfg = compose_config(
        f"env={args.task}", "env.backend=gymnasium", *ARMS[args.arm], *args.overrides
    )
    torch.set_num_threads(args.threads)
    loss, optimizer, batch = prepare(cfg)
    # One epoch of args.updates minibatches of the configured size per call of update().
    size = batch.numel() // cfg.minibatches
    samples = batch.reshape(-1)[: size * args.updates]
    with open_dict(cfg):
        cfg.epochs, cfg.minibatches = 1, args.updates
    update(cfg, loss, optimizer, samples)  # warm-up (and compilation, with compile=true)
    best = float("inf")
    for _ in range(args.rounds):
        tic = time.perf_counter()
        update(cfg, loss, optimizer, samples)
        best = min(best, time.perf_counter() - tic)
    print(
        f"{args.arm} on {args.task}, {args.threads} thread(s), minibatch {size}: "
        f"{1e3 * best / args.updates:.2f} ms per update (best of {args.rounds})"
    )
    if args.no_profile:
        return
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        update(cfg, loss, optimizer, samples)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()

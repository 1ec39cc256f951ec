"""The one-row covariance projection of ``TruDiLoss``, on and off, in one process: CPU time per
minibatch update (loss forward and backward) of the examples' TruDi arm.

    python -m benchmarks.projection_rows [--example single|multiagent] [--task halfcheetah]
        [--rounds 6]

Collects one iteration with the example's defaults (``examples.train``'s on ``--task``, or
``examples.multiagent``'s on VMAS navigation: 4,096 envs x 10 steps, per-agent scales), takes one
minibatch, and alternates ``--rounds`` times between the loss as it is (the policy's
``state_independent_scale`` true: one scale row, or one per agent, reaches the projection) and the
loss with the property forced false (every row solved), so a loaded machine slows both alike.
Prints the best and median CPU milliseconds of each side and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _single_agent(task: str):
    from benchmarks.profile_update import prepare
    from examples.config import compose_config

    cfg = compose_config(f"env={task}", "env.backend=gymnasium", "algo=trudi")
    loss, optimizer, batch = prepare(cfg)
    return cfg, loss, optimizer, batch


def _multi_agent():
    from examples.multiagent.build import broadcast_team_done, make_env, make_loss
    from examples.multiagent.config import compose_config
    from examples.multiagent.train import collect

    cfg = compose_config("algo=trudi")
    env = make_env(cfg)
    loss, policy = make_loss(cfg, env)
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr, eps=1e-5)
    batch, _ = collect(env, policy, env.reset(), cfg.rollout_length)  # samples as in training
    batch = broadcast_team_done(batch)
    with torch.no_grad():
        loss.value_estimator(batch)
    return cfg, loss, optimizer, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", choices=("single", "multiagent"), default="single")
    parser.add_argument("--task", default="halfcheetah")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    torch.set_num_threads(1)
    cfg, loss, optimizer, batch = (
        _single_agent(args.task) if args.example == "single" else _multi_agent()
    )
    flat = batch.reshape(-1)
    size = flat.numel() // cfg.minibatches
    minibatch = flat[
        torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:size]
    ]
    loss.metrics = False
    policy_type = type(loss.actor_network)
    own = policy_type.state_independent_scale

    def step() -> float:
        tic = time.process_time()
        out = loss(minibatch)
        optimizer.zero_grad()
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        return time.process_time() - tic

    times: dict[str, list[float]] = {"one row": [], "every row": []}
    try:
        step()  # warm-up
        for _ in range(args.rounds):
            policy_type.state_independent_scale = own
            times["one row"].append(step())
            policy_type.state_independent_scale = property(lambda self: False)
            times["every row"].append(step())
    finally:
        policy_type.state_independent_scale = own
    where = args.task if args.example == "single" else "VMAS navigation"
    print(
        f"TruDi, {args.example} example on {where}, minibatch of {size}, 1 thread; CPU ms per "
        f"minibatch update (loss forward + backward), {args.rounds} interleaved rounds"
    )
    print("| projection | best | median |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {1e3 * min(values):.1f} | {1e3 * statistics.median(values):.1f} |")
    ratio = [min(times["one row"]) / min(times["every row"])]
    ratio.append(statistics.median(times["one row"]) / statistics.median(times["every row"]))
    print(f"| one / every | {ratio[0]:.3f} | {ratio[1]:.3f} |")


if __name__ == "__main__":
    main()

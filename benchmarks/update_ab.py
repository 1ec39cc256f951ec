"""The example's update in two checkouts, A/B in one process, interleaved: CPU time per minibatch.

    python -m benchmarks.update_ab --before PATH [--after PATH] [--task halfcheetah] [--arm trudi]
        [--rounds 10] [--threads 1] [overrides ...]

``--before`` and ``--after`` (default: this checkout) are repository roots, e.g. a worktree of
``main`` (``git worktree add --detach /tmp/base main``). Each side imports its own ``trudi`` and
``examples``, builds the arm from its own ``examples/conf`` (``--arm``: trudi, ppo, pathwise) on
``--task`` and its own optimizer (``build_optimizer`` where the side has one, else Adam as the
example built it), and runs ``examples.update.update`` on the same batch (one iteration, collected once by the ``before``
side's policy): the example's whole update of an iteration (``epochs`` x ``minibatches``) per
round. The sides alternate for ``--rounds`` rounds, so a loaded machine slows both alike; the figures are this process's CPU time
per minibatch update, which other jobs inflate far less than wall-clock: best and median of the
rounds, and after / before.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import open_dict
from tensordict.nn import InteractionType, set_interaction_type

ARMS = {"trudi": ["algo=trudi"], "ppo": ["algo=ppo"], "pathwise": ["algo=trudi_pathwise"]}
_PACKAGES = ("trudi", "examples")


def _import_side(root: Path) -> dict:
    """``root``'s ``examples`` modules, imported afresh (earlier sides' modules are dropped)."""
    for name in [n for n in sys.modules if n.split(".")[0] in _PACKAGES]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        names = ("examples.build", "examples.config", "examples.envs", "examples.update")
        modules = {name.split(".")[1]: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(root))
    return modules


def _build(side: dict, overrides: list[str]):
    cfg = side["config"].compose_config(*overrides)
    build = side["build"]
    torch.manual_seed(cfg.seed)
    env = side["envs"].make_env(
        cfg.env.name, cfg.num_envs, seed=cfg.seed, reward_scale=cfg.env.reward_scale
    )
    policy, critic = build.build_policy(cfg, env), build.build_critic(cfg, env)
    loss = build.build_loss(cfg, policy, critic)
    if hasattr(build, "build_optimizer"):
        optimizer = build.build_optimizer(cfg, loss, critic)
    else:
        optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr, eps=1e-5)
    estimator = build.build_value_estimator(cfg, loss, critic)
    return cfg, env, policy, loss, optimizer, estimator


def _collect(cfg, env, policy, loss, estimator):
    td, steps = env.reset(), []
    with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
        for _ in range(cfg.rollout_length):
            step, td = env.step_and_maybe_reset(policy(td))
            steps.append(step)
    batch = torch.stack(steps, dim=-1)
    if hasattr(loss, "sync_old_policy"):
        loss.sync_old_policy()
    with torch.no_grad():
        estimator(batch)
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--task", default="halfcheetah")
    parser.add_argument("--arm", default="trudi", choices=sorted(ARMS))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for both sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = [f"env={args.task}", "env.backend=gymnasium", *ARMS[args.arm], *args.overrides]
    sides, batch = {}, None
    for name, root in (("before", args.before), ("after", args.after)):
        modules = _import_side(root.resolve())
        cfg, env, policy, loss, optimizer, estimator = _build(modules, overrides)
        if batch is None:
            batch = _collect(cfg, env, policy, loss, estimator)
        env.close()
        sides[name] = (modules["update"].update, cfg, loss, optimizer)
        with open_dict(cfg):
            warm_up = cfg.copy()
            warm_up.epochs = 1
        modules["update"].update(warm_up, loss, optimizer, batch)
    times = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, (update, cfg, loss, optimizer) in sides.items():
            tic = time.process_time()
            update(cfg, loss, optimizer, batch)
            updates = cfg.epochs * cfg.minibatches
            times[name].append(1e3 * (time.process_time() - tic) / updates)
    print(
        f"{args.arm} on {args.task}, {args.threads} thread(s), {args.rounds} rounds of one "
        f"iteration's update ({updates} minibatches); CPU ms per minibatch update"
    )
    print("| side | best | median |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} |")
    best = min(times["after"]) / min(times["before"])
    median = statistics.median(times["after"]) / statistics.median(times["before"])
    print(f"| after / before | {best:.3f} | {median:.3f} |")


if __name__ == "__main__":
    main()

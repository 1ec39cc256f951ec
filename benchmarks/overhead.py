"""Wall-clock per environment step, split into environment, action sampling and update.

    python -m benchmarks.overhead [--task halfcheetah] [--iterations 3] [--arms NAME ...]
        [--repeats 1] [overrides ...]

Arms: TruDi with K = 5 and K = 10, TruDi K = 5 compiled (``compile=true``), the pathwise TruDi
learner (``algo=trudi_pathwise``, its 8-step Euler-Maruyama actor and 512-wide networks, on this
benchmark's batch: 64 envs x 64 steps, 8 minibatches, 5 epochs), and Gaussian PPO eager and
compiled, in the same process on the same task, with the training example's configuration
(``examples/conf``) and its own code: the same env (Gymnasium vector env, 64 envs x 64 steps per
iteration), critic, advantages (``build_value_estimator``), the update step
(``examples/update.py``) and compilation (``examples/compiling.py``). Each arm runs
``--iterations`` training iterations after one warm-up iteration (which compiles, for the compiled
arms); the table gives milliseconds per environment step (per frame), the warm-up iteration's
seconds, and the total against Gaussian PPO's. ``--arms`` picks arms by name (Gaussian PPO always
runs); extra arguments are Hydra overrides for every arm. Two tables: by wall-clock, and by this
process's CPU time, which other jobs on the machine inflate far less. ``--repeats R`` times every
arm R times, the arms in turn, and keeps each arm's fastest run (by wall-clock): the first arm
timed in a process otherwise pays for cold caches (its env steps measured up to 0.17 ms slower
on Humanoid than the same env's under a later arm).
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_dir
from tensordict.nn import InteractionType, set_interaction_type

from examples.build import (
    build_critic,
    build_loss,
    build_optimizer,
    build_policy,
    build_value_estimator,
)
from examples.compiling import compile_for_training
from examples.config import CONFIG_DIR
from examples.envs import make_env
from examples.update import update

# The pathwise arm on this benchmark's batch (its own defaults are 1024 envs x 128 steps).
_BATCH = ["num_envs=64", "rollout_length=64", "minibatches=8", "epochs=5"]
PARTS = ("env", "sampling", "update")
CLOCKS = ("wall", "cpu")
ARMS = {
    "TruDi K=5": ["algo=trudi", "policy.num_steps=5"],
    "TruDi K=5 compiled": ["algo=trudi", "policy.num_steps=5", "compile=true"],
    "TruDi K=10": ["algo=trudi", "policy.num_steps=10"],
    "TruDi pathwise K=8": ["algo=trudi_pathwise", *_BATCH],
    "Gaussian PPO": ["algo=ppo"],
    "Gaussian PPO compiled": ["algo=ppo", "compile=true"],
}


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def time_arm(cfg, iterations: int) -> dict[str, dict[str, float]]:
    """Milliseconds per frame of each part, by wall-clock and by this process's CPU time."""
    torch.manual_seed(cfg.seed)
    env = make_env(cfg.env.name, cfg.num_envs, seed=cfg.seed, reward_scale=cfg.env.reward_scale)
    policy, critic = build_policy(cfg, env), build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    if cfg.compile:
        compile_for_training(policy, loss, cfg.compile_mode)
    advantage = build_value_estimator(cfg, loss, critic)
    optimizer = build_optimizer(cfg, loss, critic)
    frames = cfg.num_envs * cfg.rollout_length
    totals = {clock: dict.fromkeys(PARTS, 0.0) for clock in CLOCKS}
    td = env.reset()
    warm_up = time.perf_counter()  # compilation runs in subprocesses: wall-clock only

    def add(spent, part, tic):
        for clock, now, then in zip(CLOCKS, _clocks(), tic, strict=True):
            spent[clock][part] += now - then

    for iteration in range(iterations + 1):
        spent = {clock: dict.fromkeys(PARTS, 0.0) for clock in CLOCKS}
        steps = []
        with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
            for _ in range(cfg.rollout_length):
                tic = _clocks()
                td = policy(td)
                add(spent, "sampling", tic)
                tic = _clocks()
                step, td = env.step_and_maybe_reset(td)
                add(spent, "env", tic)
                steps.append(step)
        tic = _clocks()
        batch = torch.stack(steps, dim=-1)
        if hasattr(loss, "sync_old_policy"):
            loss.sync_old_policy()
        with torch.no_grad():
            advantage(batch)
        means = update(cfg, loss, optimizer, batch)
        torch.stack(list(means.values())).tolist()  # the example's one host sync per iteration
        add(spent, "update", tic)
        if iteration == 0:  # warms up allocators and caches, and compiles
            warm_up = time.perf_counter() - warm_up
            continue
        for clock in CLOCKS:
            for part in PARTS:
                totals[clock][part] += spent[clock][part]
    env.close()
    result = {
        clock: {part: 1e3 * value / (iterations * frames) for part, value in parts.items()}
        for clock, parts in totals.items()
    }
    return {**result, "warm_up": warm_up}


def _faster(kept: dict | None, new: dict) -> dict:
    """The timing with the smaller wall-clock total (``new`` when nothing is kept yet)."""
    if kept is None or sum(new["wall"].values()) < sum(kept["wall"].values()):
        return new
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="halfcheetah")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="time every arm this many times, the arms in turn, and keep each arm's fastest",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every arm")
    args = parser.parse_args()
    arms = [name for name in ARMS if name in args.arms or name == "Gaussian PPO"]
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    configs = {}
    for name in arms:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            overrides = [f"env={args.task}", *ARMS[name], *args.overrides]
            configs[name] = compose("config", overrides=overrides)
    results = {}
    for _ in range(args.repeats):
        for name, cfg in configs.items():
            torch.set_num_threads(cfg.threads)
            results[name] = _faster(results.get(name), time_arm(cfg, args.iterations))
    for clock, title in (("wall", "wall-clock"), ("cpu", "this process's CPU time")):
        base = sum(results["Gaussian PPO"][clock].values())
        print(
            f"{args.task}, {torch.get_num_threads()} thread(s); milliseconds per environment step, "
            f"{title}"
        )
        print("| arm | env | action sampling | update | total | warm-up (s) | x Gaussian PPO |")
        print("|---|---|---|---|---|---|---|")
        for name, result in results.items():
            parts = result[clock]
            total = sum(parts.values())
            print(
                f"| {name} | {parts['env']:.3f} | {parts['sampling']:.3f} | {parts['update']:.3f} "
                f"| {total:.3f} | {result['warm_up']:.0f} | {total / base:.2f} |"
            )
        print()


if __name__ == "__main__":
    main()

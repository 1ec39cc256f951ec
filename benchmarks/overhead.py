"""Wall-clock per environment step, split into environment, action sampling and update.

    python -m benchmarks.overhead [--task halfcheetah] [--iterations 3]

TruDi with K = 5 and K = 10 and Gaussian PPO, in the same process on the same task, with the
training example's default configuration (``examples/conf``): the same env (64 envs x 64 steps per
iteration), critic, GAE, epochs and minibatches. Each arm runs ``--iterations`` training iterations
after one warm-up iteration; the table gives milliseconds per environment step (per frame).
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_dir
from tensordict.nn import InteractionType, set_interaction_type
from torchrl.objectives.value import GAE

from examples.build import build_critic, build_loss, build_policy
from examples.config import CONFIG_DIR
from examples.envs import make_env

ARMS = {
    "TruDi K=5": ["algo=trudi", "policy.num_steps=5"],
    "TruDi K=10": ["algo=trudi", "policy.num_steps=10"],
    "Gaussian PPO": ["algo=ppo"],
}


def time_arm(cfg, iterations: int) -> dict[str, float]:
    torch.manual_seed(cfg.seed)
    env = make_env(cfg.env.name, cfg.num_envs, seed=cfg.seed, reward_scale=cfg.env.reward_scale)
    policy, critic = build_policy(cfg, env), build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    advantage = GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=critic, average_gae=False)
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr)
    frames = cfg.num_envs * cfg.rollout_length
    minibatch = frames // cfg.minibatches
    totals = {"env": 0.0, "sampling": 0.0, "update": 0.0}
    td = env.reset()
    for iteration in range(iterations + 1):
        spent = {"env": 0.0, "sampling": 0.0, "update": 0.0}
        steps = []
        with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
            for _ in range(cfg.rollout_length):
                tic = time.perf_counter()
                td = policy(td)
                spent["sampling"] += time.perf_counter() - tic
                tic = time.perf_counter()
                step, td = env.step_and_maybe_reset(td)
                spent["env"] += time.perf_counter() - tic
                steps.append(step)
        tic = time.perf_counter()
        batch = torch.stack(steps, dim=-1)
        with torch.no_grad():
            advantage(batch)
        flat = batch.reshape(-1)
        for _ in range(cfg.epochs):
            for index in torch.randperm(flat.numel()).split(minibatch):
                out = loss(flat[index])
                total = sum(v for k, v in out.items() if k.startswith("loss_"))
                optimizer.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), cfg.max_grad_norm)
                optimizer.step()
        spent["update"] += time.perf_counter() - tic
        if iteration > 0:  # the first iteration warms up allocators and caches
            for key, value in spent.items():
                totals[key] += value
    env.close()
    return {key: 1e3 * value / (iterations * frames) for key, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="halfcheetah")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every arm")
    args = parser.parse_args()
    results = {}
    for name, arm in ARMS.items():
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = compose("config", overrides=[f"env={args.task}", *arm, *args.overrides])
        torch.set_num_threads(cfg.threads)
        results[name] = time_arm(cfg, args.iterations)
    base = sum(results["Gaussian PPO"].values())
    print(f"{args.task}, {torch.get_num_threads()} thread(s); milliseconds per environment step")
    print("| arm | env | action sampling | update | total | x Gaussian PPO |")
    print("|---|---|---|---|---|---|")
    for name, parts in results.items():
        total = sum(parts.values())
        print(
            f"| {name} | {parts['env']:.3f} | {parts['sampling']:.3f} | {parts['update']:.3f} "
            f"| {total:.3f} | {total / base:.2f} |"
        )


if __name__ == "__main__":
    main()

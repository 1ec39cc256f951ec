"""Action statistics of trained policies: how noisy the stochastic actions are and how close the
deterministic ones sit to the action bounds.

    python -m benchmarks.action_stats --task humanoid --arms trudi dppo ppo --seed 0

Reads the learning benchmark's checkpoints (``outputs/benchmark/<task>/<arm>/seed<seed>/``), rolls
each policy for a few steps on fresh envs with its saved observation normaliser, then on those
observations draws ``--draws`` stochastic actions and one deterministic action. Printed per arm,
averaged over observations and action dimensions: the stochastic actions' std as a fraction of the
bound, the fraction of stochastic actions at a bound, |deterministic action| / bound and its square
(times the action dimension and a task's control-cost weight: the control cost per step); then the
example's evaluation (``cfg.eval_episodes`` episodes per sampler) with its mean return and mean
episode length, which tells a policy that falls (short episodes) from one that stands still
(full-length episodes with a return near the alive bonus).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tensordict.nn import InteractionType, set_interaction_type

from examples.build import build_critic, build_loss, build_policy
from examples.checkpoint import load_checkpoint
from examples.envs import env_options, make_env
from examples.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
# The printed table: (header, key of action_stats' result, format spec).
COLUMNS = (
    ("iteration", "iteration", "d"),
    ("stochastic std / bound", "std / bound", ".2f"),
    ("at a bound", "at bound", ".2f"),
    ("|deterministic| / bound", "|deterministic| / bound", ".2f"),
    ("(deterministic / bound)²", "(deterministic / bound)²", ".2f"),
    ("deterministic return", "eval_return_deterministic", ".0f"),
    ("deterministic length", "eval_length_deterministic", ".0f"),
    ("stochastic return", "eval_return_stochastic", ".0f"),
    ("stochastic length", "eval_length_stochastic", ".0f"),
)


def action_stats(path: Path, num_envs: int, draws: int) -> dict[str, float]:
    ckpt = load_checkpoint(path)
    cfg = OmegaConf.create(ckpt["config"])
    env = make_env(
        cfg.env.name,
        num_envs,
        seed=12_345,
        reward_scale=cfg.env.reward_scale,
        **env_options(cfg.env),
    )
    policy, critic = build_policy(cfg, env), build_critic(cfg, env)
    build_loss(cfg, policy, critic).load_state_dict(ckpt["loss"])
    env.transform.load_state_dict(ckpt["env_transform"])
    bound = env.action_spec.space.high[0]
    td = env.reset()
    with torch.no_grad():
        with set_interaction_type(InteractionType.RANDOM):
            for _ in range(10):
                _, td = env.step_and_maybe_reset(policy(td))
            actions = torch.stack([policy(td.clone())["action"] for _ in range(draws)])
        with set_interaction_type(InteractionType.DETERMINISTIC):
            mode = policy(td.clone())["action"]
    episodes = evaluate(cfg, env, policy, seed=54_321)
    env.close()
    return {
        **episodes,
        "iteration": ckpt["iteration"],
        "std / bound": (actions.std(0) / bound).mean().item(),
        "at bound": (actions.abs() >= 0.999 * bound).float().mean().item(),
        "|deterministic| / bound": (mode.abs() / bound).mean().item(),
        "(deterministic / bound)²": (mode / bound).square().mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="humanoid")
    parser.add_argument("--arms", nargs="+", default=["trudi", "dppo", "ppo"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--runs", type=Path, default=ROOT / "outputs" / "benchmark")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    print("| arm | " + " | ".join(header for header, _, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for arm in args.arms:
        path = args.runs / args.task / arm / f"seed{args.seed}" / "checkpoint.pt"
        s = action_stats(path, args.num_envs, args.draws)
        print(f"| {arm} | " + " | ".join(f"{s[key]:{spec}}" for _, key, spec in COLUMNS) + " |")


if __name__ == "__main__":
    main()

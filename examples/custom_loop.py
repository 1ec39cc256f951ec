"""TruDi in your own training loop: a single-file, CleanRL-style script without TorchRL collectors.

A batched torch environment (``batched_pendulum.py``, a stand-in for any GPU-vectorized simulator)
is stepped by hand. Each iteration rolls out ``rollout_steps`` steps of ``num_envs`` envs, calling
the :class:`~trudi.policies.DiffusionPolicy` on a TensorDict of observations; the policy writes the
action and the behaviour chain (docs/design.md), which are stacked to a ``[N, T]`` batch. TorchRL's
``GAE`` computes advantages (time-limit truncations bootstrap from V(final observation)), and
:class:`~trudi.learners.TruDiLoss` with a :class:`~trudi.constraints.TrajectoryKLProjection` is
minimised over epochs of minibatches. Everything lives on ``--device``; the only host syncs are
the once-per-iteration prints. Runs unchanged on CPU and CUDA, from the repository root:

    python -m examples.custom_loop                      # CPU, one torch thread, default hyperparameters
    python -m examples.custom_loop --device cuda --num-envs 4096
    python -m examples.custom_loop --help               # every hyperparameter, documented
    torchrun --standalone --nproc_per_node=2 -m examples.custom_loop   # data-parallel, 2 ranks

Data-parallel training takes the three calls marked ``(1)``-``(3)`` (``docs/distributed.md``): each
rank steps its own envs with seed + rank, the ranks start from rank 0's parameters and average
their gradients, so they stay identical; rank 0 prints (its own rank's figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field

import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, TensorDictModule, set_interaction_type
from torchrl.data import Bounded
from torchrl.objectives.value import GAE

from examples import distributed
from examples.batched_pendulum import BatchedPendulum
from trudi.constraints import TrajectoryKLProjection
from trudi.learners import TruDiLoss
from trudi.policies import DenoiserMLP, DiffusionPolicy
from trudi.samplers import AncestralSampler, CosineSchedule


def arg(default, help: str):
    """A dataclass field whose help text becomes the ``--flag``'s help."""
    return field(default=default, metadata={"help": help})


@dataclass
class Args:
    # Experiment
    seed: int = arg(1, "seed of torch, the env's reset generator and the minibatch shuffling")
    device: str = arg("cpu", "'cpu', 'cuda', 'cuda:1', …: where the env, networks and data live")
    threads: int = arg(
        1,
        "torch CPU threads; more threads than free cores collapses the small matrix products "
        "(38-162 s against 3.5 s per iteration on a busy 2-core machine)",
    )
    num_iterations: int = arg(30, "collect-then-update iterations")
    # Environment and rollout
    num_envs: int = arg(64, "N, parallel envs stepped as one batch")
    rollout_steps: int = arg(200, "T, steps per env per iteration (batch = N·T samples)")
    max_episode_steps: int = arg(200, "time limit of an episode (Pendulum-v1: 200)")
    reward_scale: float = arg(0.1, "rewards are multiplied by this before GAE (value scale ~ 1)")
    # Policy: a K-step diffusion chain
    diffusion_steps: int = arg(5, "K, denoising steps of the chain")
    hidden_dim: int = arg(64, "width of the denoiser's residual MLP")
    num_blocks: int = arg(2, "residual blocks of the denoiser")
    min_std: float = arg(0.05, "floor of every transition's std (sampler and learned scale)")
    critic_hidden_dim: int = arg(64, "width of the critic's two hidden layers")
    # Trust region (TrajectoryKLProjection) and loss (TruDiLoss)
    mean_bound: float = arg(0.05, "ε_μ, bound on the mean part of each chain's trajectory KL")
    cov_bound: float = arg(0.005, "ε_Σ, bound on the covariance part (learned scales)")
    trust_region_coeff: float = arg(1.0, "α, weight of the pull of the network onto its projection")
    entropy_coeff: float = arg(0.0, "weight of the projected chain's entropy bonus")
    critic_coeff: float = arg(0.5, "weight of the critic's squared error")
    # Optimisation
    lr: float = arg(1e-3, "Adam learning rate (actor and critic)")
    update_epochs: int = arg(10, "passes over the batch per iteration")
    num_minibatches: int = arg(16, "minibatches per epoch")
    max_grad_norm: float = arg(0.5, "global gradient-norm clip")
    # Advantages (TorchRL's GAE)
    gamma: float = arg(0.9, "discount (short horizon: Pendulum needs no long-term credit)")
    gae_lambda: float = arg(0.95, "GAE λ")
    # Evaluation
    eval_episodes: int = arg(1, "episodes per env of the deterministic (ODE) policy at the end")


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(Args):
        kind = type(f.default)
        action = argparse.BooleanOptionalAction if kind is bool else None
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=f.default,
            type=None if kind is bool else kind,
            action=action,
            help=f"{f.metadata['help']} (default: {f.default})",
        )
    return Args(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    rank = distributed.setup(args.device)  # (1) under torchrun: one process per device
    device = rank.device
    seed = args.seed + rank.rank
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    batch_size = args.num_envs * args.rollout_steps
    minibatch_size = batch_size // args.num_minibatches

    # Environment: N pendulums on the device.
    env = BatchedPendulum(args.num_envs, device, args.max_episode_steps)
    obs_dim, act_dim = env.observation_dim, env.action_dim
    action_spec = Bounded(-env.max_torque, env.max_torque, shape=(act_dim,), device=device)

    # Policy: x_K ~ N(0, I) → K denoising transitions → action = clip(x_0) scaled to [-2, 2].
    denoiser = DenoiserMLP(
        obs_dim,
        act_dim,
        args.diffusion_steps,
        hidden_dim=args.hidden_dim,
        num_blocks=args.num_blocks,
        layer_norm=True,
    )
    policy = DiffusionPolicy(
        denoiser,
        AncestralSampler(CosineSchedule(args.diffusion_steps), min_std=args.min_std),
        action_spec=action_spec,
        learn_scale=True,
        min_std=args.min_std,
        validate_args=False,  # the check syncs the host in every update
    ).to(device)
    critic = TensorDictModule(
        torch.nn.Sequential(
            torch.nn.Linear(obs_dim, args.critic_hidden_dim),
            torch.nn.Tanh(),
            torch.nn.Linear(args.critic_hidden_dim, args.critic_hidden_dim),
            torch.nn.Tanh(),
            torch.nn.Linear(args.critic_hidden_dim, 1),
        ),
        in_keys=["observation"],
        out_keys=["state_value"],
    ).to(device)

    # Loss: the trajectory trust region replaces PPO's clipping.
    projection = TrajectoryKLProjection(args.mean_bound, args.cov_bound, validate_args=False)
    loss_module = TruDiLoss(
        policy,
        critic,
        projection,
        trust_region_coeff=args.trust_region_coeff,
        entropy_coeff=args.entropy_coeff,
        critic_coeff=args.critic_coeff,
        loss_critic_type="l2",
        normalize_advantage=True,
    ).to(device)
    # `done` ends the λ-recursion; only `terminated` stops bootstrapping, so a truncated step's
    # target is r + γ V(("next", "observation")), the final observation before the auto-reset.
    distributed.broadcast_parameters(loss_module)  # (2) every rank starts from rank 0's networks
    advantage_module = GAE(gamma=args.gamma, lmbda=args.gae_lambda, value_network=critic)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=args.lr)
    diagnostics = ("kl_trajectory_before", "kl_trajectory_after", "frac_projected")
    diagnostics += ("explained_variance", "entropy")
    print_main = print if rank.is_main else lambda *args, **kwargs: None

    initial_policy = torch.cat([p.detach().flatten() for p in policy.parameters()])
    observation = env.reset(generator)
    episode_return = torch.zeros(args.num_envs, device=device)
    metrics: dict[str, float] = {}
    start = time.perf_counter()
    for iteration in range(1, args.num_iterations + 1):
        # Rollout: T steps of N envs; each step's TensorDict holds the policy's chain keys.
        steps = []
        finished_return = torch.zeros((), device=device)
        finished_count = torch.zeros((), device=device)
        with torch.no_grad(), set_interaction_type(InteractionType.RANDOM):
            for _ in range(args.rollout_steps):
                td = policy(TensorDict({"observation": observation}, batch_size=[args.num_envs]))
                out = env.step(td["action"])
                done = out.terminated | out.truncated
                td["next"] = TensorDict(
                    {
                        "observation": out.final_observation,
                        "reward": (args.reward_scale * out.reward).unsqueeze(-1),
                        "done": done.unsqueeze(-1),
                        "terminated": out.terminated.unsqueeze(-1),
                        "truncated": out.truncated.unsqueeze(-1),
                    },
                    batch_size=[args.num_envs],
                )
                steps.append(td)
                observation = out.observation
                episode_return += out.reward
                finished_return += (episode_return * done).sum()
                finished_count += done.sum()
                episode_return = episode_return * ~done
            data = torch.stack(steps, dim=1)  # [N, T]: TorchRL puts time last
            advantage_module(data)  # writes advantage, value_target, state_value

        # Update: epochs of shuffled minibatches of the flattened [N·T] batch.
        flat = data.reshape(-1)
        sums = torch.zeros(len(diagnostics), device=device)
        for _ in range(args.update_epochs):
            order = torch.randperm(batch_size, device=device, generator=generator)
            for index in order[: args.num_minibatches * minibatch_size].split(minibatch_size):
                losses = loss_module(flat[index])
                loss = (
                    losses["loss_objective"]
                    + losses["loss_trust_region"]
                    + losses["loss_critic"]
                    + losses["loss_entropy"]
                )
                optimizer.zero_grad()
                loss.backward()
                distributed.average_gradients(loss_module.parameters())  # (3) before clip and step
                torch.nn.utils.clip_grad_norm_(loss_module.parameters(), args.max_grad_norm)
                optimizer.step()
                sums += torch.stack([losses[name] for name in diagnostics])

        # Log once per iteration: the only host-device sync.
        means = (sums / (args.update_epochs * args.num_minibatches)).tolist()
        metrics = dict(zip(diagnostics, means, strict=True))
        metrics["mean_reward"] = data["next", "reward"].mean().item() / args.reward_scale
        count = finished_count.item()
        metrics["episode_return"] = finished_return.item() / count if count else float("nan")
        episode = f"{metrics['episode_return']:8.1f}" if count else "    none"
        print_main(
            f"iter {iteration:3d} | frames {iteration * batch_size:8d} | "
            f"return {episode} | reward/step {metrics['mean_reward']:6.2f} | "
            f"KL traj before {metrics['kl_trajectory_before']:.4f} "
            f"after {metrics['kl_trajectory_after']:.4f} | "
            f"projected {metrics['frac_projected']:.2f} | "
            f"expl. var {metrics['explained_variance']:5.2f} | "
            f"entropy {metrics['entropy']:6.2f} | {time.perf_counter() - start:6.1f}s",
            flush=True,
        )

    # Evaluate: outside RANDOM the policy runs its eval sampler (DDIM η = 0 from x_K = 0).
    eval_env = BatchedPendulum(args.num_envs, device, args.max_episode_steps)
    eval_observation = eval_env.reset(generator)
    total_reward = torch.zeros((), device=device)
    with torch.no_grad(), set_interaction_type(InteractionType.DETERMINISTIC):
        for _ in range(args.eval_episodes * args.max_episode_steps):
            td = policy(TensorDict({"observation": eval_observation}, batch_size=[args.num_envs]))
            out = eval_env.step(td["action"])
            eval_observation = out.observation
            total_reward += out.reward.sum()
    episodes = args.eval_episodes * args.num_envs
    metrics["eval_return"] = total_reward.item() / episodes if episodes else float("nan")
    final_policy = torch.cat([p.detach().flatten() for p in policy.parameters()])
    metrics["policy_change"] = (final_policy - initial_policy).norm().item()
    print_main(
        f"deterministic policy: mean return {metrics['eval_return']:.1f} over {episodes} episodes"
    )
    distributed.shutdown()
    return metrics


if __name__ == "__main__":
    main()

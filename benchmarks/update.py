"""Time of one update epoch for TruDi (K=10), DPPO (K=10) and Gaussian PPO, side by side.

    python -m benchmarks.update [--samples 65536] [--minibatch 4096] [--steps 10] [--action-dim 21]

One epoch = one pass over ``samples`` stored transitions in minibatches: loss forward, backward and
an Adam step, with the same critic, advantages and networks (3 x 256 MLPs) for every arm. Runs on
CPU (and CUDA with ``--device cuda``). Data are synthetic; only speed is measured.
"""

from __future__ import annotations

import argparse
import time

import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, TensorDictModule, set_interaction_type
from torchrl.modules import MLP
from torchrl.objectives import ClipPPOLoss

from trudi.constraints import TrajectoryKLProjection
from trudi.learners import DPPOLoss, TruDiLoss
from trudi.policies import DenoiserMLP, DiffusionPolicy, GaussianPolicy
from trudi.samplers import AncestralSampler, CosineSchedule


def make_arms(obs_dim: int, action_dim: int, steps: int):
    def critic():
        net = MLP(in_features=obs_dim, out_features=1, num_cells=[256] * 3)
        return TensorDictModule(net, ["observation"], ["state_value"])

    def diffusion():
        denoiser = DenoiserMLP(obs_dim, action_dim, steps, hidden_dim=256, num_blocks=3)
        sampler = AncestralSampler(CosineSchedule(steps), min_std=0.05)
        return DiffusionPolicy(denoiser, sampler, learn_scale=True)

    def trudi():
        policy = diffusion()
        return policy, TruDiLoss(policy, critic(), TrajectoryKLProjection(0.05, 0.005))

    def dppo():
        policy = diffusion()
        return policy, DPPOLoss(policy, critic())

    def ppo():
        net = MLP(in_features=obs_dim, out_features=action_dim, num_cells=[256] * 3)
        policy = GaussianPolicy(net, action_dim=action_dim)
        loss = ClipPPOLoss(policy, critic())
        loss.set_keys(
            action=("diffusion", "chain"), sample_log_prob=("diffusion", "chain_log_prob")
        )
        return policy, loss

    return {f"TruDi K={steps}": trudi, f"DPPO K={steps}": dppo, "Gaussian PPO": ppo}


def epoch_time(policy, loss, samples: int, minibatch: int, obs_dim: int, device) -> float:
    g = torch.Generator().manual_seed(0)
    data = TensorDict({"observation": torch.randn(samples, obs_dim, generator=g)}, [samples])
    data = data.to(device)
    with set_interaction_type(InteractionType.RANDOM), torch.no_grad():
        data = policy(data)
    data["advantage"] = torch.randn(samples, 1, device=device)
    data["value_target"] = torch.randn(samples, 1, device=device)
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-4)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in data[torch.randperm(samples, device=device)].split(minibatch):
        out = loss(batch)
        total = sum(v for k, v in out.items() if k.startswith("loss_"))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=65_536)
    parser.add_argument("--minibatch", type=int, default=4_096)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--action-dim", type=int, default=21)
    parser.add_argument("--obs-dim", type=int, default=67)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(
        f"one update epoch: {args.samples} samples, minibatches of {args.minibatch}, "
        f"K={args.steps}, A={args.action_dim}, obs={args.obs_dim}, {device}, "
        f"{torch.get_num_threads()} threads"
    )
    results = {}
    for name, make in make_arms(args.obs_dim, args.action_dim, args.steps).items():
        policy, loss = make()
        policy.to(device)
        loss.to(device)
        results[name] = epoch_time(policy, loss, args.samples, args.minibatch, args.obs_dim, device)
    base = results["Gaussian PPO"]
    print("| arm | epoch time (s) | x Gaussian PPO |")
    print("|---|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.2f} | {seconds / base:.1f} |")


if __name__ == "__main__":
    main()

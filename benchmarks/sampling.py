"""Sampling speed of the diffusion policy (K = 5, 10) against the Gaussian policy, on CPU.

Prints actions per second for one batch of observations through ``policy(td)`` under
``InteractionType.RANDOM`` (what a collector does), and samples per second for the re-scoring
``policy.get_dist(td).log_prob(chain)`` with its backward pass (what a loss does).

    python -m benchmarks.sampling                 # 4,096 observations, A = 21, 256-wide nets
    python -m benchmarks.sampling --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type
from torchrl.modules import MLP

from trudi.policies import ChainPolicy, DenoiserMLP, DiffusionPolicy, GaussianPolicy
from trudi.samplers import AncestralSampler, CosineSchedule


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator and kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(policy: ChainPolicy, td: TensorDict, repeats: int) -> tuple[float, float]:
    """(actions/s of sampling, samples/s of re-scoring with backward)."""
    batch = td.numel()

    def sample() -> None:
        with set_interaction_type(InteractionType.RANDOM):
            policy(td.select(*policy.in_keys))

    with set_interaction_type(InteractionType.RANDOM):
        data = policy(td.select(*policy.in_keys))
    chain = data[policy.tensor_keys.chain]

    def rescore() -> None:
        policy.zero_grad(set_to_none=True)
        policy.get_dist(data).log_prob(chain).sum().backward()

    return batch / _best_seconds(sample, repeats), batch / _best_seconds(rescore, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--observation-dim", type=int, default=64)
    parser.add_argument("--action-dim", type=int, default=21)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    obs, act, hidden = args.observation_dim, args.action_dim, args.hidden_dim
    td = TensorDict({"observation": torch.randn(args.batch, obs)}, batch_size=[args.batch])

    policies: dict[str, ChainPolicy] = {
        "gaussian (K=1)": GaussianPolicy(
            MLP(in_features=obs, out_features=act, num_cells=[hidden] * 3), act
        )
    }
    for k in args.steps:
        # One residual block: input, 2 hidden and output layers, the Gaussian MLP's depth.
        denoiser = DenoiserMLP(obs, act, k, hidden_dim=hidden, num_blocks=1)
        sampler = AncestralSampler(CosineSchedule(k))
        policies[f"diffusion K={k}"] = DiffusionPolicy(denoiser, sampler)

    print(
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
        f"observation {obs}, A = {act}, hidden {hidden}, best of {args.repeats}"
    )
    print(f"{'policy':<18} {'actions/s':>12} {'vs gaussian':>12} {'re-score samples/s':>20}")
    gaussian_rate = None
    for name, policy in policies.items():
        rate, rescore_rate = measure(policy, td, args.repeats)
        gaussian_rate = gaussian_rate or rate
        print(f"{name:<18} {rate:>12,.0f} {rate / gaussian_rate:>11.3f}x {rescore_rate:>20,.0f}")


if __name__ == "__main__":
    main()

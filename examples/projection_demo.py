"""A short demo of the trajectory trust region (the README's main job until the training example).

It takes a batch of behaviour chains' transitions, a "network update" that moves them far, and
projects the update back onto the trust region in each mode and divergence, printing the exact
trajectory KL(old ‖ new) before and after and the bounded parts. Runs in seconds on a CPU, from
the repository root:

    python -m examples.projection_demo              # one torch thread
    python -m examples.projection_demo --threads 4
"""

from __future__ import annotations

import argparse

import torch

from trudi.constraints import TrajectoryKLProjection, trajectory_kl


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1; more than the free cores is several times slower, "
        "18 s against 3 s on a busy 2-core machine)",
    )
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    chains, steps, action_dim = 4096, 10, 6
    shape = (chains, steps, action_dim)
    old_loc = torch.randn(shape)
    old_scale = 0.1 + torch.rand(shape)
    loc = (old_loc + 0.5 * torch.randn(shape)).requires_grad_()
    scale = (old_scale * torch.exp(0.3 * torch.randn(shape))).requires_grad_()
    mean_bound, cov_bound = 0.05, 0.005
    print(
        f"{chains} chains x K={steps} x A={action_dim}; bounds: mean {mean_bound}, cov {cov_bound}"
    )
    header = f"{'divergence':>10} {'mode':>10} | {'exact KL before':>15} {'after':>8} | "
    print(header + f"{'KL mean part':>12} {'KL cov part':>11} | {'projected':>9} {'max mult.':>9}")
    for divergence in ("kl", "w2", "frobenius"):
        for mode in ("trajectory", "per_step"):
            layer = TrajectoryKLProjection(mean_bound, cov_bound, divergence=divergence, mode=mode)
            projection = layer.project(loc, scale, old_loc, old_scale)
            metrics = layer.metrics(loc, scale, old_loc, old_scale, projection)
            mean_kl, cov_kl = trajectory_kl(projection.loc, projection.scale, old_loc, old_scale)
            # The layer is differentiable: a loss on the projected transitions trains the network.
            (projection.loc.square().mean() + projection.scale.mean()).backward()
            print(
                f"{divergence:>10} {mode:>10} | {metrics['kl_trajectory_before']:15.3f} "
                f"{metrics['kl_trajectory_after']:8.4f} | {mean_kl.mean():12.4f} {cov_kl.mean():11.4f} | "
                f"{metrics['frac_projected']:9.2%} {metrics['max_multiplier']:9.2f}"
            )
    print(f"gradient norm reaching the network's loc: {loc.grad.norm():.3f}")


if __name__ == "__main__":
    main()

"""Forward + backward time of the torch-reference TrajectoryKLProjection.

    python -m benchmarks.projection [--chains 65536] [--steps 10] [--action-dim 21] [--repeats 3]

Runs on CPU, and on CUDA when present, for the three divergences. "bytes" is the minimum memory
traffic of a fused forward + backward (read loc, scale, old_loc, old_scale and write the two
outputs; read the two output gradients and the four inputs and write the four input gradients), so
GB/s compares directly with the Triton kernels' figures (benchmarks/kernels.py).
"""

from __future__ import annotations

import argparse
import time

import torch

from trudi.constraints import TrajectoryKLProjection

TENSORS_MOVED = 6 + 10  # forward: 4 in, 2 out; backward: 2 grads + 4 inputs in, 4 grads out


def make_inputs(chains: int, steps: int, action_dim: int, device: torch.device):
    g = torch.Generator(device=device).manual_seed(0)
    shape = (chains, steps, action_dim)
    old_loc = torch.randn(shape, generator=g, device=device)
    old_scale = torch.rand(shape, generator=g, device=device) + 0.1
    loc = old_loc + 0.3 * torch.randn(shape, generator=g, device=device)
    scale = old_scale * torch.exp(0.2 * torch.randn(shape, generator=g, device=device))
    return loc.requires_grad_(), scale.requires_grad_(), old_loc, old_scale


def time_once(layer, inputs, device) -> float:
    loc, scale, old_loc, old_scale = inputs
    loc.grad = scale.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out_loc, out_scale = layer(loc, scale, old_loc, old_scale)
    (out_loc.sum() + out_scale.sum()).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=65_536)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--action-dim", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    numel = args.chains * args.steps * args.action_dim
    print(
        f"TrajectoryKLProjection (torch reference), {args.chains} chains x K={args.steps} "
        f"x A={args.action_dim}, float32, forward+backward, best of {args.repeats}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    print("| device | divergence | mode | time (ms) | bytes moved (MB) | GB/s |")
    print("|---|---|---|---|---|---|")
    for device in devices:
        inputs = make_inputs(args.chains, args.steps, args.action_dim, device)
        nbytes = TENSORS_MOVED * numel * inputs[0].element_size()
        for divergence in ("kl", "w2", "frobenius"):
            for mode in ("trajectory", "per_step"):
                layer = TrajectoryKLProjection(
                    0.05,
                    0.01,
                    divergence=divergence,
                    mode=mode,
                    backend="torch",
                    validate_args=False,
                )
                time_once(layer, inputs, device)  # warm-up
                best = min(time_once(layer, inputs, device) for _ in range(args.repeats))
                print(
                    f"| {device.type} | {divergence} | {mode} | {best * 1e3:.1f} | "
                    f"{nbytes / 1e6:.0f} | {nbytes / best / 1e9:.2f} |"
                )


if __name__ == "__main__":
    main()

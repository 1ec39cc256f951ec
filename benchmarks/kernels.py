"""Forward+backward speed of the trust-region projection: fused Triton kernels vs the torch reference.

Times, on CUDA, one forward and one backward of ``TrajectoryKLProjection`` (trajectory mode, mean and
covariance bounds, float32) for 4,096 / 98,304 / 393,216 chains x K=10 x A=21, for the Triton path,
the eager torch reference and ``torch.compile`` of the reference, and reports the achieved memory
bandwidth of each against the GPU's peak. The bytes counted are the fused path's minimum traffic:
forward reads 4 and writes 2 ``[N, K, A]`` tensors, backward reads 4 inputs and 2 upstream
gradients and writes 4 input gradients (16 tensors in all, plus a few floats per chain).

    python -m benchmarks.kernels [--divergence kl] [--peak-gbps 3350] [--out benchmarks/results]

Writes ``kernels-<gpu>.md`` (a markdown table) to ``--out``. Without CUDA it says so and exits 0.
Targets on an H100: Triton >= 5x eager and >= 1.5x torch.compile at 98,304 chains, >= 60% of peak.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

CHAINS = (4_096, 98_304, 393_216)
K, A = 10, 21
# Peak DRAM bandwidth (GB/s) of common cards, by a substring of torch.cuda.get_device_name().
PEAK_GBPS = {
    "H100 SXM": 3350.0,
    "H100 PCIe": 2000.0,
    "H100": 3350.0,
    "H200": 4800.0,
    "A100": 2039.0,
}


def peak_bandwidth(name: str, override: float | None) -> float | None:
    if override is not None:
        return override
    for key, value in PEAK_GBPS.items():
        if key in name:
            return value
    return None


def make_inputs(chains: int, device: str) -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(0)
    shape = (chains, K, A)
    old_scale = torch.rand(shape, device=device, generator=g) + 0.3
    old_loc = torch.randn(shape, device=device, generator=g)
    loc = old_loc + 0.3 * old_scale * torch.randn(shape, device=device, generator=g)
    scale = old_scale * torch.exp(0.3 * torch.randn(shape, device=device, generator=g))
    return [loc.requires_grad_(), scale.requires_grad_(), old_loc, old_scale]


def step_fn(projection):
    def step(loc, scale, old_loc, old_scale, grad_loc, grad_scale):
        out_loc, out_scale = projection(loc, scale, old_loc, old_scale)
        return torch.autograd.grad((out_loc, out_scale), (loc, scale), (grad_loc, grad_scale))

    return step


def time_ms(fn, args, repeats: int = 20) -> float:
    from triton.testing import do_bench

    return do_bench(lambda: fn(*args), warmup=5 * repeats, rep=10 * repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--divergence", default="kl", choices=("kl", "w2", "frobenius"))
    parser.add_argument("--peak-gbps", type=float, default=None, help="GPU peak bandwidth, GB/s")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        print(
            "benchmarks.kernels: CUDA is not available; the Triton kernels are benchmarked on a GPU only."
        )
        return 0
    try:
        import triton  # noqa: F401
    except ImportError:
        print("benchmarks.kernels: Triton is not installed (pip install triton).")
        return 0

    from trudi.constraints import TrajectoryKLProjection

    device_name = torch.cuda.get_device_name()
    peak = peak_bandwidth(device_name, args.peak_gbps)
    kwargs = {"mean_bound": 0.05, "cov_bound": 0.01, "divergence": args.divergence}
    kwargs["validate_args"] = False
    paths = {
        "triton": step_fn(TrajectoryKLProjection(**kwargs, backend="triton")),
        "eager": step_fn(TrajectoryKLProjection(**kwargs, backend="torch")),
    }
    if not args.no_compile:
        paths["compile"] = torch.compile(step_fn(TrajectoryKLProjection(**kwargs, backend="torch")))

    rows = []
    for chains in CHAINS:
        inputs = make_inputs(chains, "cuda")
        grads = [torch.randn_like(inputs[0]), torch.randn_like(inputs[1])]
        bytes_moved = 16 * chains * K * A * inputs[0].element_size() + 16 * chains * 4
        times = {name: time_ms(fn, (*inputs, *grads)) for name, fn in paths.items()}
        for name, ms in times.items():
            gbps = bytes_moved / (ms * 1e-3) / 1e9
            rows.append(
                {
                    "chains": chains,
                    "path": name,
                    "ms": ms,
                    "gbps": gbps,
                    "peak": f"{100 * gbps / peak:.0f}%" if peak else "n/a",
                    "vs_eager": times["eager"] / ms,
                    "vs_compile": times["compile"] / ms if "compile" in times else float("nan"),
                }
            )
            print(f"{chains:>8} {name:>8} {ms:9.3f} ms {gbps:8.1f} GB/s")

    header = (
        f"# Projection kernels: forward+backward, {args.divergence}, trajectory mode, float32\n\n"
        f"GPU: {device_name}; peak bandwidth: {peak or 'unknown'} GB/s; K={K}, A={A}; "
        f"torch {torch.__version__}; bytes counted: 16 [N, K, A] tensors.\n\n"
        "| chains | path | ms | GB/s | % of peak | speed-up vs eager | speed-up vs compile |\n"
        "|---:|---|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r['chains']:,} | {r['path']} | {r['ms']:.3f} | {r['gbps']:.0f} | {r['peak']} | "
        f"{r['vs_eager']:.2f}x | {r['vs_compile']:.2f}x |"
        for r in rows
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
    path = args.out / f"kernels-{slug}-{args.divergence}.md"
    path.write_text(header + "\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Convergence of the KL covariance solver: worst relative scale error against iterations.

    python benchmarks/kl_convergence.py [--patterns 20] [--max-iterations 12]

Rows exceed the bound by 1 + δ, δ in {1e-10, 1e-9, …, 1e-1} ("near") or by a factor c₀/ε in
{10, 1e4, 1e8} ("far"); scale ratios σ/σ_o are log-uniform between two ends drawn in [1e-3, 1e3],
or all within 1% of 1 but one at up to 1e±3; rows of 1, 4, 21, 64, 210 and 1024 values, behaviour
scales in [1e-2, 1e2]. The error is the largest |σ̃ - σ̃*|/σ̃* over all of them, σ̃* from the
independent float64 bisection of tests/constraints/kl_oracle.py (for float32, of the float32-rounded
inputs). Prints a markdown table (the one in trudi/constraints/kl_cov_projection.py). CPU, a few
minutes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from tests.constraints.kl_oracle import bisection_projection, cov_part
from trudi.constraints.kl_cov_projection import kl_cov_projection

ROW_LENGTHS = (1, 4, 21, 64, 210, 1024)
NEAR = [10.0**e for e in range(-10, 0)]
FAR = [1e1, 1e4, 1e8]
ROWS = 8


def patterns(length: int, count: int, g: torch.Generator):
    """Log10 scale-ratio patterns of one row length: ranges, and near-1 rows with one outlier."""
    for i in range(count):
        if i % 2 == 0:
            lo, hi = sorted((6.0 * torch.rand(2, generator=g, dtype=torch.float64) - 3.0).tolist())
            yield lo + (hi - lo) * torch.rand(length, generator=g, dtype=torch.float64)
        else:
            pattern = 0.004 * torch.randn(length, generator=g, dtype=torch.float64)
            pattern[0] = 6.0 * float(torch.rand((), generator=g)) - 3.0
            yield pattern


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=20)
    parser.add_argument("--max-iterations", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    iterations = range(1, args.max_iterations + 1)
    worst = {
        (dtype, band): [0.0] * len(iterations) for dtype in ("64", "32") for band in ("near", "far")
    }
    for length in ROW_LENGTHS:
        for pattern in patterns(length, args.patterns, g):
            order = torch.rand(ROWS, length, generator=g).argsort(-1)
            old_scale = 10.0 ** (
                4.0 * torch.rand(ROWS, length, generator=g, dtype=torch.float64) - 2.0
            )
            scale64 = old_scale * 10.0 ** pattern[order]
            for dtype, key in ((torch.float64, "64"), (torch.float32, "32")):
                scale, old = scale64.to(dtype), old_scale.to(dtype)
                c0 = cov_part(scale.double(), old.double(), (-1,)).min().item()
                for band, factors in (("near", [1.0 + d for d in NEAR]), ("far", FAR)):
                    for factor in factors:
                        bound = c0 / factor
                        if not bound > 0:
                            continue
                        expected = bisection_projection(scale, old, bound, (-1,))
                        for i, n in enumerate(iterations):
                            out = kl_cov_projection(scale, old, bound, (-1,), n)[0].double()
                            error = ((out - expected) / expected).abs().max().item()
                            worst[key, band][i] = max(worst[key, band][i], error)
    print("| iterations | float64, near | float32, near | float64, far | float32, far |")
    print("|---|---|---|---|---|")
    for i, n in enumerate(iterations):
        cells = [
            f"{worst[k, b][i]:.1e}"
            for k, b in (("64", "near"), ("32", "near"), ("64", "far"), ("32", "far"))
        ]
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

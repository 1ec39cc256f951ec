"""Triton per-step Gaussian KL kernel against :func:`trudi.constraints.gaussian_kl`.

Tolerances: float32 to 1e-5 relative (gradients with a floor of 1e-5 of their largest entry);
bfloat16 inputs are compared with the reference run in float32 on the same values, to 1e-2 (the
kernel accumulates in float32 and rounds once to bfloat16); float64 through ``gradcheck``.
"""

from __future__ import annotations

import pytest
import torch

# tests/conftest.py sets TRITON_INTERPRET=1 without CUDA, before anything imports triton.
pytest.importorskip("triton")

from tests.constraints.projection_contract import make_transitions
from trudi.constraints import gaussian_kl
from trudi.constraints import triton as triton_kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The interpreter evaluates discarded branches in numpy (inf/NaN there, as in the reference's
# torch.where), and numpy warns about them.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")
# Scales within e^±2.5 and mean gaps up to 10: both sides stay well inside float32 and bfloat16.
MODERATE = {"log_scale_range": (-2.5, 2.5), "max_gap": 10.0}


def parts_and_grads(fn, inputs):
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    mean, cov = fn(*leaves)
    g = torch.Generator().manual_seed(0)
    w_mean, w_cov = (torch.randn(mean.shape, generator=g).to(DEVICE) for _ in range(2))
    ((mean.float() * w_mean).sum() + (cov.float() * w_cov).sum()).backward()
    return (mean, cov), [x.grad for x in leaves]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 1, 1), (5, 10, 17), (2, 3, 4, 21), (33, 2, 5)], ids=str)
def test_matches_reference(shape, dtype):
    inputs = [
        x.to(DEVICE, dtype) for x in make_transitions(len(shape), shape, torch.float64, **MODERATE)
    ]
    ours, our_grads = parts_and_grads(triton_kernels.gaussian_kl, inputs)
    ref, ref_grads = parts_and_grads(gaussian_kl, [x.float() for x in inputs])
    rtol = 1e-5 if dtype == torch.float32 else 1e-2
    for a, b in zip(ours, ref, strict=True):
        assert a.dtype == dtype and a.shape == shape[:-1]
        torch.testing.assert_close(a.float(), b, rtol=rtol, atol=rtol * b.abs().max().item())
    for a, b in zip(our_grads, ref_grads, strict=True):
        assert a.dtype == dtype
        floor = 2 * rtol * b.abs().max().item()
        torch.testing.assert_close(a.float(), b, rtol=2 * rtol, atol=floor)


def test_gradcheck_float64():
    inputs = make_transitions(1, (2, 3, 5), torch.float64, **MODERATE)
    inputs = tuple(x.to(DEVICE).requires_grad_() for x in inputs)
    assert torch.autograd.gradcheck(triton_kernels.gaussian_kl, inputs)


def test_broadcast_and_non_contiguous():
    loc, scale, old_loc, old_scale = make_transitions(2, (4, 3, 6), torch.float32, **MODERATE)
    loc, scale = loc.transpose(0, 1), scale.transpose(0, 1)  # [3, 4, 6], not contiguous
    old_loc, old_scale = old_loc[0, :1], old_scale[0, :1]  # [1, 6], broadcast
    inputs = [x.to(DEVICE) for x in (loc, scale, old_loc, old_scale)]
    ours, our_grads = parts_and_grads(triton_kernels.gaussian_kl, inputs)
    ref, ref_grads = parts_and_grads(gaussian_kl, inputs)
    for a, b in zip([*ours, *our_grads], [*ref, *ref_grads], strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * b.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_extreme_inputs_finite(dtype):
    # Scales over eight decades, variance ratios down to 1e-6 (a float32 KL must resolve
    # σ²/σ_o² from 1: below ~1e-7 the KL itself overflows, in the reference too).
    old_scale = torch.tensor([1e-4, 1e-2, 1.0, 1e2, 1e4]).expand(4, 3, 5).to(DEVICE, dtype)
    scale = old_scale * torch.tensor([1e3, 1e-3, 1.0, 1e-3, 1e3]).to(DEVICE, dtype)
    loc = torch.tensor([1e3, 1e3, 0.0, -1e3, -1e-3]).expand(4, 3, 5).to(DEVICE, dtype)
    old_loc = torch.zeros_like(loc)
    (mean, cov), grads = parts_and_grads(
        triton_kernels.gaussian_kl, [loc, scale, old_loc, old_scale]
    )
    assert torch.isfinite(mean).all() and torch.isfinite(cov).all()
    assert all(torch.isfinite(g).all() for g in grads)

"""Triton projection kernels against the torch reference (on CPU under the Triton interpreter).

Tolerances: float32 forward and backward agree with the reference to 1e-5 relative, with an
absolute floor of 1e-5 of a tensor's largest entry (entries that are differences of larger terms);
on badly conditioned rows (scales three decades apart) float32 rounding limits the KL covariance
root find of both, so there both are compared with the float64 solution instead. bfloat16 agrees to 1e-2 relative (two bf16 ulp: both sides round the same float32
result). float64 goes through ``gradcheck``.
"""

from __future__ import annotations

import os

import pytest
import torch

# tests/conftest.py sets TRITON_INTERPRET=1 without CUDA, before anything imports triton.
pytest.importorskip("triton")


from tests.constraints.projection_contract import (
    MODES,
    ProjectionContract,
    make_transitions,
)
from trudi.constraints import TrajectoryKLProjection, project_transitions
from trudi.constraints import projection as projection_module
from trudi.constraints import triton as triton_kernels
from trudi.constraints.divergences import DIVERGENCES, cov_terms
from trudi.constraints.triton.common import interpreted

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The interpreter evaluates discarded branches in numpy (inf/NaN there, as in the reference's
# torch.where), and numpy warns about them.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")
TOLERANCES = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float64: 1e-10}


class _TritonContract(ProjectionContract):
    # The contract's tensors are on the CPU: it runs where the kernels are interpreted (no CUDA);
    # on CUDA the tests below check the compiled kernels against the reference instead.
    pytestmark = pytest.mark.skipif(
        not interpreted(triton_kernels.projection_kernels.projection_fwd_kernel),
        reason="the projection contract runs on CPU tensors, under the Triton interpreter",
    )
    backend = "triton"

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("active", [True, False])
    def test_gradcheck(self, mode, active):
        # The contract's data; fast mode keeps the interpreter's cost down, and
        # test_matches_reference compares every gradient entry with the reference's.
        g = torch.Generator().manual_seed(1)
        shape = (3, 4, 5)
        old_loc = torch.randn(shape, generator=g, dtype=torch.float64)
        old_scale = torch.rand(shape, generator=g, dtype=torch.float64) + 0.3
        spread = 0.5 if active else 1e-3
        loc = old_loc + spread * old_scale * torch.randn(shape, generator=g, dtype=torch.float64)
        scale = old_scale * torch.exp(spread * torch.randn(shape, generator=g, dtype=torch.float64))
        projection = self.make(mode)
        result = projection.project(loc, scale, old_loc, old_scale)
        assert bool((result.cov_multiplier > 0).any()) == active
        inputs = tuple(x.requires_grad_() for x in (loc, scale, old_loc, old_scale))
        assert torch.autograd.gradcheck(projection, inputs, fast_mode=True)


class TestTritonKLProjection(_TritonContract):
    divergence = "kl"

    def cov_distance(self, scale_a, scale_b, old_scale):
        return cov_terms("kl", scale_a, scale_b)


class TestTritonW2Projection(_TritonContract):
    divergence = "w2"

    def cov_distance(self, scale_a, scale_b, old_scale):
        return ((scale_a - scale_b) / old_scale).square()


class TestTritonFrobeniusProjection(_TritonContract):
    divergence = "frobenius"

    def cov_distance(self, scale_a, scale_b, old_scale):
        return (scale_a.square() - scale_b.square()).square()


def moderate_transitions(seed, shape, dtype, spread):
    """Scales within e^±2 of 1 and network scales within ~e^±spread of the behaviour's."""
    g = torch.Generator().manual_seed(seed)
    old_scale = torch.exp(torch.empty(shape, dtype=torch.float64).uniform_(-2, 2, generator=g))
    old_loc = old_scale * torch.randn(shape, generator=g, dtype=torch.float64)
    loc = old_loc + spread * old_scale * torch.randn(shape, generator=g, dtype=torch.float64)
    scale = old_scale * torch.exp(spread * torch.randn(shape, generator=g, dtype=torch.float64))
    return [x.to(dtype=dtype, device=DEVICE) for x in (loc, scale, old_loc, old_scale)]


def run(fn, inputs, **kwargs):
    """Projection and the input gradients of a fixed random linear function of its outputs."""
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    result = fn(*leaves, **kwargs)
    g = torch.Generator().manual_seed(123)
    weights = [torch.randn(result.loc.shape, generator=g).to(DEVICE) for _ in range(3)]
    loss = (result.loc.float() * weights[0]).sum() + (result.scale.float() * weights[1]).sum()
    loss = loss + (result.mean_multiplier.float() * weights[2].flatten()[0]).sum()
    loss.backward()
    return result, [x.grad for x in leaves]


def assert_close(actual, expected, rtol, magnitude=None):
    """``rtol`` relative, with an absolute floor of ``rtol`` times ``magnitude`` (default: the
    largest entry of ``expected``)."""
    if magnitude is None:
        magnitude = expected.detach().abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * magnitude)


def assert_grads_close(actual, expected, rtol):
    # Some entries are differences of much larger terms (a W2 row with one value does not depend
    # on its scale at all): the floor is relative to the largest gradient entry of the call.
    magnitude = max(g.abs().max().item() for g in expected)
    for a, b in zip(actual, expected, strict=True):
        assert_close(a, b, rtol, magnitude)


SHAPES = [(2, 1, 1), (37, 1, 17), (3, 10, 21), (2, 3, 10, 17), (5, 4, 1)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("bounds", [(1e8, 1e8), (0.05, 0.01)], ids=["inactive", "active"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_matches_reference(divergence, mode, bounds, shape, dtype):
    inputs = moderate_transitions(sum(shape), shape, dtype, 0.3)
    kwargs = {"mean_bound": bounds[0], "cov_bound": bounds[1], "divergence": divergence}
    kwargs["mode"] = mode
    ours, our_grads = run(triton_kernels.project_transitions, inputs, **kwargs)
    ref, ref_grads = run(project_transitions, inputs, **kwargs)
    if bounds[0] > 1:
        assert (ref.mean_multiplier == 0).all() and (ref.cov_multiplier == 0).all()
    else:
        assert (ref.mean_multiplier > 0).any() and (ref.cov_multiplier > 0).any()
    rtol = TOLERANCES[dtype]
    for name, a, b in zip(ours._fields, ours, ref, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert_close(a, b, rtol)
    assert_grads_close(our_grads, ref_grads, 2 * rtol)


@pytest.mark.parametrize("mode", MODES)
def test_kl_root_find_as_accurate_as_reference(mode):
    """Badly conditioned rows: float32 kernel and reference equally close to the float64 root."""
    inputs = make_transitions(4, (16, 10, 21), torch.float64)
    kwargs = {"mean_bound": 0.05, "cov_bound": 0.01, "mode": mode}
    exact = project_transitions(*inputs, **kwargs, solver_iterations=40)
    single = [x.float().to(DEVICE) for x in inputs]
    ours = triton_kernels.project_transitions(*single, **kwargs).scale.cpu().double()
    ref = project_transitions(*single, **kwargs).scale.double()
    ref_error = ((ref - exact.scale) / exact.scale).abs().amax()
    our_error = ((ours - exact.scale) / exact.scale).abs().amax()
    assert our_error <= 2 * ref_error + 1e-6, (our_error, ref_error)


def test_float64_matches_reference():
    inputs = [x.to(DEVICE) for x in make_transitions(9, (6, 3, 5), torch.float64, max_gap=1.0)]
    for divergence in DIVERGENCES:
        kwargs = {"mean_bound": 0.05, "cov_bound": 0.01, "divergence": divergence}
        ours, our_grads = run(triton_kernels.project_transitions, inputs, **kwargs)
        ref, ref_grads = run(project_transitions, inputs, **kwargs)
        assert_close(ours.loc, ref.loc, 1e-12)
        assert_close(ours.scale, ref.scale, 1e-7)
        assert_grads_close(our_grads, ref_grads, 1e-6)


def test_non_contiguous_inputs():
    base = moderate_transitions(3, (4, 6, 10), torch.float32, 0.3)
    strided = [x.transpose(0, 1) for x in base]  # [6, 4, 10], not contiguous
    assert not strided[0].is_contiguous()
    kwargs = {"mean_bound": 0.05, "cov_bound": 0.01, "mode": "trajectory"}
    ours, our_grads = run(triton_kernels.project_transitions, strided, **kwargs)
    ref, ref_grads = run(project_transitions, [x.contiguous() for x in strided], **kwargs)
    for a, b in zip(ours, ref, strict=True):
        assert_close(a, b, 1e-5)
    assert_grads_close(our_grads, ref_grads, 2e-5)


def test_cov_bound_none_returns_scale_itself():
    inputs = moderate_transitions(2, (3, 4, 5), torch.float32, 0.3)
    result = triton_kernels.project_transitions(*inputs, mean_bound=0.05)
    assert result.scale is inputs[1]
    assert (result.cov_multiplier == 0).all()


def test_auto_backend_uses_reference_off_cuda(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the Triton kernels were called")

    monkeypatch.setattr(triton_kernels, "project_transitions", fail)
    inputs = make_transitions(0, (4, 3, 2), torch.float32)
    TrajectoryKLProjection(0.05, 0.01)(*inputs)
    with pytest.raises(AssertionError, match="Triton kernels were called"):
        TrajectoryKLProjection(0.05, 0.01, backend="triton")(*inputs)


def test_missing_triton_fails_only_when_asked_for(monkeypatch):
    monkeypatch.setattr(projection_module, "triton_available", lambda: False)
    with pytest.raises(ImportError, match="backend='triton' needs the triton package"):
        TrajectoryKLProjection(0.05, backend="triton")
    inputs = make_transitions(0, (4, 3, 2), torch.float32)
    TrajectoryKLProjection(0.05, 0.01, backend="auto")(*inputs)


def test_rejects_what_it_cannot_run():
    loc, scale, old_loc, old_scale = make_transitions(0, (2, 3, 4), torch.float32)
    with pytest.raises(ValueError, match="old_scale must have the dtype of loc"):
        triton_kernels.project_transitions(loc, scale, old_loc, old_scale.double(), mean_bound=0.1)
    long_row = torch.ones(1, 2, triton_kernels.common.MAX_ROW_LENGTH)
    with pytest.raises(ValueError, match="hold one row in registers"):
        triton_kernels.project_transitions(long_row, long_row, long_row, long_row, mean_bound=0.1)


_COMPILED_CHECK = """
import torch
from trudi.constraints import project_transitions
from trudi.constraints import triton as kernels
g = torch.Generator(device="cuda").manual_seed(0)
for dtype, rtol in ((torch.float32, 1e-5), (torch.bfloat16, 1e-2)):
    for divergence in ("kl", "w2", "frobenius"):
        for mode in ("trajectory", "per_step"):
            shape = (1000, 10, 21)
            old_scale = torch.rand(shape, device="cuda", generator=g) + 0.3
            old_loc = torch.randn(shape, device="cuda", generator=g)
            loc = old_loc + 0.3 * old_scale * torch.randn(shape, device="cuda", generator=g)
            scale = old_scale * torch.exp(0.3 * torch.randn(shape, device="cuda", generator=g))
            inputs = [x.to(dtype) for x in (loc, scale, old_loc, old_scale)]
            kw = dict(mean_bound=0.05, cov_bound=0.01, divergence=divergence, mode=mode)
            outs = []
            for fn in (kernels.project_transitions, project_transitions):
                leaves = [x.clone().requires_grad_() for x in inputs]
                p = fn(*leaves, **kw)
                (p.loc.float().square().sum() + p.scale.float().sum()).backward()
                outs.append([p.loc, p.scale, *(x.grad for x in leaves)])
            magnitude = max(x.abs().max().item() for x in outs[1][2:])
            for a, b in zip(*outs):
                torch.testing.assert_close(a, b, rtol=2 * rtol, atol=2 * rtol * magnitude)
print("ok")
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled kernels need CUDA")
def test_compiled_kernels_match_reference_on_cuda():
    """The compiled (not interpreted) kernels, in a fresh process without TRITON_INTERPRET."""
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", _COMPILED_CHECK], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-4000:]

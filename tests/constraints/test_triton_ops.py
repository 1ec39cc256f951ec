"""The Triton projection as torch.library ops: schema, fake tensors, registered autograd, and a
compiled graph without a break (on CPU under the Triton interpreter, against the torch reference)."""

from __future__ import annotations

import pytest
import torch

# tests/conftest.py sets TRITON_INTERPRET=1 without CUDA, before anything imports triton.
pytest.importorskip("triton")

from tests.constraints.projection_contract import MODES, make_transitions
from trudi.constraints import TrajectoryKLProjection, project_transitions
from trudi.constraints import triton as triton_kernels
from trudi.constraints.divergences import DIVERGENCES
from trudi.constraints.triton.common import interpreted
from trudi.constraints.triton.projection import fused_projection, fused_projection_backward

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter"),
    pytest.mark.skipif(
        DEVICE == "cpu"
        and not interpreted(triton_kernels.projection_kernels.projection_fwd_kernel),
        reason="on CPU the kernels run under the Triton interpreter only",
    ),
]


def rows(seed: int, shape=(6, 12), requires_grad: bool = False):
    """Contiguous ``[R, N]`` rows, about half of them outside both bounds used below."""
    loc, scale, old_loc, old_scale = make_transitions(
        seed, (*shape[:1], 1, shape[1]), torch.float32
    )
    return [
        x.reshape(shape).to(DEVICE).contiguous().requires_grad_(requires_grad)
        for x in (loc, scale, old_loc, old_scale)
    ]


@pytest.mark.parametrize("has_cov", [True, False], ids=["cov", "mean-only"])
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_opcheck_forward(divergence, has_cov):
    loc, scale, old_loc, old_scale = rows(1, requires_grad=True)
    args = (loc, scale if has_cov else None, old_loc, old_scale, 0.05)
    args += (0.01 if has_cov else None, divergence, 8)
    torch.library.opcheck(fused_projection, args)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_opcheck_backward(divergence):
    loc, scale, old_loc, old_scale = rows(2)
    _, _, mean_mult, _, stats = fused_projection(
        loc, scale, old_loc, old_scale, 0.05, 0.01, divergence, 8
    )
    grads = [torch.randn_like(loc), torch.randn_like(loc), torch.randn_like(mean_mult)]
    args = (loc, scale, old_loc, old_scale, stats, grads[0], grads[1], grads[2])
    args += (torch.randn_like(mean_mult), 0.05, 0.01, divergence)
    torch.library.opcheck(fused_projection_backward, args)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_compiles_without_graph_break_and_matches_reference(divergence, mode):
    """fullgraph=True fails on any graph break; AOTAutograd differentiates through the op's
    registered backward. The result and the input gradients match the eager torch reference."""

    def objective(backend):
        layer = TrajectoryKLProjection(
            0.05, 0.01, divergence=divergence, mode=mode, backend=backend, validate_args=False
        )

        def fn(loc, scale, old_loc, old_scale):
            projection = layer.project(loc, scale, old_loc, old_scale)
            total = (projection.loc.square().sum() + projection.scale.sum()).reshape(1)
            return torch.cat([total, projection.mean_multiplier.flatten()])

        return fn

    compiled = torch.compile(objective("triton"), backend="aot_eager", fullgraph=True)
    inputs = [x.to(DEVICE) for x in make_transitions(3, (4, 3, 5), torch.float32)]

    def run(fn):
        leaves = [x.detach().clone().requires_grad_() for x in inputs]
        out = fn(*leaves)
        out[0].backward()
        return out.detach(), [x.grad for x in leaves]

    ours, our_grads = run(compiled)
    reference = project_transitions(
        *inputs, mean_bound=0.05, cov_bound=0.01, divergence=divergence, mode=mode
    )
    assert (reference.mean_multiplier > 0).any() and (reference.cov_multiplier > 0).any()
    expected, expected_grads = run(objective("torch"))  # eager, the torch reference
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    magnitude = max(g.abs().max().item() for g in expected_grads)
    for a, b in zip(our_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * magnitude)

"""Types and constants shared by the constraint functions and their backends.

A leaf module: it imports nothing from trudi, so the torch reference and the Triton backend
(:mod:`trudi.constraints.triton`) both import it without importing each other.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

from torch import Tensor

__all__ = [
    "BACKENDS",
    "DIVERGENCES",
    "MODES",
    "Z_MAX",
    "Backend",
    "Divergence",
    "Mode",
    "Projection",
    "row_dims",
]

Divergence = Literal["kl", "w2", "frobenius"]
"""The trust-region divergence (see :mod:`trudi.constraints.divergences`)."""
Mode = Literal["trajectory", "per_step"]
"""One bound per chain (``[K, A]`` rows) or per transition (``[A]`` rows)."""
Backend = Literal["auto", "torch", "triton"]
"""Which implementation projects: the torch reference, the Triton kernels, or by device."""

DIVERGENCES: tuple[str, ...] = get_args(Divergence)
MODES: tuple[str, ...] = get_args(Mode)
BACKENDS: tuple[str, ...] = get_args(Backend)

# Upper end of z = log(1 + η/κ) in the KL covariance root find (the torch solver and the kernel
# share it): η = κ (e^z - 1) stays finite in float32 for every κ the penalty can produce (κ < 100),
# and the root of any row with c₀/ε < 1e30 lies far below it.
Z_MAX = 80.0


class Projection(NamedTuple):
    """Result of a projection.

    Attributes:
        loc, scale: the projected transitions, ``[*B, K, A]``.
        mean_multiplier: ω per row (0 where the mean bound was already met), ``[*B]`` in trajectory
            mode, ``[*B, K]`` in per-step mode.
        cov_multiplier: η per row, same shape (all 0 when the covariance is not projected).
    """

    loc: Tensor
    scale: Tensor
    mean_multiplier: Tensor
    cov_multiplier: Tensor


def row_dims(mode: Mode) -> tuple[int, ...]:
    """The trailing dims that form one row: ``(-2, -1)`` (trajectory) or ``(-1,)`` (per step)."""
    return (-2, -1) if mode == "trajectory" else (-1,)

"""Triton kernels for the constraints: fused forward and backward, matching the torch reference.

- :func:`gaussian_kl`: the per-step KL parts of ``[*B, K, A]`` transitions (one kernel each way);
- :func:`project_transitions`: the whole trust-region projection of
  :class:`~trudi.constraints.TrajectoryKLProjection` (row terms, multipliers, projected loc/scale).

Importing this package decorates the kernels, which is when Triton reads ``TRITON_INTERPRET``: on
CPU the kernels run only if it was ``1`` before this first import. Nothing in
:mod:`trudi.constraints` imports this package eagerly; ``TrajectoryKLProjection`` imports it on the
first projection that uses the Triton backend.
"""

from trudi.constraints.triton.gaussian_kl import gaussian_kl
from trudi.constraints.triton.projection import project_transitions

__all__ = ["gaussian_kl", "project_transitions"]

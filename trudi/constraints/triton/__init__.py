"""Triton kernels for the trust-region projection: fused forward and backward, matching the torch
reference.

- :func:`project_transitions`: the whole trust-region projection of
  :class:`~trudi.constraints.TrajectoryKLProjection` (row terms, multipliers, projected loc/scale).

Importing this package decorates the kernels, which is when Triton reads ``TRITON_INTERPRET``: on
CPU the kernels run only if it was ``1`` before this first import. Nothing in
:mod:`trudi.constraints` imports this package eagerly; ``TrajectoryKLProjection`` imports it on the
first projection that uses the Triton backend. It imports only downward: the kernels, and the
shared types and constants of :mod:`trudi.constraints.base`.
"""

from trudi.constraints.triton.projection import project_transitions

__all__ = ["project_transitions"]

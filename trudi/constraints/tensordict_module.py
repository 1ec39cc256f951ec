"""TensorDict-facing form of :class:`~trudi.constraints.TrajectoryKLProjection`."""

from __future__ import annotations

from collections.abc import Sequence

from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey

from trudi.constraints.projection import TrajectoryKLProjection

__all__ = ["TrajectoryKLProjectionModule"]

DEFAULT_IN_KEYS: tuple[NestedKey, ...] = (
    ("diffusion", "current_loc"),
    ("diffusion", "current_scale"),
    ("diffusion", "loc"),
    ("diffusion", "scale"),
)
DEFAULT_OUT_KEYS: tuple[NestedKey, ...] = (
    ("diffusion", "projected_loc"),
    ("diffusion", "projected_scale"),
)


class TrajectoryKLProjectionModule(TensorDictModule):
    """A :class:`TrajectoryKLProjection` that reads and writes TensorDict keys.

    It reads the current network's transitions and the behaviour transitions (DESIGN.md §3 keys
    ``("diffusion", "loc")`` and ``("diffusion", "scale")``) and writes the projected ones, so it can
    sit inside a :class:`~tensordict.nn.TensorDictSequential` after a module that evaluates the
    current transitions on the recorded chain. The behaviour keys are only read.

    Args:
        projection: the projection layer.
        in_keys: ``[current_loc, current_scale, old_loc, old_scale]``; defaults to
            ``("diffusion", "current_loc")``, ``("diffusion", "current_scale")``,
            ``("diffusion", "loc")``, ``("diffusion", "scale")``.
        out_keys: ``[projected_loc, projected_scale]``; defaults to
            ``("diffusion", "projected_loc")``, ``("diffusion", "projected_scale")``.

    Example:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> module = TrajectoryKLProjectionModule(TrajectoryKLProjection(mean_bound=0.1))
        >>> td = TensorDict(
        ...     {
        ...         ("diffusion", "current_loc"): torch.ones(4, 5, 2),
        ...         ("diffusion", "current_scale"): torch.ones(4, 5, 2),
        ...         ("diffusion", "loc"): torch.zeros(4, 5, 2),
        ...         ("diffusion", "scale"): torch.ones(4, 5, 2),
        ...     },
        ...     batch_size=[4],
        ... )
        >>> module(td)["diffusion", "projected_loc"].shape
        torch.Size([4, 5, 2])
    """

    def __init__(
        self,
        projection: TrajectoryKLProjection,
        in_keys: Sequence[NestedKey] = DEFAULT_IN_KEYS,
        out_keys: Sequence[NestedKey] = DEFAULT_OUT_KEYS,
    ) -> None:
        if len(in_keys) != 4:
            raise ValueError(
                "in_keys must be [current_loc, current_scale, old_loc, old_scale] (4 keys), "
                f"got {list(in_keys)}"
            )
        if len(out_keys) != 2:
            raise ValueError(
                f"out_keys must be [projected_loc, projected_scale] (2 keys), got {list(out_keys)}"
            )
        super().__init__(projection, in_keys=list(in_keys), out_keys=list(out_keys))

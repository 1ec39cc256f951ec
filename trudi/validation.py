"""Argument checks shared by every trudi module; each error names the argument and the fix.

Constructor checks (choices, integers, bounds, std ranges) cost nothing at run time. Tensor checks
are split by cost: shapes never synchronise with the device and are always on; values (finite,
positive scales) synchronise and run only with ``validate_args=True``, the default everywhere in
trudi, as in ``torch.distributions``.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor

__all__ = [
    "check_bound",
    "check_choice",
    "check_int",
    "check_scales_positive",
    "check_std_range",
    "check_transitions",
    "read_key",
]


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_int(name: str, value: object, *, minimum: int = 1, optional: bool = False) -> None:
    """An ``int`` (not a ``bool``) ``>= minimum``; ``None`` passes when ``optional``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = "None or an integer" if optional else "an integer"
        raise ValueError(f"{name} must be {allowed} >= {minimum}, got {value!r}.")


def check_bound(name: str, value: float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive finite float, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite float, got {value!r}")


def check_std_range(min_std: float, max_std: float) -> None:
    """``0 < min_std <= max_std``, the clamp range of a learned scale."""
    if not 0.0 < min_std <= max_std:
        raise ValueError(
            f"min_std and max_std must satisfy 0 < min_std <= max_std, got "
            f"min_std={min_std!r}, max_std={max_std!r}."
        )


def check_transitions(loc: Tensor, scale: Tensor, old_loc: Tensor, old_scale: Tensor) -> None:
    """Shapes (no host sync): all four ``[*B, K, A]``, floating point; ``old_loc`` of ``loc``'s
    shape, the scales ``[*S, K, A]`` with ``S`` broadcastable to ``B`` (state-independent scales:
    ``[1, …, 1, K, A]``)."""
    named = {"loc": loc, "scale": scale, "old_loc": old_loc, "old_scale": old_scale}
    for name, tensor in named.items():
        if not isinstance(tensor, Tensor):
            raise ValueError(
                f"{name} must be a torch.Tensor of shape [*B, K, A], got {type(tensor)}"
            )
        if tensor.dim() < 2:
            raise ValueError(
                f"{name} must have shape [*B, K, A] (at least 2 dims), got {tuple(tensor.shape)}"
            )
        if not tensor.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    if old_loc.shape != loc.shape:
        raise ValueError(
            f"old_loc must have the shape of loc {tuple(loc.shape)} ([*B, K, A]), "
            f"got {tuple(old_loc.shape)}"
        )
    for name, tensor in (("scale", scale), ("old_scale", old_scale)):
        broadcasts = tensor.dim() <= loc.dim() and all(
            size in (1, full)
            for size, full in zip(tensor.shape[:-2], loc.shape[-tensor.dim() : -2], strict=True)
        )
        if tensor.shape[-2:] != loc.shape[-2:] or not broadcasts:
            raise ValueError(
                f"{name} must have the shape of loc {tuple(loc.shape)} ([*B, K, A]) or one "
                f"that broadcasts to it with the same [K, A], got {tuple(tensor.shape)}"
            )


def check_scales_positive(**scales: Tensor) -> None:
    """Values (synchronises with the device): every scale finite and > 0."""
    for name, scale in scales.items():
        bad = ~(torch.isfinite(scale) & (scale > 0))
        if bool(bad.any()):
            raise ValueError(
                f"{name} must be finite and > 0 everywhere, got {int(bad.sum())} bad entries "
                f"(min {scale.detach().min().item():.3g}); pass validate_args=False to skip this check"
            )


def read_key(
    tensordict: TensorDictBase,
    key: NestedKey,
    name: str,
    *,
    reader: str,
    source: str = "",
    stored: bool = False,
) -> Tensor:
    """``tensordict[key]``, or a ``KeyError`` naming the key, its field ``name`` and the rename.

    Args:
        reader: who reads it, as the user holds it (``"policy"``, ``"loss"``, ``"estimator"``).
        source: where the entry normally comes from, e.g. ``"the policy writes it at collection"``.
        stored: the entry was recorded at collection and must not require grad.
    """
    value = tensordict.get(key, None)
    if value is None:
        where = f"; {source}" if source else ""
        raise KeyError(
            f"the {reader} reads {key!r} ({name}) from the tensordict, which lacks it{where}; "
            f"or rename it with {reader}.set_keys({name}=...)."
        )
    if stored and value.requires_grad:
        raise RuntimeError(f"the stored {name} ({key!r}) requires grad; store it detached.")
    return value

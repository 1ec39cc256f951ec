"""Action squashing: map the chain's last sample x_0 into the action bounds."""

from __future__ import annotations

import torch
from torch import nn
from torchrl.data import TensorSpec

from trudi.validation import check_choice

__all__ = ["ActionSquash"]

_MODES = ("clip", "tanh", "none")


def _finite(bound: torch.Tensor) -> bool:
    # TorchRL's Unbounded specs store the dtype's extreme values rather than infinities.
    return bool((bound.abs() < torch.finfo(bound.dtype).max).all())


class ActionSquash(nn.Module):
    """``action = low + (u + 1)/2 · (high − low)`` with ``u = clamp(x_0, −1, 1)`` or ``tanh(x_0)``.

    The chain lives in the normalized space [-1, 1] (the sampler's ``clip_sample`` range), so the
    squash only rescales to the environment's bounds. Log-probs are taken on the chain, before
    squashing, so no Jacobian term is needed.

    Args:
        mode: ``"clip"``, ``"tanh"`` or ``"none"`` (the action is x_0 itself).
        action_spec: a bounded TorchRL spec whose ``space.low``/``space.high`` give the bounds
            (broadcast to ``[*B, A]``); ``None`` means [-1, 1].

    Examples:
        >>> import torch
        >>> ActionSquash("clip")(torch.tensor([-3.0, 0.5]))
        tensor([-1.0000,  0.5000])
    """

    def __init__(self, mode: str = "clip", action_spec: TensorSpec | None = None) -> None:
        super().__init__()
        check_choice("squash", mode, _MODES)
        self.mode = mode
        low, high = torch.tensor(-1.0), torch.tensor(1.0)
        if action_spec is not None and mode != "none":
            space = getattr(action_spec, "space", None)
            low, high = getattr(space, "low", None), getattr(space, "high", None)
            if low is None or high is None or not (_finite(low) and _finite(high)):
                raise ValueError(
                    f"squash={mode!r} needs a bounded action_spec (finite space.low/high), got "
                    f"{type(action_spec).__name__}; pass squash='none' for unbounded actions."
                )
            low, high = low.float(), high.float()
            # A batched env's spec repeats the bounds per env; keep one row so the squash also
            # serves envs of another batch size (e.g. evaluation envs).
            if low.dim() > 1 and (low == low[(0,) * (low.dim() - 1)]).all():
                low = low[(0,) * (low.dim() - 1)]
            if high.dim() > 1 and (high == high[(0,) * (high.dim() - 1)]).all():
                high = high[(0,) * (high.dim() - 1)]
        self.register_buffer("low", low, persistent=False)
        self.register_buffer("high", high, persistent=False)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """``[*B, A]`` → ``[*B, A]``."""
        if self.mode == "none":
            return x0
        unit = x0.clamp(-1.0, 1.0) if self.mode == "clip" else torch.tanh(x0)
        low, high = self.low.to(x0.dtype), self.high.to(x0.dtype)
        return low + 0.5 * (unit + 1.0) * (high - low)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

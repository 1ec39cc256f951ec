"""An adaptive trust region: scale the bounds from a measured divergence toward a target.

The rule of PPO's adaptive KL penalty (Schulman et al. 2017, "Proximal Policy Optimization
Algorithms", §4), applied to the trust region's size instead of a penalty weight: after each
measurement d of the realised divergence,

    scale ← scale · factor   if d < target / tolerance     (the region is tighter than wanted)
    scale ← scale / factor   if d > target · tolerance     (looser than wanted)

clamped to [min_scale, max_scale]; the bounds in force are the configured ones times ``scale``.
TruDi bounds the trajectory KL, which can sit far above the marginal action KL the bound is meant
to limit (:func:`trudi.diagnostics.marginal_kl`), so measuring the marginal KL and steering the
trajectory bound with it sets the policy's step in action space, whatever the gap.
"""

from __future__ import annotations

import math
from typing import Any

from trudi.constraints.projection import TrajectoryKLProjection
from trudi.validation import check_bound

__all__ = ["AdaptiveBound"]


class AdaptiveBound:
    """Multiplicative adaptation of a trust region's bounds toward a target divergence.

    Args:
        target: the divergence wanted per update (e.g. a marginal action KL), > 0.
        factor: the multiplicative step, > 1 (PPO's adaptive KL: 2; here 1.5 by default).
        tolerance: the dead band: no change while target / tolerance ≤ d ≤ target · tolerance;
            ≥ 1 (PPO: 1.5).
        min_scale, max_scale: the range of the scale, ``0 < min_scale ≤ 1 ≤ max_scale``.

    The only state is :attr:`scale` (1 at the start); :meth:`state_dict` and
    :meth:`load_state_dict` save and restore the whole rule, so a resumed run continues exactly.
    A non-finite measurement leaves the scale unchanged.

    Example:
        >>> from trudi.constraints import AdaptiveBound, TrajectoryKLProjection
        >>> rule = AdaptiveBound(target=0.05)
        >>> projection = TrajectoryKLProjection(mean_bound=0.2, cov_bound=0.02)
        >>> rule.step(0.01)  # far below the target: widen
        1.5
        >>> rule.apply(projection, mean_bound=0.2, cov_bound=0.02)
        >>> round(projection.mean_bound, 4), round(projection.cov_bound, 4)
        (0.3, 0.03)
        >>> rule.step(0.05), rule.step(0.2)  # inside the band: keep; above: tighten
        (1.5, 1.0)
    """

    def __init__(
        self,
        target: float,
        *,
        factor: float = 1.5,
        tolerance: float = 1.5,
        min_scale: float = 0.1,
        max_scale: float = 10.0,
    ) -> None:
        check_bound("target", target)
        check_bound("factor", factor)
        check_bound("tolerance", tolerance)
        check_bound("min_scale", min_scale)
        check_bound("max_scale", max_scale)
        if not factor > 1:
            raise ValueError(f"factor must be > 1, got {factor!r}")
        if not tolerance >= 1:
            raise ValueError(f"tolerance must be >= 1, got {tolerance!r}")
        if not min_scale <= 1 <= max_scale:
            raise ValueError(
                f"min_scale and max_scale must satisfy 0 < min_scale <= 1 <= max_scale, got "
                f"min_scale={min_scale!r}, max_scale={max_scale!r}"
            )
        self.target = float(target)
        self.factor = float(factor)
        self.tolerance = float(tolerance)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.scale = 1.0

    def __repr__(self) -> str:
        return (
            f"AdaptiveBound(target={self.target}, factor={self.factor}, "
            f"tolerance={self.tolerance}, scale={self.scale}, range=[{self.min_scale}, "
            f"{self.max_scale}])"
        )

    def step(self, measured: float) -> float:
        """Update the scale from one measurement (a Python float) and return it."""
        if not math.isfinite(measured):
            return self.scale
        if measured < self.target / self.tolerance:
            self.scale *= self.factor
        elif measured > self.target * self.tolerance:
            self.scale /= self.factor
        self.scale = min(max(self.scale, self.min_scale), self.max_scale)
        return self.scale

    def bound(self, base: float) -> float:
        """A configured bound ``base`` times the current scale."""
        return base * self.scale

    def apply(
        self,
        projection: TrajectoryKLProjection,
        mean_bound: float,
        cov_bound: float | None = None,
    ) -> None:
        """Set ``projection``'s bounds to the configured ``mean_bound`` and ``cov_bound`` (``None``:
        the scales are not projected) times the current scale."""
        check_bound("mean_bound", mean_bound)
        check_bound("cov_bound", cov_bound, optional=True)
        projection.mean_bound = self.bound(mean_bound)
        projection.cov_bound = None if cov_bound is None else self.bound(cov_bound)

    def state_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "target": self.target,
            "factor": self.factor,
            "tolerance": self.tolerance,
            "min_scale": self.min_scale,
            "max_scale": self.max_scale,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; a rule of other settings is refused."""
        settings = {k: v for k, v in self.state_dict().items() if k != "scale"}
        saved = {k: state.get(k) for k in settings}
        if saved != settings:
            raise ValueError(
                f"load_state_dict: the saved rule has settings {saved}, this one {settings}; "
                "build the AdaptiveBound with the saved settings"
            )
        scale = state["scale"]
        if not self.min_scale <= scale <= self.max_scale:
            raise ValueError(
                f"load_state_dict: scale must lie in [{self.min_scale}, {self.max_scale}], got "
                f"{scale!r}"
            )
        self.scale = float(scale)

"""Noise schedules: the cumulative signal level ``alphas_cumprod`` of a K-step forward process.

A schedule is a small object with a number of training steps ``num_steps`` (T) and one method,
:meth:`NoiseSchedule.alphas_cumprod`, returning ᾱ_t for t = 0 … T with ᾱ_0 = 1 (no noise), so that
the forward process is ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε``. Samplers build their transition
coefficients from it.
"""

from __future__ import annotations

import math

import torch

from trudi.validation import check_int

__all__ = ["CosineSchedule", "LinearSchedule", "NoiseSchedule", "SigmoidSchedule"]

# Per-step betas are capped below 1 so that ᾱ_T stays positive and x0 = (x_t − ...)/sqrt(ᾱ_t)
# remains finite at the noisiest step.
_MAX_BETA = 0.999


def _alphas_cumprod_from_curve(curve: torch.Tensor) -> torch.Tensor:
    """ᾱ from a decreasing curve f(t) on t = 0 … T, through betas so that the beta cap applies."""
    betas = (1.0 - curve[1:] / curve[:-1]).clamp(max=_MAX_BETA)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod])


class NoiseSchedule:
    """Base class: a forward-noising schedule over ``num_steps`` (T) training steps.

    Args:
        num_steps: number of training diffusion steps T (>= 1).
    """

    def __init__(self, num_steps: int) -> None:
        check_int("num_steps", num_steps)
        self.num_steps = num_steps

    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t for t = 0 … T as a float64 tensor of shape ``[T + 1]``, with ᾱ_0 = 1, decreasing."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class LinearSchedule(NoiseSchedule):
    """DDPM's linear betas in their continuous-time form (the VP-SDE of Song et al., 2021).

    β(t) rises linearly from ``beta_min`` to ``beta_max`` over t ∈ [0, 1], so
    ᾱ(t) = exp(−(β_min t + ½ (β_max − β_min) t²)). Unlike the discrete 1,000-step betas, this
    reaches the same final noise level for any T, which matters for the short chains of RL
    (T = 5 … 20).

    Args:
        num_steps: number of training diffusion steps T.
        beta_min: β(0) > 0 (0.1 is DDPM's 1e-4 × 1,000).
        beta_max: β(1) >= beta_min (20 is DDPM's 0.02 × 1,000).

    Examples:
        >>> LinearSchedule(10).alphas_cumprod().shape
        torch.Size([11])
    """

    def __init__(self, num_steps: int, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        super().__init__(num_steps)
        if not beta_min > 0.0:
            raise ValueError(f"beta_min must be > 0, got {beta_min!r}.")
        if not beta_max >= beta_min:
            raise ValueError(f"beta_max must be >= beta_min ({beta_min!r}), got {beta_max!r}.")
        self.beta_min = beta_min
        self.beta_max = beta_max

    def alphas_cumprod(self) -> torch.Tensor:
        t = torch.linspace(0.0, 1.0, self.num_steps + 1, dtype=torch.float64)
        log_curve = -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t.square())
        return _alphas_cumprod_from_curve(log_curve.exp())


class CosineSchedule(NoiseSchedule):
    """Cosine schedule (Nichol & Dhariwal, 2021): ᾱ(t) ∝ cos²(((t/T + s)/(1 + s)) · π/2).

    Args:
        num_steps: number of training diffusion steps T.
        offset: the small offset s that keeps the first betas away from zero (>= 0).

    Examples:
        >>> float(CosineSchedule(5).alphas_cumprod()[0])
        1.0
    """

    def __init__(self, num_steps: int, offset: float = 0.008) -> None:
        super().__init__(num_steps)
        if offset < 0.0:
            raise ValueError(f"offset must be >= 0, got {offset!r}.")
        self.offset = offset

    def alphas_cumprod(self) -> torch.Tensor:
        t = torch.linspace(0.0, 1.0, self.num_steps + 1, dtype=torch.float64)
        curve = torch.cos((t + self.offset) / (1.0 + self.offset) * math.pi / 2) ** 2
        return _alphas_cumprod_from_curve(curve)


class SigmoidSchedule(NoiseSchedule):
    """Sigmoid schedule (Jabri et al., 2022): ᾱ(t) follows a shifted, rescaled −sigmoid.

    ᾱ(t) ∝ sigmoid(end/τ) − sigmoid((start + t (end − start))/τ); a smaller ``temperature`` τ keeps
    the signal longer and drops it faster near the end.

    Args:
        num_steps: number of training diffusion steps T.
        start: left end of the sigmoid's input range.
        end: right end of the sigmoid's input range (> start).
        temperature: τ > 0.

    Examples:
        >>> SigmoidSchedule(8).alphas_cumprod().shape
        torch.Size([9])
    """

    def __init__(
        self, num_steps: int, start: float = -3.0, end: float = 3.0, temperature: float = 1.0
    ) -> None:
        super().__init__(num_steps)
        if not end > start:
            raise ValueError(f"end must be > start ({start!r}), got {end!r}.")
        if not temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        self.start = start
        self.end = end
        self.temperature = temperature

    def alphas_cumprod(self) -> torch.Tensor:
        t = torch.linspace(0.0, 1.0, self.num_steps + 1, dtype=torch.float64)
        v_start = torch.sigmoid(torch.tensor(self.start / self.temperature, dtype=torch.float64))
        v_end = torch.sigmoid(torch.tensor(self.end / self.temperature, dtype=torch.float64))
        value = torch.sigmoid((self.start + t * (self.end - self.start)) / self.temperature)
        curve = (v_end - value) / (v_end - v_start)
        return _alphas_cumprod_from_curve(curve)

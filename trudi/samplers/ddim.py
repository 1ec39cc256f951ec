"""DDIM (Song et al., 2021): a family of reverse chains indexed by η, with step skipping."""

from __future__ import annotations

import torch

from trudi.samplers.sampler import ScheduledSampler
from trudi.samplers.schedules import NoiseSchedule
from trudi.validation import check_int

__all__ = ["DDIMSampler"]


class DDIMSampler(ScheduledSampler):
    """DDIM sampler; η = 0 is the deterministic probability-flow ODE, η = 1 is DDPM.

    The chain visits K <= T training timesteps τ_0 = T > τ_1 > … > τ_K = 0 (evenly spaced, so an
    evaluation sampler may use fewer steps than training). Step j goes from t = τ_j to s = τ_{j+1}:

        σ²    = η² (1 − ᾱ_s)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_s)
        ε̂     = (x_t − sqrt(ᾱ_t) x0)/sqrt(1 − ᾱ_t)          (from the clamped x0 estimate)
        loc   = sqrt(ᾱ_s) x0 + sqrt(1 − ᾱ_s − σ²) ε̂
        scale = σ, floored at ``min_std``

    With η = 1 and K = T this is exactly :class:`~trudi.samplers.AncestralSampler`'s transition.
    With η = 0 every scale is 0 (when ``min_std`` = 0): the chain is deterministic and carries no
    density, so use it for evaluation, not for a policy that is scored.

    Args:
        schedule: the noise schedule the denoiser is trained with (T = ``schedule.num_steps``).
        eta: η in [0, 1].
        num_steps: K, the number of chain steps (1 … T); ``None`` uses T.
        prediction: ``"epsilon"`` or ``"sample"`` (x0).
        clip_sample: clamp range of the x0 estimate, or ``None``.
        min_std: scale floor when sampling.
        min_score_std: scale floor when re-scoring; ``None`` uses ``min_std``.

    Examples:
        >>> import torch
        >>> from trudi.samplers import CosineSchedule, DDIMSampler
        >>> ode = DDIMSampler(CosineSchedule(10), eta=0.0, num_steps=4)
        >>> prior = torch.randn(3, 2)
        >>> denoise = lambda x, t: 0.5 * x
        >>> a = ode.sample_chain(denoise, prior).chain
        >>> bool((a == ode.sample_chain(denoise, prior).chain).all()), tuple(a.shape)
        (True, (3, 5, 2))
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        eta: float = 0.0,
        *,
        num_steps: int | None = None,
        prediction: str = "epsilon",
        clip_sample: float | None = 1.0,
        min_std: float = 0.0,
        min_score_std: float | None = None,
    ) -> None:
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}.")
        self.eta = float(eta)
        path = None
        if isinstance(schedule, NoiseSchedule):
            train_steps = schedule.num_steps
            check_int("num_steps", num_steps, optional=True)
            if num_steps is None:
                num_steps = train_steps
            if num_steps > train_steps:
                raise ValueError(
                    f"num_steps must be in [1, schedule.num_steps={train_steps}], got {num_steps}."
                )
            path = torch.linspace(train_steps, 0, num_steps + 1, dtype=torch.float64).round().long()
        super().__init__(
            schedule,
            path,
            prediction=prediction,
            clip_sample=clip_sample,
            min_std=min_std,
            min_score_std=min_score_std,
        )

    def _coefficients(
        self, ab_t: torch.Tensor, ab_s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        var = self.eta**2 * (1.0 - ab_s) / (1.0 - ab_t) * (1.0 - ab_t / ab_s)
        # clamp: at η = 1 the difference is 0 up to rounding and must not turn into NaN.
        direction = (1.0 - ab_s - var).clamp_min(0.0).sqrt() / (1.0 - ab_t).sqrt()
        coef_sample = direction
        coef_x0 = ab_s.sqrt() - direction * ab_t.sqrt()
        return coef_x0, coef_sample, var.sqrt()

    def extra_repr(self) -> str:
        return f"eta={self.eta}, " + super().extra_repr()

"""Ancestral sampling: the DDPM reverse chain with the Gaussian posterior q(x_{t−1} | x_t, x0)."""

from __future__ import annotations

import torch

from trudi.samplers.sampler import ScheduledSampler
from trudi.samplers.schedules import NoiseSchedule

__all__ = ["AncestralSampler"]


class AncestralSampler(ScheduledSampler):
    """DDPM ancestral sampler (Ho et al., 2020) over all T steps of the schedule (K = T).

    Step j goes from t = T − j to t − 1 with the posterior of the forward process,

        loc   = sqrt(ᾱ_{t−1}) β_t / (1 − ᾱ_t) · x0  +  sqrt(α_t) (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t
        scale = sqrt(β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)),  floored at ``min_std``,

    where x0 is the (clamped) estimate from the denoiser. The last posterior std is 0, so a
    positive ``min_std`` is what keeps every transition, and therefore the chain's log-likelihood,
    well defined (DPPO's minimum sampling / log-prob std).

    Args:
        schedule: the noise schedule; K = ``schedule.num_steps``.
        prediction: ``"epsilon"`` (the denoiser predicts the noise) or ``"sample"`` (x0).
        clip_sample: clamp range of the x0 estimate (actions live in [-1, 1] before squashing),
            or ``None``.
        min_std: scale floor when sampling (> 0 for a policy that is scored).
        min_score_std: scale floor when re-scoring; ``None`` uses ``min_std``.

    Examples:
        >>> import torch
        >>> from trudi.samplers import AncestralSampler, CosineSchedule
        >>> sampler = AncestralSampler(CosineSchedule(5))
        >>> out = sampler.sample_chain(lambda x, t: torch.zeros_like(x), torch.randn(3, 2))
        >>> out.chain.shape, out.loc.shape
        (torch.Size([3, 6, 2]), torch.Size([3, 5, 2]))
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        *,
        prediction: str = "epsilon",
        clip_sample: float | None = 1.0,
        min_std: float = 1e-2,
        min_score_std: float | None = None,
    ) -> None:
        path = None
        if isinstance(schedule, NoiseSchedule):
            path = torch.arange(schedule.num_steps, -1, -1)
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
        alpha = ab_t / ab_s
        beta = 1.0 - alpha
        coef_x0 = ab_s.sqrt() * beta / (1.0 - ab_t)
        coef_sample = alpha.sqrt() * (1.0 - ab_s) / (1.0 - ab_t)
        std = (beta * (1.0 - ab_s) / (1.0 - ab_t)).sqrt()
        return coef_x0, coef_sample, std

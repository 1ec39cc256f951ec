"""Best-of-N sampling: draw several chains per observation, keep the best-scoring one."""

from __future__ import annotations

from collections.abc import Callable

import torch

from trudi.samplers.log_prob import chain_log_likelihood
from trudi.samplers.sampler import Chain, Denoise, Sampler, ScaleFn
from trudi.validation import check_int

__all__ = ["BestOfKSampler", "ChainScore"]

ChainScore = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor
]
"""``score(chain [*N, K+1, A], loc [*N, K, A], scale [*N, K, A], observation) -> [*N]``.

``observation`` is the ``denoise`` callable's (a :class:`~trudi.samplers.ConditionedDenoiser`
carries it), ``None`` for a plain callable."""


class BestOfKSampler(Sampler):
    """Draw ``num_candidates`` chains with ``base`` and keep, per observation, the best-scoring one.

    The candidate chains run as one batch (a new leading dimension of size ``num_candidates``), so
    the cost is one chain at ``num_candidates`` times the batch size. :meth:`transition` and
    :meth:`step` (and so :meth:`rescore_chain`) are the base sampler's: a kept chain is re-scored
    with the base transitions. The
    selection makes the kept chain's distribution differ from the base chain's, so its stored
    log-probs are not behaviour log-probs; use this sampler for evaluation.

    Args:
        base: the sampler that draws each candidate.
        num_candidates: number of candidate chains per observation (>= 1).
        score: ``score(chain, loc, scale, observation) -> [num_candidates, *B]``, higher is better;
            the default is the chain log-likelihood. A critic can score the pre-squash x0,
            ``chain[..., -1, :]``, together with the observation, which reaches the score through
            the :class:`~trudi.samplers.ConditionedDenoiser` that the policy passes as
            ``denoise``.

    Examples:
        >>> import torch
        >>> from trudi.samplers import AncestralSampler, BestOfKSampler, CosineSchedule
        >>> sampler = BestOfKSampler(AncestralSampler(CosineSchedule(5)), num_candidates=8)
        >>> sampler.sample_chain(lambda x, t: 0.1 * x, torch.randn(4, 3)).chain.shape
        torch.Size([4, 6, 3])
    """

    def __init__(
        self,
        base: Sampler,
        num_candidates: int,
        score: ChainScore = chain_log_likelihood,
    ) -> None:
        super().__init__()
        if not isinstance(base, Sampler):
            raise ValueError(f"base must be a trudi Sampler, got {type(base).__name__}.")
        check_int("num_candidates", num_candidates)
        if not callable(score):
            raise ValueError(f"score must be callable, got {type(score).__name__}.")
        self.base = base
        self.num_candidates = num_candidates
        self.score = score

    @property
    def num_steps(self) -> int:
        return self.base.num_steps

    @property
    def timesteps(self) -> torch.Tensor:
        return self.base.timesteps

    @property
    def min_std(self) -> float:
        return self.base.min_std

    @property
    def min_score_std(self) -> float:
        return self.base.min_score_std

    @property
    def state_independent_scale(self) -> bool:
        return self.base.state_independent_scale

    def transition(
        self,
        denoised: torch.Tensor,
        step: int | torch.Tensor,
        sample: torch.Tensor,
        *,
        sampling: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.transition(denoised, step, sample, sampling=sampling)

    def sample_chain(
        self,
        denoise: Denoise,
        prior: torch.Tensor,
        *,
        scale_fn: ScaleFn | None = None,
        generator: torch.Generator | None = None,
    ) -> Chain:
        # The given prior is the first candidate; the others get fresh priors.
        others = torch.randn(
            (self.num_candidates - 1, *prior.shape),
            dtype=prior.dtype,
            device=prior.device,
            generator=generator,
        )
        candidates = self.base.sample_chain(
            denoise,
            torch.cat([prior.unsqueeze(0), others]),
            scale_fn=scale_fn,
            generator=generator,
        )
        observation = getattr(denoise, "observation", None)
        score = self.score(candidates.chain, candidates.loc, candidates.scale, observation)
        best = score.argmax(0)

        def keep(x: torch.Tensor) -> torch.Tensor:
            index = best.reshape(1, *best.shape, 1, 1).expand(1, *x.shape[1:])
            return x.gather(0, index).squeeze(0)

        return Chain(keep(candidates.chain), keep(candidates.loc), keep(candidates.scale))

    def extra_repr(self) -> str:
        score = getattr(self.score, "__name__", self.score)
        return f"num_candidates={self.num_candidates}, score={score}"

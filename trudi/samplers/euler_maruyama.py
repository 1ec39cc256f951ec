"""Euler–Maruyama sampler (DIME-style): the time reversal of an Ornstein–Uhlenbeck process.

The reference (noising) process is the OU process with friction γ and stationary law N(0, σ_p² I),

    dX_t = −γ X_t dt + σ_p sqrt(2γ) dW_t,      t ∈ [0, horizon],

and the chain runs it backwards from the prior x_K ~ N(0, σ_p² I) with a learned score. The
denoiser's output d is the score's residual around the prior's own score, in prior-std units,
s(x, t) = (d − x/σ_p)/σ_p, so a denoiser that outputs 0 leaves the prior in place. Step j goes from
time t_{K−j} to t_{K−j−1} (a cosine grid, finer near the action end) with g_j = γ_j Δt_j:

    SDE   loc = x + g_j (2 σ_p d − x),           scale = σ_p sqrt(2 g_j)
    ODE   loc = x + g_j (c σ_p d + (1 − c) x),   scale = 0    (probability flow, score scale c)

Both are Euler–Maruyama steps; the friction γ_j (one per step) and the prior std σ_p can be learned
parameters of the sampler (they then live in the policy's ``parameters()``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from trudi.samplers.sampler import Chain, Denoise, Sampler, ScaleFn

__all__ = ["EulerMaruyamaSampler", "ProbabilityFlowSampler"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a float > 0, got {value!r}.")
    return float(value)


class _WidePriorSampler(Sampler):
    """A sampler whose prior is N(0, σ_p² I): ``sample_chain`` takes standard-normal ``prior``
    noise and starts the chain at x_K = σ_p · prior. Subclasses define ``prior_std``."""

    prior_std: torch.Tensor
    state_independent_scale = True  # the noise std of the step's time, floored

    def sample_chain(
        self,
        denoise: Denoise,
        prior: torch.Tensor,
        *,
        scale_fn: ScaleFn | None = None,
        generator: torch.Generator | None = None,
    ) -> Chain:
        """As :meth:`Sampler.sample_chain`, with ``prior`` standard normal and x_K = σ_p · prior."""
        return super().sample_chain(
            denoise, self.prior_std.to(prior.dtype) * prior, scale_fn=scale_fn, generator=generator
        )


class EulerMaruyamaSampler(_WidePriorSampler):
    """Reparameterisable Euler–Maruyama chain of the reversed OU process (see the module doc).

    ``sample_chain``'s ``prior`` is a *standard*-normal draw ξ (as every trudi policy passes it);
    the chain starts at x_K = σ_p ξ, so ``chain[..., 0, :]`` is the actual prior sample. Besides the
    :class:`Sampler` protocol it gives what the ELBO-style pseudo log-density of a chain needs
    (:func:`trudi.policies.pseudo_log_prob`): :meth:`prior_log_prob` and the reference process's
    noising kernels :meth:`reference_log_prob`. The probability-flow ODE for deployment is
    :meth:`probability_flow`, which shares this sampler's parameters.

    Args:
        num_steps: K (8 in DIME and TruDi; 1 fails, 4 is worse).
        prior_std: σ_p, the prior and stationary std (DIME's ``init_std``: 2.5).
        friction: initial γ of every step (> 0; DIME: 1.0).
        horizon: the reference process's time span (the Δt_j sum to it).
        learn_friction: make the per-step friction ``[K]`` a parameter (softplus-positive).
        learn_prior_std: make σ_p a parameter. Off by default (as in DIME): the recorded
            behaviour transitions do not include the prior, so the trust region of a learned
            prior std is not bounded (docs/pathwise.md).
        min_std: floor of the transition scale.

    Examples:
        >>> import torch
        >>> from trudi.samplers import EulerMaruyamaSampler
        >>> sampler = EulerMaruyamaSampler(8)
        >>> out = sampler.sample_chain(lambda x, t: torch.zeros_like(x), torch.randn(3, 2))
        >>> out.chain.shape, out.scale.shape
        (torch.Size([3, 9, 2]), torch.Size([3, 8, 2]))
    """

    def __init__(
        self,
        num_steps: int = 8,
        *,
        prior_std: float = 2.5,
        friction: float = 1.0,
        horizon: float = 1.0,
        learn_friction: bool = True,
        learn_prior_std: bool = False,
        min_std: float = 1e-3,
    ) -> None:
        super().__init__()
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}.")
        prior_std = _positive("prior_std", prior_std)
        friction = _positive("friction", friction)
        horizon = _positive("horizon", horizon)
        if not min_std >= 0:
            raise ValueError(f"min_std must be >= 0, got {min_std!r}.")
        self.num_steps = num_steps
        self.min_std = self.min_score_std = float(min_std)
        self.horizon = horizon
        grid = horizon * (1 - torch.cos(torch.linspace(0, 1, num_steps + 1) * math.pi / 2))
        # Step j goes from grid[K − j] to grid[K − j − 1]: large steps at the noisy end.
        self.register_buffer("dt", (grid[1:] - grid[:-1]).flip(0), persistent=False)
        self.register_buffer("timesteps", torch.arange(num_steps, 0, -1), persistent=False)
        raw_friction = torch.full((num_steps,), _inverse_softplus(friction))
        log_prior_std = torch.tensor(math.log(prior_std))
        if learn_friction:
            self.raw_friction = nn.Parameter(raw_friction)
        else:
            self.register_buffer("raw_friction", raw_friction)
        if learn_prior_std:
            self.log_prior_std = nn.Parameter(log_prior_std)
        else:
            self.register_buffer("log_prior_std", log_prior_std)

    @property
    def friction(self) -> torch.Tensor:
        """γ_j, ``[K]``."""
        return F.softplus(self.raw_friction)

    @property
    def prior_std(self) -> torch.Tensor:
        """σ_p, a 0-dim tensor."""
        return self.log_prior_std.exp()

    def _step_size(self, step: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """g_j = γ_j Δt_j at ``step``, broadcastable to ``like`` ``[*N, A]``."""
        return (self.friction * self.dt)[step].to(like.dtype).unsqueeze(-1)

    def _noise_std(self, g: torch.Tensor) -> torch.Tensor:
        return self.prior_std.to(g.dtype) * (2 * g).sqrt()

    def transition(
        self,
        denoised: torch.Tensor,
        step: int | torch.Tensor,
        sample: torch.Tensor,
        *,
        sampling: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._step_size(step, sample)
        prior_std = self.prior_std.to(sample.dtype)
        loc = sample + g * (2 * prior_std * denoised - sample)
        scale = self._noise_std(g).clamp_min(self.min_std).expand_as(loc)
        return loc, scale

    def prior_log_prob(self, prior: torch.Tensor) -> torch.Tensor:
        """log N(x_K; 0, σ_p² I) of ``prior`` ``[*B, A]`` (the actual x_K), ``[*B]``."""
        log_std = self.log_prior_std.to(prior.dtype)
        z = prior / log_std.exp()
        return (-0.5 * z.square() - log_std - _HALF_LOG_2PI).sum(-1)

    def reference_log_prob(self, chain: torch.Tensor) -> torch.Tensor:
        """log q(x_j | x_{j+1}) of the reference OU process's Euler–Maruyama noising kernels.

        q(x_j | x_{j+1}) = N((1 − g_j) x_{j+1}, 2 g_j σ_p² I): step j's reverse, from the less
        noisy ``chain[..., j + 1, :]`` to ``chain[..., j, :]``. Returns ``[*B, K]`` (sum over A).
        """
        g = (self.friction * self.dt).to(chain.dtype).unsqueeze(-1)
        loc = (1 - g) * chain[..., 1:, :]
        scale = self._noise_std(g).clamp_min(self.min_std)
        z = (chain[..., :-1, :] - loc) / scale
        return (-0.5 * z.square() - scale.log() - _HALF_LOG_2PI).sum(-1)

    def probability_flow(self, score_scale: float = 1.0, min_std: float = 0.0) -> Sampler:
        """The deterministic probability-flow ODE of this chain (shares its parameters)."""
        return ProbabilityFlowSampler(self, score_scale=score_scale, min_std=min_std)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, horizon={self.horizon}, min_std={self.min_std}"


class ProbabilityFlowSampler(_WidePriorSampler):
    """The probability-flow ODE of an :class:`EulerMaruyamaSampler`, for deployment.

    loc = x + g_j (c σ_p d + (1 − c) x) with the score scale c (1: the exact probability flow of
    the learned score), scale = ``min_std`` (0: deterministic, scored as 0 by
    :func:`~trudi.samplers.transition_log_prob`). It holds the SDE sampler as a submodule, so its
    friction and prior std are the trained ones. TruDi deploys with it (ODE > SDE > best-of-K).

    Args:
        sde: the training sampler.
        score_scale: c.
        min_std: scale of each transition (>= 0).

    Examples:
        >>> import torch
        >>> from trudi.samplers import EulerMaruyamaSampler
        >>> ode = EulerMaruyamaSampler(4).probability_flow()
        >>> ode.sample_chain(lambda x, t: x.sin(), torch.zeros(2, 3)).chain[..., -1, :].shape
        torch.Size([2, 3])
    """

    def __init__(
        self, sde: EulerMaruyamaSampler, *, score_scale: float = 1.0, min_std: float = 0.0
    ) -> None:
        super().__init__()
        if not isinstance(sde, EulerMaruyamaSampler):
            raise ValueError(f"sde must be an EulerMaruyamaSampler, got {type(sde).__name__}.")
        if not min_std >= 0:
            raise ValueError(f"min_std must be >= 0, got {min_std!r}.")
        self.sde = sde
        self.score_scale = float(score_scale)
        self.min_std = self.min_score_std = float(min_std)

    @property
    def num_steps(self) -> int:
        return self.sde.num_steps

    @property
    def timesteps(self) -> torch.Tensor:
        return self.sde.timesteps

    @property
    def prior_std(self) -> torch.Tensor:
        """σ_p of the training sampler (the ODE starts from the same prior)."""
        return self.sde.prior_std

    def transition(
        self,
        denoised: torch.Tensor,
        step: int | torch.Tensor,
        sample: torch.Tensor,
        *,
        sampling: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.sde._step_size(step, sample)
        c = self.score_scale
        loc = sample + g * (c * self.prior_std.to(sample.dtype) * denoised + (1 - c) * sample)
        return loc, torch.full_like(loc, self.min_std)

    def extra_repr(self) -> str:
        return f"score_scale={self.score_scale}, min_std={self.min_std}"

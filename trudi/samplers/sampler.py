"""The sampler protocol shared by every trudi sampler.

A sampler turns a denoiser's output into one Gaussian transition of the reverse chain. It is
stateless: every call takes the (batched) chain step index ``step`` and the current sample
explicitly, so one sampler runs many chains at once and re-scores recorded chains inside a loss.

Chain step ``j`` (0 … K−1) maps ``chain[..., j, :]`` to ``chain[..., j + 1, :]``;
``chain[..., 0, :]`` is the prior sample x_K and ``chain[..., K, :]`` is x_0 (``docs/design.md``,
"Keys and shapes"). The
denoiser is queried at the *training* timestep :attr:`Sampler.timesteps` ``[j]``, which differs
from ``K − j`` when a sampler skips steps (DDIM with fewer steps than training).

Timestep convention: trudi indexes ᾱ from ᾱ_0 = 1 (no noise) and queries the denoiser at
k = K … 1 (step j at k = K − j); DPPO (and diffusers' DDPM) index from the first noisy level and
query at t = K − 1 … 0. The same noise level is k = t + 1, so a denoiser trained under one
convention needs its timestep input offset by one under the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from trudi.samplers.schedules import NoiseSchedule
from trudi.validation import check_choice

__all__ = ["Chain", "ConditionedDenoiser", "Denoise", "Sampler", "ScaleFn", "ScheduledSampler"]

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``denoise(sample [*N, A], timestep) -> output [*N, A]``; the timestep broadcasts to ``*N``."""

ScaleFn = Callable[[torch.Tensor, "int | torch.Tensor"], torch.Tensor]
"""``scale_fn(scale [*N, A], step) -> scale [*N, A]``: a hook to adjust each step's scale.

``step`` is an int when sampling and a long tensor ``[K, 1, …, 1]`` (broadcast to ``*N``) when a
recorded chain is re-scored."""

_PREDICTIONS = ("epsilon", "sample")


@dataclass(frozen=True)
class ConditionedDenoiser:
    """A denoiser network bound to an observation, called like any :data:`Denoise`.

    ``denoise(sample, timestep) = network(observation, sample, timestep)``; the network broadcasts
    the observation ``[*B, O]`` over extra leading dims of ``sample`` (candidates, chain steps).
    Samplers that score chains against the observation (best-of-K with a critic) read
    :attr:`observation` from it, so the sampler protocol needs no observation argument.
    """

    network: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    observation: torch.Tensor

    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.network(self.observation, sample, timestep)


class Chain(NamedTuple):
    """A sampled chain and its transitions.

    Attributes:
        chain: ``[*B, K + 1, A]``, x_K … x_0.
        loc: ``[*B, K, A]``, the mean of each transition.
        scale: ``[*B, K, A]``, the standard deviation of each transition.
    """

    chain: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor


class Sampler(nn.Module):
    """Base class of all samplers.

    Subclasses implement :meth:`transition` and expose ``num_steps`` (K), ``timesteps`` (``[K]``,
    the denoiser's training timestep of each chain step), ``min_std`` (the scale floor when
    sampling) and ``min_score_std`` (the floor when re-scoring). :meth:`step`,
    :meth:`sample_chain` (which runs :meth:`step` K times) and :meth:`rescore_chain` (teacher
    forcing, all K transitions in one denoiser call) follow from :meth:`transition`.

    ``state_independent_scale`` says that :meth:`transition`'s scale depends on the chain step
    only, never on the sample or the denoiser's output; a policy built on such a sampler can tell
    a loss that its scales are one function of the parameters at every observation
    (:attr:`~trudi.policies.ChainPolicy.state_independent_scale`). False here, True for every
    sampler in trudi; a subclass whose scale depends on the sample must leave it False.
    """

    num_steps: int
    timesteps: torch.Tensor
    min_std: float
    min_score_std: float
    state_independent_scale: bool = False

    def transition(
        self,
        denoised: torch.Tensor,
        step: int | torch.Tensor,
        sample: torch.Tensor,
        *,
        sampling: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian transition of chain step ``step`` from ``sample``.

        Args:
            denoised: the denoiser's output at ``sample``, ``[*N, A]``.
            step: chain step index in [0, K), an int or a long tensor broadcastable to ``*N``.
            sample: the current sample ``chain[..., step, :]``, ``[*N, A]``.
            sampling: floor the scale at ``min_std`` (sampling) instead of ``min_score_std``.

        Returns:
            ``(loc, scale)``, both ``[*N, A]``.
        """
        raise NotImplementedError

    def step(
        self,
        denoised: torch.Tensor,
        step: int | torch.Tensor,
        sample: torch.Tensor,
        noise: torch.Tensor | None = None,
        *,
        scale_fn: ScaleFn | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One sampling step: ``(loc, scale, next_sample)`` with ``next = loc + scale · noise``.

        The scale is floored at ``min_std`` and then passed through ``scale_fn``; ``noise``
        (``[*N, A]``, standard normal) is drawn when not given.
        """
        loc, scale = self.transition(denoised, step, sample, sampling=True)
        if scale_fn is not None:
            scale = scale_fn(scale, step)
        if noise is None:
            noise = torch.randn_like(loc)
        return loc, scale, loc + scale * noise

    def sample_chain(
        self,
        denoise: Denoise,
        prior: torch.Tensor,
        *,
        scale_fn: ScaleFn | None = None,
        generator: torch.Generator | None = None,
    ) -> Chain:
        """Run the whole chain from the prior sample x_K.

        Loops over the K steps only; every step is batched over ``*B``.

        Args:
            denoise: the denoiser, conditioned on the observation (a
                :class:`ConditionedDenoiser`, or any callable that broadcasts the observation over
                extra leading dimensions of ``sample``).
            prior: x_K, ``[*B, A]``.
            scale_fn: optional adjustment of each step's sampling scale (a learned factor).
            generator: random generator for the transition noise.

        Returns:
            the :class:`Chain`, ``chain`` ``[*B, K + 1, A]``, ``loc`` and ``scale`` ``[*B, K, A]``.
        """
        noise = torch.randn(
            (self.num_steps, *prior.shape),
            dtype=prior.dtype,
            device=prior.device,
            generator=generator,
        )
        sample = prior
        samples, locs, scales = [prior], [], []
        for j in range(self.num_steps):
            denoised = denoise(sample, self.timesteps[j])
            loc, scale, sample = self.step(denoised, j, sample, noise[j], scale_fn=scale_fn)
            samples.append(sample)
            locs.append(loc)
            scales.append(scale)
        return Chain(torch.stack(samples, -2), torch.stack(locs, -2), torch.stack(scales, -2))

    def rescore_chain(
        self, denoise: Denoise, chain: torch.Tensor, *, scale_fn: ScaleFn | None = None
    ) -> Chain:
        """Teacher forcing: the current transitions of a recorded chain, in one denoiser call.

        The K steps become a leading batch dimension of ``denoise``'s input (so the agent dim of
        per-agent networks stays second to last); scales are floored at ``min_score_std``, then
        passed through ``scale_fn`` with ``step`` a ``[K, 1, …, 1]`` tensor. With the sampling
        network, ``min_score_std == min_std`` and the same ``scale_fn``, it reproduces the
        ``loc``/``scale`` that :meth:`sample_chain` recorded.

        Args:
            denoise: the denoiser conditioned on the chains' observations ``[*B, O]``.
            chain: the recorded chain ``[*B, K + 1, A]``.
            scale_fn: the adjustment applied when sampling.

        Returns:
            ``Chain(chain, loc, scale)`` with the current ``loc``, ``scale`` ``[*B, K, A]``.
        """
        if chain.dim() < 2 or chain.shape[-2] != self.num_steps + 1:
            raise ValueError(
                f"chain must have shape [*B, K + 1, A] with K + 1 = {self.num_steps + 1}, got "
                f"{tuple(chain.shape)}."
            )
        samples = chain[..., :-1, :].movedim(-2, 0)
        step = torch.arange(self.num_steps, device=chain.device)
        step = step.view(-1, *([1] * (samples.dim() - 2)))
        denoised = denoise(samples, self.timesteps[step])
        loc, scale = self.transition(denoised, step, samples)
        if scale_fn is not None:
            scale = scale_fn(scale, step)
        return Chain(chain, loc.movedim(0, -2), scale.movedim(0, -2))


class ScheduledSampler(Sampler):
    """A sampler whose transitions are affine in (x0-estimate, sample) with tabulated coefficients.

    Transition j, from training timestep t = ``timesteps[j]`` to s = the next one (0 after the
    last), first estimates x0 from the denoiser's output (``prediction="epsilon"``:
    x0 = (x_t − sqrt(1 − ᾱ_t) ε)/sqrt(ᾱ_t); ``"sample"``: the output is x0), clamps it to
    ``[-clip_sample, clip_sample]``, then returns ``loc = a_j x0 + b_j x_t`` and ``scale = σ_j``
    floored at the minimum std. Subclasses give the path of timesteps and the coefficients.

    The coefficient tables are float64 buffers, cast at use to the dtype of ``sample``: a float64
    chain is float64-exact (its transitions equal the closed-form posterior to rounding), a float32
    one is float32-exact. ``module.float()`` / ``.half()`` cast the buffers like any module's and
    give that up for float64 inputs.

    Args:
        schedule: the noise schedule the denoiser is trained with.
        path: training timesteps visited, descending from T to 0, ``[K + 1]`` (long).
        prediction: ``"epsilon"`` or ``"sample"`` (x0).
        clip_sample: clamp range of the x0 estimate, or ``None`` for no clamp.
        min_std: scale floor when sampling (>= 0).
        min_score_std: scale floor when re-scoring; ``None`` uses ``min_std``, so that re-scoring
            a recorded chain reproduces its sampled log-probs.
    """

    state_independent_scale = True  # scale = the step's tabulated std, floored

    def __init__(
        self,
        schedule: NoiseSchedule,
        path: torch.Tensor,
        *,
        prediction: str,
        clip_sample: float | None,
        min_std: float,
        min_score_std: float | None,
    ) -> None:
        super().__init__()
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}.")
        check_choice("prediction", prediction, _PREDICTIONS)
        if clip_sample is not None and not clip_sample > 0:
            raise ValueError(f"clip_sample must be > 0 or None, got {clip_sample!r}.")
        if not min_std >= 0:
            raise ValueError(f"min_std must be >= 0, got {min_std!r}.")
        if min_score_std is None:
            min_score_std = min_std
        if not min_score_std >= 0:
            raise ValueError(f"min_score_std must be >= 0 or None, got {min_score_std!r}.")
        self.schedule = schedule
        self.prediction = prediction
        self.clip_sample = clip_sample
        self.min_std = float(min_std)
        self.min_score_std = float(min_score_std)
        self.num_steps = len(path) - 1

        alphas_cumprod = schedule.alphas_cumprod()
        ab_t, ab_s = alphas_cumprod[path[:-1]], alphas_cumprod[path[1:]]
        coef_x0, coef_sample, std = self._coefficients(ab_t, ab_s)
        # float64 tables, cast at use: at ᾱ ≈ 1e-3 an ε-to-x0 conversion amplifies their rounding
        # ~30x, so float32 tables would cost a float64 chain ~3e-5.
        tables = {
            "timesteps": path[:-1].long(),
            "sqrt_ab": ab_t.sqrt(),
            "sqrt_one_minus_ab": (1.0 - ab_t).sqrt(),
            "coef_x0": coef_x0,
            "coef_sample": coef_sample,
            "std": std,
        }
        for name, table in tables.items():
            self.register_buffer(name, table, persistent=False)

    def _coefficients(
        self, ab_t: torch.Tensor, ab_s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a, b, σ)`` per step from ᾱ at the current (t) and next (s) timesteps, ``[K]``."""
        raise NotImplementedError

    def transition(
        self,
        denoised: torch.Tensor,
        step: int | torch.Tensor,
        sample: torch.Tensor,
        *,
        sampling: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        def at_step(table: torch.Tensor) -> torch.Tensor:
            return table[step].to(sample.dtype).unsqueeze(-1)

        if self.prediction == "epsilon":
            x0 = (sample - at_step(self.sqrt_one_minus_ab) * denoised) / at_step(self.sqrt_ab)
        else:
            x0 = denoised
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        loc = at_step(self.coef_x0) * x0 + at_step(self.coef_sample) * sample
        floor = self.min_std if sampling else self.min_score_std
        scale = at_step(self.std).clamp_min(floor).expand_as(loc)
        return loc, scale

    def extra_repr(self) -> str:
        return (
            f"schedule={self.schedule}, num_steps={self.num_steps}, "
            f"prediction={self.prediction!r}, clip_sample={self.clip_sample}, "
            f"min_std={self.min_std}, min_score_std={self.min_score_std}"
        )

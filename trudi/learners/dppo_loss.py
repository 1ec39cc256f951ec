"""DPPO (Ren et al. 2024): a clipped PPO ratio per denoising step, as in the authors' code.

What is taken from the authors' code (irom-princeton/dppo, ``model/diffusion/diffusion_ppo.py``,
``model/diffusion/diffusion_vpg.py``, ``agent/finetune/train_ppo_diffusion_agent.py``) and what is
left out, with reasons, is listed in ``docs/dppo.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import dispatch

from trudi.learners.chain_loss import ChainLoss
from trudi.policies import ChainNormal, FineTunedDenoiser
from trudi.samplers import normal_log_prob
from trudi.validation import check_choice, check_int

__all__ = ["DPPOLoss", "exponential_clip_schedule"]

_RATIOS = ("clamped_mean", "joint")


def exponential_clip_schedule(
    first: float, last: float, num_steps: int, rate: float = 3.0
) -> list[float]:
    """Per-step clip ε rising exponentially from ``first`` to ``last`` over ``num_steps`` steps.

    DPPO's schedule over its fine-tuned denoising steps i = 0 … n−1 (i = 0 the noisiest):
    ε_i = first + (last − first)(exp(rate·i/(n−1)) − 1)/(exp(rate) − 1), DPPO's
    ``clip_ploss_coef_base`` (first), ``clip_ploss_coef`` (last) and ``clip_ploss_coef_rate``.
    One step gets ``last`` (DPPO's code divides by n − 1 = 0 there).

    Example:
        >>> [round(e, 3) for e in exponential_clip_schedule(0.01, 0.1, 3)]
        [0.01, 0.026, 0.1]
    """
    check_int("num_steps", num_steps)
    if num_steps == 1:
        return [last]
    fractions = [
        (math.exp(rate * k / (num_steps - 1)) - 1) / (math.exp(rate) - 1) for k in range(num_steps)
    ]
    return [first + (last - first) * f for f in fractions]


class DPPOLoss(ChainLoss):
    """DPPO's loss as a TorchRL ``LossModule``: each (environment step, denoising step) pair is
    one PPO sample.

    Only the last ``ft_denoising_steps`` (n) of the K transitions are fine-tuned; the earlier ones
    are left out of the loss (with :class:`~trudi.policies.FineTunedDenoiser` they come from a
    frozen copy of the denoiser, as in DPPO). For fine-tuned step i = 0 … n−1 (chain step
    j = K − n + i, ``chain[..., j, :] → chain[..., j+1, :]``), with ``ratio="clamped_mean"``
    (DPPO's code):

    .. math::  ℓ_i = \\frac{1}{A} Σ_a \\mathrm{clamp}(\\log N(x_{j+1,a}; μ_{j,a}, σ_{j,a}^2),
               ℓ_{min}, ℓ_{max}),\\quad r_i = \\exp(ℓ_i^θ − ℓ_i^{old}),

    .. math::  L = -\\frac{1}{n} Σ_i \\min(r_i Â_i, \\mathrm{clip}(r_i, 1 − ε_i, 1 + ε_i) Â_i),
               \\quad Â_i = γ_d^{\\,n-1-i} Â,

    with Â the (normalised) advantage of the environment step, ε_i a per-step clip (e.g.
    :func:`exponential_clip_schedule`) and γ_d the denoising discount. The behaviour's ℓ^old is
    computed from the stored ``loc``/``scale`` (the clamp needs per-dimension log-probs, which the
    summed ``chain_log_prob`` does not hold). ``ratio="joint"`` is trudi's earlier variant: ℓ_i
    is the transition's joint log-prob, summed over A and unclamped (read from
    ``chain_log_prob``), so its ratio is the product of the per-dimension ratios. With a Gaussian
    policy (K = 1), ``ratio="joint"`` and γ_d = 1 it is TorchRL's ``ClipPPOLoss`` objective.

    Output: ``loss_objective``, ``loss_entropy`` (entropy of the fine-tuned transitions),
    ``loss_critic`` and detached ``clip_fraction``, ``kl_approx`` (DPPO's k3 estimate
    mean(r − 1 − log r) over the pairs), ``ratio_mean``, ``explained_variance``, ``entropy``.

    Args:
        actor_network: a chain policy (``DiffusionPolicy`` or ``GaussianPolicy``).
        critic_network: ``V(s)``, writing ``state_value``.
        clip_epsilon: ε for every fine-tuned step (float) or one per fine-tuned step, noisiest
            first (a sequence of length n).
        denoising_discount: γ_d in (0, 1].
        ft_denoising_steps: n in [1, K], the fine-tuned (last) steps; ``None``: the policy
            denoiser's own count if it is a :class:`~trudi.policies.FineTunedDenoiser`, else K.
        ratio: ``"clamped_mean"`` (DPPO's) or ``"joint"``.
        log_prob_clamp: (ℓ_min, ℓ_max) for ``"clamped_mean"``; DPPO's (−5, 2).
        **ppo_kwargs: any keyword of :class:`torchrl.objectives.PPOLoss`. Defaults differ from
            ``PPOLoss``'s where DPPO's do: ``normalize_advantage=True``, ``entropy_coeff=0``,
            ``loss_critic_type="l2"`` and ``critic_coeff=0.25`` (DPPO's ``vf_coef`` 0.5 times its
            0.5·MSE).

    Example:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import InteractionType, TensorDictModule, set_interaction_type
        >>> from trudi.learners import DPPOLoss
        >>> from trudi.policies import DenoiserMLP, DiffusionPolicy
        >>> from trudi.samplers import AncestralSampler, CosineSchedule
        >>> denoiser = DenoiserMLP(observation_dim=3, action_dim=2, num_steps=4, hidden_dim=32)
        >>> policy = DiffusionPolicy(denoiser, AncestralSampler(CosineSchedule(4), min_std=0.1))
        >>> critic = TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["state_value"])
        >>> loss = DPPOLoss(policy, critic, clip_epsilon=0.1, ft_denoising_steps=2)
        >>> with set_interaction_type(InteractionType.RANDOM):
        ...     td = policy(TensorDict({"observation": torch.randn(8, 3)}, [8]))
        >>> td["advantage"], td["value_target"] = torch.randn(8, 1), torch.randn(8, 1)
        >>> out = loss(td)
        >>> sorted(k for k in out.keys() if k.startswith("loss_"))
        ['loss_critic', 'loss_entropy', 'loss_objective']
    """

    def __init__(
        self,
        actor_network,
        critic_network=None,
        *,
        clip_epsilon: float | Sequence[float] = 0.1,
        denoising_discount: float = 1.0,
        ft_denoising_steps: int | None = None,
        ratio: str = "clamped_mean",
        log_prob_clamp: tuple[float, float] = (-5.0, 2.0),
        **ppo_kwargs,
    ) -> None:
        for name, value in (
            ("normalize_advantage", True),
            ("entropy_coeff", 0.0),
            ("loss_critic_type", "l2"),
            ("critic_coeff", 0.25),
        ):
            ppo_kwargs.setdefault(name, value)
        super().__init__(actor_network, critic_network, **ppo_kwargs)
        num_steps = getattr(actor_network, "num_steps", None)
        if not isinstance(num_steps, int):
            raise ValueError("actor_network must expose num_steps (K), the chain length")
        check_choice("ratio", ratio, _RATIOS)
        self.ratio = ratio
        self.ft_denoising_steps = _fine_tuned_steps(actor_network, num_steps, ft_denoising_steps)
        steps = self.ft_denoising_steps
        epsilon = torch.as_tensor(clip_epsilon, dtype=torch.float32).flatten()
        if epsilon.numel() == 1:
            epsilon = epsilon.expand(steps).clone()
        if epsilon.numel() != steps or not bool((epsilon > 0).all()):
            raise ValueError(
                f"clip_epsilon must be a float > 0 or {steps} floats > 0 (one per fine-tuned "
                f"step, ft_denoising_steps={steps}), got {clip_epsilon!r}"
            )
        if not 0 < denoising_discount <= 1:
            raise ValueError(f"denoising_discount must be in (0, 1], got {denoising_discount!r}")
        low, high = log_prob_clamp
        if not low < high:
            raise ValueError(
                f"log_prob_clamp must be (low, high) with low < high, got {log_prob_clamp!r}"
            )
        self.log_prob_clamp = (float(low), float(high))
        self.register_buffer("clip_epsilon", epsilon)
        exponents = torch.arange(steps - 1, -1, -1, dtype=torch.float32)
        self.register_buffer("step_discount", denoising_discount**exponents)

    def _step_log_probs(
        self, tensordict: TensorDictBase, current: ChainNormal
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Current and behaviour log-probs of the fine-tuned steps, ``[*B, n]`` each."""
        first = current.num_steps - self.ft_denoising_steps
        chain = self._read(tensordict, "chain")
        target = chain[..., first + 1 :, :]
        new = normal_log_prob(target, current.loc[..., first:, :], current.scale[..., first:, :])
        if self.ratio == "joint":
            return new.sum(-1), self._read(tensordict, "chain_log_prob")[..., first:]
        old_loc = self._read(tensordict, "loc")[..., first:, :]
        old_scale = self._read(tensordict, "scale")[..., first:, :]
        old = normal_log_prob(target, old_loc, old_scale)
        low, high = self.log_prob_clamp
        return new.clamp(low, high).mean(-1), old.clamp(low, high).mean(-1)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict = tensordict.clone(False)
        advantage = self._advantage(tensordict)
        current = self._current_transitions(tensordict)
        new_log_prob, old_log_prob = self._step_log_probs(tensordict, current)
        log_ratio = new_log_prob - old_log_prob
        advantage = self._broadcast(advantage, log_ratio[..., :1]) * self.step_discount
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1 - self.clip_epsilon, 1 + self.clip_epsilon)
        surrogate = torch.minimum(ratio * advantage, clipped * advantage)
        losses = {"loss_objective": -surrogate.mean(-1, keepdim=True)}
        diagnostics = {
            "clip_fraction": ((ratio - 1).abs() > self.clip_epsilon).float().mean(),
            "kl_approx": ((ratio - 1) - log_ratio).mean(),
            "ratio_mean": ratio.mean(),
        }
        first = current.num_steps - self.ft_denoising_steps
        tuned = ChainNormal(
            current.loc[..., first:, :], current.scale[..., first:, :], validate_args=False
        )
        entropy = tuned.entropy().sum(-1, keepdim=True)
        return self._finish(tensordict, losses, entropy, diagnostics)

    def extra_repr(self) -> str:
        return (
            f"ratio={self.ratio!r}, ft_denoising_steps={self.ft_denoising_steps}, "
            f"log_prob_clamp={self.log_prob_clamp}"
        )


def _fine_tuned_steps(actor_network, num_steps: int, requested: int | None) -> int:
    """n: ``requested``, or the denoiser's own count, or K; checked against both."""
    denoiser = getattr(actor_network, "denoiser", None)
    own = denoiser.ft_denoising_steps if isinstance(denoiser, FineTunedDenoiser) else None
    if requested is None:
        return own if own is not None else num_steps
    check_int("ft_denoising_steps", requested)
    if requested > num_steps:
        raise ValueError(
            f"ft_denoising_steps must be in [1, K] with K = {num_steps} (the policy's chain "
            f"length), got {requested}"
        )
    if own is not None and own != requested:
        raise ValueError(
            f"ft_denoising_steps={requested} disagrees with the policy's FineTunedDenoiser, which "
            f"fine-tunes {own} steps; pass ft_denoising_steps=None or {own}"
        )
    return requested

"""Pathwise TruDi (docs/pathwise.md): REPPO's learner with a diffusion actor and a trajectory trust region.

The actor follows the pathwise gradient of α log π̂(a|s) − Q(s, a) through a reparameterised chain;
the trust region is either the paper's gate with a dual (``"split"``) or trudi's projection of the
chain's Gaussian transitions (``"projection"``). The Q critic is an HL-Gauss histogram trained on
soft λ-returns, plus REPPO's auxiliary next-embedding loss.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.objectives import LossModule, ValueEstimators

from trudi.constraints import TrajectoryKLProjection, exact_trajectory_kl, gaussian_kl
from trudi.learners.pathwise_projection import projected_rsample
from trudi.learners.q_critic import QCritic
from trudi.learners.soft_lambda_return import SoftLambdaReturn
from trudi.policies import ChainKeys, ChainPolicy, has_pseudo_log_prob, pseudo_log_prob
from trudi.samplers import transition_log_prob
from trudi.validation import read_key

__all__ = ["TruDiPathwiseLoss"]

_TRUST_REGIONS = ("split", "projection")
_REDUCTIONS = ("mean", "sum", "none")
_POLICY_KEYS = ("observation", "action", "chain", "loc", "scale", "chain_log_prob")
# The chain keys are declared once, by the policy's ChainKeys; the loss copies the actor's.
_DEFAULT_KEYS = ChainKeys()
_ESTIMATOR_KEYS = ("observation", "value", "value_target", "reward", "done", "terminated")


class TruDiPathwiseLoss(LossModule):
    """Pathwise TruDi as a TorchRL ``LossModule`` (docs/pathwise.md).

    Per sample (state s with a chain τ recorded by the behaviour policy):

    - ``a = squash(x_0)`` from :meth:`~trudi.policies.ChainPolicy.rsample` with the *recorded*
      noise ξ (:meth:`~trudi.policies.ChainPolicy.chain_noise`): at the behaviour parameters the
      pathwise chain is the recorded one, and ξ ~ N(0, I) as for a fresh draw;
    - ``c(s) = KL(p_old(τ|s) ‖ p_θ(τ|s))``, exact on the recorded chain: the new network
      teacher-forced on it (``get_dist``) against the recorded transitions;
    - ``loss_objective``: ``"split"``: ``where(c(s) ≤ ε, α log π̂(a|s) − Q(s, a), λ c(s))``;
      ``"projection"``: ``α log π̂ − Q`` with a drawn through projected transitions, plus
      ``loss_trust_region`` = coeff · Σ_k KL(p_θ,k ‖ sg(p̃_k)) pulling the network onto them;
    - ``loss_critic``: HL-Gauss cross-entropy to ``value_target`` at the recorded action, plus
      ``embedding_coeff`` · MSE of the predicted next embedding (REPPO's auxiliary loss);
    - ``loss_temperature`` = −log α · sg(log π̂ + H̄) and, for ``"split"``, ``loss_lagrange`` =
      −log λ · sg(c(s) − ε): gradient descent on them *is* dual ascent (as TorchRL's SAC alpha
      loss), so one optimiser over ``loss.parameters()`` trains networks and duals together.

    Q in ``loss_objective`` is evaluated with detached critic parameters, so actor and critic
    losses touch disjoint parameters. log π̂ is :func:`~trudi.policies.pseudo_log_prob`, the
    ELBO-style pseudo log-density (exact for a one-step Gaussian chain). Value targets come from
    :class:`~trudi.learners.SoftLambdaReturn` (``make_value_estimator``): run it on the ``[*B, T]``
    rollout before cutting minibatches; the loss runs it itself on a batch without targets, whose
    last batch dim is then taken as time.

    Projection mode (``projection.mode``) needs the *old* policy at states the behaviour chain never
    visited, so the loss keeps a frozen copy of the actor: call :meth:`sync_old_policy` once after
    each collection (REPPO hard-syncs its old actor once per update). ``"per_step"``: every
    transition is projected while the chain is drawn, against the old network at the same state.
    ``"trajectory"``: the chain is drawn unprojected, the old network is teacher-forced on it, all
    K transitions are projected with one multiplier, and the chain is re-derived from the projected
    transitions with the same noise.

    Args:
        actor_network: a :class:`~trudi.policies.ChainPolicy` with a pseudo log-density (a
            Gaussian policy, or a diffusion policy on an Euler–Maruyama or scheduled sampler);
            use ``squash="tanh"`` so that Q's gradient reaches saturated actions.
        critic_network: the :class:`~trudi.learners.QCritic`.
        trust_region: ``"split"`` or ``"projection"``.
        kl_bound: ε of the gate (``"split"``; REPPO and TruDi: 0.1).
        projection: the layer for ``"projection"``; default: ``TrajectoryKLProjection(ε/2, ε/2)``.
        trust_region_coeff: weight of ``loss_trust_region`` (``"projection"``).
        init_temperature, init_lagrange: initial α and λ (REPPO: 0.01 each).
        target_entropy: H̄; ``None`` is REPPO's −0.5 · A.
        embedding_coeff: weight of the next-embedding loss (REPPO: 1.0); ``0`` switches it off
            (needed when the critic has no next-embedding head).
        gamma, lmbda: the soft λ-return's γ and λ (REPPO: 0.99, 0.95).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import InteractionType, set_interaction_type
        >>> from trudi.learners import HLGaussHead, QCritic, TruDiPathwiseLoss
        >>> from trudi.policies import DenoiserMLP, DiffusionPolicy
        >>> from trudi.samplers import EulerMaruyamaSampler
        >>> denoiser = DenoiserMLP(3, 2, num_steps=8, hidden_dim=32)
        >>> policy = DiffusionPolicy(denoiser, EulerMaruyamaSampler(8), squash="tanh")
        >>> critic = QCritic(3, 2, HLGaussHead(-10.0, 10.0), hidden_dim=32)
        >>> loss = TruDiPathwiseLoss(policy, critic, trust_region="split")
        >>> with set_interaction_type(InteractionType.RANDOM):
        ...     td = policy(TensorDict({"observation": torch.randn(4, 5, 3)}, [4, 5]))
        >>> td["next"] = TensorDict({"observation": torch.randn(4, 5, 3),
        ...     "reward": torch.randn(4, 5, 1), "done": torch.zeros(4, 5, 1, dtype=torch.bool),
        ...     "terminated": torch.zeros(4, 5, 1, dtype=torch.bool)}, [4, 5])
        >>> out = loss(td)
        >>> sorted(k for k in out.keys() if k.startswith("loss_"))
        ['loss_critic', 'loss_lagrange', 'loss_objective', 'loss_temperature']
    """

    @dataclass
    class _AcceptedKeys:
        """Tensordict keys; rename with :meth:`set_keys` (the policy's own names are the default).

        Attributes:
            observation, action: the policy input and the recorded (squashed) action.
            chain, loc, scale, chain_log_prob: the recorded behaviour chain (the keys the policy writes).
            value_target: the soft λ-return G ``[*B, 1]``.
            next_embedding: the next-embedding target ``[*B, H]``.
            value, reward, done, terminated: forwarded to the value estimator.
            advantage: not read by this loss (its critic is Q); accepted so that every trudi
                loss renames the same keys.
        """

        observation: NestedKey = _DEFAULT_KEYS.observation
        action: NestedKey = _DEFAULT_KEYS.action
        chain: NestedKey = _DEFAULT_KEYS.chain
        loc: NestedKey = _DEFAULT_KEYS.loc
        scale: NestedKey = _DEFAULT_KEYS.scale
        chain_log_prob: NestedKey = _DEFAULT_KEYS.chain_log_prob
        value_target: NestedKey = "value_target"
        next_embedding: NestedKey = "next_embedding"
        value: NestedKey = "state_value"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"
        advantage: NestedKey = "advantage"

    default_keys = _AcceptedKeys
    default_value_estimator = ValueEstimators.TDLambda
    tensor_keys: _AcceptedKeys

    def __init__(
        self,
        actor_network: ChainPolicy,
        critic_network: QCritic,
        *,
        trust_region: str = "split",
        kl_bound: float = 0.1,
        projection: TrajectoryKLProjection | None = None,
        trust_region_coeff: float = 1.0,
        init_temperature: float = 0.01,
        init_lagrange: float = 0.01,
        target_entropy: float | None = None,
        embedding_coeff: float = 1.0,
        gamma: float = 0.99,
        lmbda: float = 0.95,
        reduction: str = "mean",
    ) -> None:
        if not isinstance(actor_network, ChainPolicy) or not has_pseudo_log_prob(actor_network):
            raise ValueError(
                "actor_network must be a trudi ChainPolicy with a pseudo log-density (a "
                "GaussianPolicy, or a DiffusionPolicy on an EulerMaruyamaSampler or a "
                f"ScheduledSampler), got {type(actor_network).__name__}."
            )
        if not isinstance(critic_network, QCritic):
            raise ValueError(
                f"critic_network must be a trudi QCritic, got {type(critic_network).__name__}."
            )
        if trust_region not in _TRUST_REGIONS:
            raise ValueError(f"trust_region must be one of {_TRUST_REGIONS}, got {trust_region!r}.")
        if not kl_bound > 0:
            raise ValueError(f"kl_bound must be > 0, got {kl_bound!r}.")
        if projection is not None and not isinstance(projection, TrajectoryKLProjection):
            raise ValueError(
                f"projection must be a TrajectoryKLProjection, got {type(projection).__name__}."
            )
        if projection is not None and trust_region == "split":
            raise ValueError("projection is only used with trust_region='projection'.")
        for name, value in (
            ("init_temperature", init_temperature),
            ("init_lagrange", init_lagrange),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}.")
        if not embedding_coeff >= 0:
            raise ValueError(f"embedding_coeff must be >= 0, got {embedding_coeff!r}.")
        if embedding_coeff > 0 and critic_network.predictor is None:
            raise ValueError(
                "embedding_coeff > 0 needs a critic with a next-embedding head "
                "(QCritic(next_embedding=True)); pass embedding_coeff=0 otherwise."
            )
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}.")
        super().__init__()
        self.actor_network = actor_network
        self.critic_network = critic_network
        self.trust_region = trust_region
        self.reduction = reduction
        self.gamma, self.lmbda = float(gamma), float(lmbda)
        self.register_buffer("kl_bound", torch.tensor(float(kl_bound)))
        self.register_buffer("trust_region_coeff", torch.tensor(float(trust_region_coeff)))
        self.register_buffer("embedding_coeff", torch.tensor(float(embedding_coeff)))
        # A Python flag, so that forward never reads a tensor on the host.
        self._embedding_loss = embedding_coeff > 0
        if target_entropy is None:
            target_entropy = -0.5 * actor_network.action_dim
        self.register_buffer("target_entropy", torch.tensor(float(target_entropy)))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(init_temperature)))
        if trust_region == "split":
            self.log_lagrange = nn.Parameter(torch.tensor(math.log(init_lagrange)))
            self.projection = None
            self.old_actor_network = None
        else:
            self.projection = projection or TrajectoryKLProjection(kl_bound / 2, kl_bound / 2)
            self.old_actor_network = copy.deepcopy(actor_network).requires_grad_(False)
        policy_keys = actor_network.tensor_keys
        self.set_keys(**{name: getattr(policy_keys, name) for name in _POLICY_KEYS})

    # -- duals ---------------------------------------------------------------------------------

    @property
    def temperature(self) -> torch.Tensor:
        """α, the entropy temperature."""
        return self.log_temperature.exp()

    @property
    def lagrange(self) -> torch.Tensor | None:
        """λ, the trust-region dual of ``"split"`` mode (``None`` otherwise)."""
        return self.log_lagrange.exp() if self.trust_region == "split" else None

    @torch.no_grad()
    def sync_old_policy(self) -> None:
        """Copy the actor's parameters into the old policy (projection mode; after collecting)."""
        if self.old_actor_network is not None:
            self.old_actor_network.load_state_dict(self.actor_network.state_dict())

    # -- keys and value estimator --------------------------------------------------------------

    @property
    def in_keys(self) -> list[NestedKey]:
        keys = self.tensor_keys
        return [
            keys.observation,
            keys.action,
            keys.chain,
            keys.loc,
            keys.scale,
            keys.chain_log_prob,
            keys.value_target,
            *(self.value_estimator.in_keys),
        ]

    @property
    def out_keys(self) -> list[str]:
        names = ["loss_objective", "loss_critic", "loss_temperature"]
        names.append("loss_lagrange" if self.trust_region == "split" else "loss_trust_region")
        return names

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        estimator = getattr(self, "_value_estimator", None)
        if estimator is not None:
            keys = {name: getattr(self.tensor_keys, name) for name in _ESTIMATOR_KEYS}
            estimator.set_keys(**keys, next_embedding=self.tensor_keys.next_embedding)

    def make_value_estimator(self, value_type: ValueEstimators | None = None, **hyperparams):
        """``ValueEstimators.TDLambda`` (the default) is the :class:`SoftLambdaReturn`.

        Hyperparameters: ``gamma`` and ``lmbda`` (default: the loss's). Other estimator types and
        instances go to :meth:`torchrl.objectives.LossModule.make_value_estimator`.
        """
        value_type = self.default_value_estimator if value_type is None else value_type
        if value_type != ValueEstimators.TDLambda:
            return super().make_value_estimator(value_type, **hyperparams)
        hyperparams.pop("device", None)
        hyperparams = {"gamma": self.gamma, "lmbda": self.lmbda, **hyperparams}
        self._value_estimator = SoftLambdaReturn(
            actor_network=self.actor_network,
            critic_network=self.critic_network,
            temperature=lambda: self.temperature,
            **hyperparams,
        )
        self.value_type = value_type
        self._forward_value_estimator_keys()
        return self

    # -- the loss ------------------------------------------------------------------------------

    def _read(self, tensordict: TensorDictBase, name: str) -> torch.Tensor:
        return read_key(
            tensordict,
            getattr(self.tensor_keys, name),
            name,
            reader="loss",
            source="the policy or the value estimator writes it",
            stored=True,
        )

    def _reduce(self, loss: torch.Tensor) -> torch.Tensor:
        """``[*B, 1]`` → ``[*B]`` (``"none"``) or a scalar."""
        if self.reduction == "none":
            return loss.squeeze(-1)
        return loss.mean() if self.reduction == "mean" else loss.sum()

    def _q_value(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q(s, a) with detached critic parameters: the actor's gradient flows only through a."""
        params = {name: p.detach() for name, p in self.critic_network.named_parameters()}
        return torch.func.functional_call(self.critic_network, params, (observation, action)).value

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tensordict = tensordict.clone(False)
        keys = self.tensor_keys
        needs_embedding = self._embedding_loss
        if tensordict.get(keys.value_target, None) is None or (
            needs_embedding and tensordict.get(keys.next_embedding, None) is None
        ):
            self.value_estimator(tensordict)
        observation = self._read(tensordict, "observation")
        action = self._read(tensordict, "action")
        chain = self._read(tensordict, "chain")
        old_loc, old_scale = self._read(tensordict, "loc"), self._read(tensordict, "scale")
        behaviour_log_prob = self._read(tensordict, "chain_log_prob")
        value_target = self._read(tensordict, "value_target")

        # Critic: HL-Gauss cross-entropy at the recorded action, plus the next-embedding loss.
        q = self.critic_network(observation, action)
        loss_critic = self.critic_network.head.loss(q.logits, value_target)
        diagnostics = {}
        if needs_embedding:
            target = self._read(tensordict, "next_embedding")
            error = (q.predicted_next - target).square().mean(-1, keepdim=True)
            loss_critic = loss_critic + self.embedding_coeff * error
            diagnostics["embedding_error"] = error.mean()

        # c(s): the new network teacher-forced on the recorded chain, exact KL(old ‖ new).
        current = self.actor_network.get_dist(tensordict)
        kl = exact_trajectory_kl(old_loc, old_scale, current.loc, current.scale).unsqueeze(-1)
        log_ratio = transition_log_prob(chain, current.loc, current.scale) - behaviour_log_prob
        diagnostics["log_ratio_mean"] = log_ratio.sum(-1).mean()

        # The pathwise action, with the recorded noise.
        noise = self.actor_network.chain_noise(chain, old_loc, old_scale)
        losses = {}
        if self.trust_region == "split":
            pathwise = self.actor_network.rsample(observation, noise)
        else:
            pathwise, loc, scale, projection_metrics = projected_rsample(
                self.actor_network,
                self.old_actor_network,
                self.projection,
                observation,
                noise,
                recorded=(current.loc, current.scale, old_loc, old_scale),
            )
            target_loc, target_scale = pathwise.loc.detach(), pathwise.scale.detach()
            pull_mean, pull_cov = gaussian_kl(loc, scale, target_loc, target_scale)
            losses["loss_trust_region"] = self.trust_region_coeff * (pull_mean + pull_cov).sum(
                -1, keepdim=True
            )
            diagnostics.update(projection_metrics)
        new_action = self.actor_network.squash(pathwise.chain[..., -1, :])
        log_prob = pseudo_log_prob(self.actor_network, *pathwise).unsqueeze(-1)
        q_new = self._q_value(observation, new_action)
        objective = self.temperature.detach() * log_prob - q_new
        if self.trust_region == "split":
            inside = kl <= self.kl_bound
            losses["loss_objective"] = torch.where(inside, objective, self.lagrange.detach() * kl)
            losses["loss_lagrange"] = -self.log_lagrange * (kl - self.kl_bound).detach()
            diagnostics["frac_gated"] = (~inside).float().mean()
            diagnostics["lagrange"] = self.lagrange
        else:
            losses["loss_objective"] = objective
        losses["loss_temperature"] = (
            -self.log_temperature * (log_prob + self.target_entropy).detach()
        )
        losses["loss_critic"] = loss_critic

        diagnostics.update(
            {
                "kl_trajectory": kl.mean(),
                "kl_trajectory_max": kl.max(),
                "entropy_estimate": -log_prob.mean(),
                "temperature": self.temperature,
                "q_mean": q_new.mean(),
                "value_target_mean": value_target.mean(),
                "explained_variance": 1
                - (value_target - q.value).var() / value_target.var().clamp_min(1e-8),
            }
        )
        out = TensorDict({name: self._reduce(value) for name, value in losses.items()})
        for name, value in diagnostics.items():
            out.set(name, value.detach())
        return out

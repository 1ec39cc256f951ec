"""Build the policy, critic and loss of the training example from its Hydra config.

Every choice here is a plain constructor call of the library (``trudi``) or of TorchRL, so a reader
can copy the few lines they need into their own code.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from tensordict.nn import TensorDictModule
from torchrl.envs import EnvBase
from torchrl.modules import MLP
from torchrl.objectives import ClipPPOLoss, LossModule
from torchrl.objectives.value import GAE, ValueEstimatorBase

from trudi.constraints import TrajectoryKLProjection
from trudi.learners import (
    DPPOLoss,
    HLGaussHead,
    QCritic,
    REPPOLoss,
    TruDiLoss,
    TruDiPathwiseLoss,
    exponential_clip_schedule,
)
from trudi.policies import (
    ChainPolicy,
    DenoiserMLP,
    DiffusionPolicy,
    FineTunedDenoiser,
    GaussianPolicy,
)
from trudi.samplers import (
    AncestralSampler,
    CosineSchedule,
    DDIMSampler,
    EulerMaruyamaSampler,
    LinearSchedule,
    Sampler,
    SigmoidSchedule,
)

__all__ = [
    "build_critic",
    "build_denoiser",
    "build_loss",
    "build_optimizer",
    "build_policy",
    "build_samplers",
    "build_value_estimator",
]

# The pathwise arms: a Q(s, a) critic on soft lambda-returns instead of V(s) on GAE.
_PATHWISE = ("trudi_pathwise", "reppo")

_SCHEDULES = {"cosine": CosineSchedule, "linear": LinearSchedule, "sigmoid": SigmoidSchedule}
_ACTIVATIONS = {
    "silu": torch.nn.SiLU,
    "mish": torch.nn.Mish,
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
}


def _choice(name: str, value: str, options: dict):
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return options[value]


def _dims(env: EnvBase) -> tuple[int, int]:
    return env.observation_spec["observation"].shape[-1], env.action_spec.shape[-1]


def build_policy(cfg: DictConfig, env: EnvBase) -> ChainPolicy:
    """``cfg.policy`` (diffusion or gaussian) with ``cfg.sampler`` for the diffusion head."""
    obs_dim, action_dim = _dims(env)
    p = cfg.policy
    if p.type == "gaussian":
        loc_net = MLP(
            in_features=obs_dim,
            out_features=action_dim,
            num_cells=[p.hidden_dim] * p.num_layers,
            activation_class=torch.nn.Tanh,
        )
        return GaussianPolicy(
            loc_net,
            action_dim,
            action_spec=env.action_spec,
            squash=p.squash,
            init_std=p.init_std,
            min_std=p.min_std,
            max_std=p.max_std,
            validate_args=False,  # the check syncs the host on every get_dist in the update
            # TorchRL's ClipPPOLoss scores whole chains ([*B]); trudi's losses score steps.
            trajectory=cfg.algo.loss == "clip_ppo",
        )
    if p.type != "diffusion":
        raise ValueError(f"policy.type must be 'diffusion' or 'gaussian', got {p.type!r}")
    sampler, eval_sampler = build_samplers(cfg)
    denoiser = build_denoiser(cfg, obs_dim, action_dim)
    ft_steps = cfg.algo.get("ft_denoising_steps") if cfg.algo.loss == "dppo" else None
    if ft_steps is not None and ft_steps < p.num_steps:
        # DPPO: the earlier steps keep a frozen copy of the (here untrained) denoiser.
        denoiser = FineTunedDenoiser(denoiser, sampler, ft_steps)
    return DiffusionPolicy(
        denoiser,
        sampler,
        eval_sampler,
        action_spec=env.action_spec,
        squash=p.squash,
        learn_scale=p.learn_scale,
        min_std=p.min_std,
        max_std=p.max_std,
        autocast=None if p.autocast is None else getattr(torch, p.autocast),
        validate_args=False,  # the check syncs the host on every get_dist in the update
    )


def build_denoiser(
    cfg: DictConfig, obs_dim: int, action_dim: int, n_agents: int | None = None
) -> DenoiserMLP:
    """The ``cfg.policy`` denoiser; ``n_agents``: per-agent weights (``None``: shared)."""
    p = cfg.policy
    return DenoiserMLP(
        obs_dim,
        action_dim,
        p.num_steps,
        hidden_dim=p.hidden_dim,
        num_blocks=p.num_blocks,
        layer_norm=p.layer_norm,
        activation=_choice("policy.activation", p.activation, _ACTIVATIONS),
        n_agents=n_agents,
    )


def build_samplers(cfg: DictConfig) -> tuple[Sampler, Sampler]:
    """``(training sampler, evaluation sampler)`` of ``cfg.sampler`` over ``cfg.policy.num_steps``:
    the probability-flow ODE of the training sampler for evaluation."""
    p = cfg.policy
    s = cfg.sampler
    if s.type == "euler_maruyama":
        sampler = EulerMaruyamaSampler(
            p.num_steps,
            prior_std=s.prior_std,
            friction=s.friction,
            horizon=s.horizon,
            learn_friction=s.learn_friction,
            learn_prior_std=s.learn_prior_std,
            min_std=s.min_std,
        )
        eval_sampler = sampler.probability_flow(score_scale=s.score_scale)
    else:
        schedule = _SCHEDULES[s.schedule](p.num_steps)
        common = {"prediction": s.prediction, "clip_sample": s.clip_sample}
        if s.type == "ancestral":
            sampler = AncestralSampler(schedule, min_std=s.min_std, **common)
        elif s.type == "ddim":
            sampler = DDIMSampler(schedule, eta=s.eta, min_std=s.min_std, **common)
        else:
            raise ValueError(
                f"sampler.type must be 'ancestral', 'ddim' or 'euler_maruyama', got {s.type!r}"
            )
        eval_sampler = DDIMSampler(schedule, eta=0.0, num_steps=s.eval_steps, **common)
    return sampler, eval_sampler


def build_critic(cfg: DictConfig, env: EnvBase) -> TensorDictModule | QCritic:
    """V(s) for the likelihood-ratio arms; Q(s, a) with an HL-Gauss head for the pathwise ones."""
    obs_dim, action_dim = _dims(env)
    if cfg.algo.loss in _PATHWISE:
        a, c = cfg.algo, cfg.critic
        return QCritic(
            obs_dim,
            action_dim,
            HLGaussHead(a.v_min, a.v_max, num_bins=a.num_bins),
            hidden_dim=c.hidden_dim,
            encoder_layers=c.num_layers,
            head_layers=c.num_layers,
            next_embedding=a.embedding_coeff > 0,
        )
    net = MLP(
        in_features=obs_dim,
        out_features=1,
        num_cells=[cfg.critic.hidden_dim] * cfg.critic.num_layers,
        activation_class=torch.nn.Tanh,
    )
    return TensorDictModule(net, in_keys=["observation"], out_keys=["state_value"])


def _pathwise_loss(cfg: DictConfig, policy: ChainPolicy, critic: QCritic) -> LossModule:
    a, q = cfg.algo, cfg.projection
    projection = None
    if a.trust_region == "projection":
        projection = TrajectoryKLProjection(
            q.mean_bound, q.cov_bound, divergence=q.divergence, mode=q.mode, validate_args=False
        )
    loss_class = TruDiPathwiseLoss if a.loss == "trudi_pathwise" else REPPOLoss
    return loss_class(
        policy,
        critic,
        trust_region=a.trust_region,
        kl_bound=a.kl_bound,
        projection=projection,
        init_temperature=a.init_temperature,
        init_lagrange=a.init_lagrange,
        target_entropy=a.target_entropy,
        embedding_coeff=a.embedding_coeff,
        gamma=cfg.gamma,
        lmbda=cfg.lmbda,
    )


def build_value_estimator(cfg: DictConfig, loss: LossModule, critic) -> ValueEstimatorBase:
    """GAE on V(s) for the likelihood-ratio arms; the pathwise losses' own soft lambda-returns."""
    if cfg.algo.loss in _PATHWISE:
        return loss.value_estimator
    return GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=critic, average_gae=False)


def build_loss(
    cfg: DictConfig, policy: ChainPolicy, critic: TensorDictModule | QCritic
) -> LossModule:
    """``cfg.algo.loss``: ``trudi`` (TruDi, or TRPL with a Gaussian head), ``dppo``,
    ``clip_ppo`` (TorchRL's PPO), ``trudi_pathwise`` or ``reppo`` (docs/pathwise.md). The
    likelihood-ratio arms share the critic loss and advantage normalisation."""
    a = cfg.algo
    if a.loss in _PATHWISE:
        return _pathwise_loss(cfg, policy, critic)
    common = {
        "entropy_coeff": a.entropy_coeff,
        "critic_coeff": a.critic_coeff,
        "loss_critic_type": "l2",
        "normalize_advantage": True,
        "functional": False,
    }
    if a.loss == "trudi":
        q = cfg.projection
        projection = TrajectoryKLProjection(
            q.mean_bound,
            q.cov_bound,
            divergence=q.divergence,
            mode=q.mode,
            validate_args=False,
        )
        return TruDiLoss(
            policy, critic, projection, trust_region_coeff=a.trust_region_coeff, **common
        )
    if a.loss == "dppo":
        steps = a.ft_denoising_steps or policy.num_steps
        schedule = exponential_clip_schedule(
            a.clip_epsilon_first, a.clip_epsilon, steps, a.clip_rate
        )
        return DPPOLoss(
            policy,
            critic,
            clip_epsilon=schedule,
            denoising_discount=a.denoising_discount,
            ft_denoising_steps=a.ft_denoising_steps,
            ratio=a.ratio,
            log_prob_clamp=(a.log_prob_min, a.log_prob_max),
            **common,
        )
    if a.loss == "clip_ppo":
        return ClipPPOLoss(policy, critic, clip_epsilon=a.clip_epsilon, **common)
    raise ValueError(
        "algo.loss must be 'trudi', 'dppo', 'clip_ppo', 'trudi_pathwise' or 'reppo', got "
        f"{a.loss!r}"
    )


def build_optimizer(cfg: DictConfig, loss: LossModule, critic) -> torch.optim.Adam:
    """Adam over the loss's parameters at ``cfg.lr``; with ``cfg.critic_lr`` set, the critic's
    parameters form a second group at that rate (DPPO: actor 1e-4, critic 1e-3)."""
    # fused: one kernel for all parameters (on a CPU ~5x faster than the loop over them)
    if cfg.critic_lr is None:
        return torch.optim.Adam(loss.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
    critic_ids = {id(p) for p in critic.parameters()}
    others = [p for p in loss.parameters() if id(p) not in critic_ids]
    critic_params = [p for p in loss.parameters() if id(p) in critic_ids]
    if not critic_params:
        raise ValueError(
            f"critic_lr: the {type(loss).__name__} holds none of the critic's parameters (a "
            "functional copy?), so they cannot get their own rate; set critic_lr=null"
        )
    groups = [{"params": others}, {"params": critic_params, "lr": cfg.critic_lr}]
    return torch.optim.Adam(groups, lr=cfg.lr, eps=1e-5, fused=True)

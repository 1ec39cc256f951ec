"""The schemas of the training example's config groups (env, policy, sampler, projection, algo,
critic, diagnostics) and :func:`checked`, the field whose values :func:`examples.config.validate`
checks. :mod:`examples.config` assembles them into its top-level ``Config`` and registers them with
Hydra; see its docstring for how to add a field, an option or a group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

__all__ = [
    "AlgoConfig",
    "AncestralSamplerConfig",
    "CriticConfig",
    "DDIMSamplerConfig",
    "DPPOAlgoConfig",
    "DiagnosticsConfig",
    "DiffusionPolicyConfig",
    "EnvConfig",
    "EulerMaruyamaSamplerConfig",
    "GaussianPolicyConfig",
    "PPOAlgoConfig",
    "PathwiseAlgoConfig",
    "PolicyConfig",
    "ProjectionConfig",
    "SamplerConfig",
    "ScheduledSamplerConfig",
    "TruDiAlgoConfig",
    "checked",
]


def checked(
    default: Any,
    *,
    choices: tuple[Any, ...] = (),
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    """A dataclass field whose value :func:`validate` checks (``None`` passes where allowed)."""
    return field(default=default, metadata={"choices": choices, "gt": gt, "ge": ge, "le": le})


@dataclass
class EnvConfig:
    name: str = MISSING  # the simulator's task id, e.g. "HalfCheetah-v5"
    short: str = MISSING  # the task's name in output paths, e.g. "halfcheetah"
    # envpool (C++ threads, Linux x86_64) | gymnasium (portable, exact resume) | mjlab and
    # playground (GPU simulators through TorchRL's wrappers; need CUDA); examples/envs/factory.py
    backend: str = checked("gymnasium", choices=("envpool", "gymnasium", "mjlab", "playground"))
    reward_scale: float = checked(0.1, gt=0)  # rewards x this for learning; logged returns are raw
    max_episode_steps: int = checked(1000, ge=1)  # the time limit, training and evaluation episodes
    num_threads: int = checked(0, ge=0)  # EnvPool worker threads (0: EnvPool's choice)
    device: str | None = None  # GPU backends: the simulator's device (None: cuda)


@dataclass
class PolicyConfig:
    type: str = checked(MISSING, choices=("diffusion", "gaussian"))
    hidden_dim: int = checked(128, ge=1)  # network width
    min_std: float = checked(1e-3, gt=0)  # clamp of the learned scale (factor)
    max_std: float = checked(10.0, gt=0)
    squash: str = checked("clip", choices=("clip", "tanh"))  # to the action bounds


@dataclass
class DiffusionPolicyConfig(PolicyConfig):
    type: str = checked("diffusion", choices=("diffusion",))
    num_steps: int = checked(5, ge=1)  # K denoising steps
    num_blocks: int = checked(2, ge=1)  # residual blocks of the denoiser
    layer_norm: bool = True
    # Mish: ~6x slower forward+backward on CPU than SiLU.
    activation: str = checked("silu", choices=("silu", "mish", "relu", "tanh"))
    learn_scale: bool = True  # learned per-step, per-dimension log-scale factor
    min_std: float = checked(0.05, gt=0)  # clamp of the learned scale factor
    max_std: float = checked(1.0, gt=0)
    # The denoiser network alone under torch.autocast in this dtype (for GPUs; slower on CPUs);
    # transitions, log-probs, KLs and the projection stay float32. null: float32 throughout.
    autocast: str | None = checked(None, choices=("bfloat16",))


@dataclass
class GaussianPolicyConfig(PolicyConfig):
    type: str = checked("gaussian", choices=("gaussian",))
    num_layers: int = checked(2, ge=1)  # hidden layers of the mean's MLP
    init_std: float = checked(1.0, gt=0)  # initial state-independent std


@dataclass
class SamplerConfig:
    type: str = checked(MISSING, choices=("ancestral", "ddim", "euler_maruyama"))  # for training
    min_std: float = checked(0.3, gt=0)  # floor of every transition's std, sampling and scoring


@dataclass
class ScheduledSamplerConfig(SamplerConfig):
    """A sampler over a DDPM noise schedule; evaluation uses its probability-flow ODE (DDIM η = 0)."""

    schedule: str = checked("cosine", choices=("cosine", "linear", "sigmoid"))
    # What the denoiser predicts: with "epsilon" an untrained denoiser passes the prior noise x_K
    # through the whole chain (initial action std ~0.75 of the bound) and has to learn to cancel
    # it; "sample" (x0) starts near-deterministic, and min_std is then the exploration noise of the
    # last transition. Tuned on HalfCheetah and Hopper (benchmarks/README.md).
    prediction: str = checked("sample", choices=("epsilon", "sample"))
    clip_sample: float | None = checked(1.0, gt=0)  # x0 clamp (null: none)
    eval_steps: int | None = checked(None, ge=1)  # probability-flow ODE steps at eval (null: K)


@dataclass
class AncestralSamplerConfig(ScheduledSamplerConfig):
    type: str = checked("ancestral", choices=("ancestral",))  # DDPM posterior (SDE)


@dataclass
class DDIMSamplerConfig(ScheduledSamplerConfig):
    type: str = checked("ddim", choices=("ddim",))
    eta: float = checked(1.0, gt=0)  # DDIM noise (> 0: a stochastic sampler that can be scored)


@dataclass
class EulerMaruyamaSamplerConfig(SamplerConfig):
    """DIME-style reversed Ornstein-Uhlenbeck chain (``trudi.samplers.EulerMaruyamaSampler``);
    evaluation uses its probability-flow ODE."""

    type: str = checked("euler_maruyama", choices=("euler_maruyama",))
    prior_std: float = checked(2.5, gt=0)  # sigma_p: prior N(0, sigma_p^2 I) (DIME's init_std)
    friction: float = checked(1.0, gt=0)  # initial friction of every step
    horizon: float = checked(1.0, gt=0)  # time span of the reference OU process
    learn_friction: bool = True  # per-step friction is a parameter
    learn_prior_std: bool = False  # a learned prior is outside the trust region (docs/pathwise.md)
    min_std: float = checked(1e-3, gt=0)
    score_scale: float = checked(1.0, gt=0)  # c of the probability-flow ODE used for evaluation


@dataclass
class ProjectionConfig:
    divergence: str = checked("kl", choices=("kl", "w2", "frobenius"))
    mode: str = checked(
        "trajectory", choices=("trajectory", "per_step")
    )  # one bound per chain or step
    mean_bound: float = checked(MISSING, gt=0)  # epsilon_mu
    cov_bound: float | None = checked(MISSING, gt=0)  # epsilon_Sigma (null: scales not projected)
    # Adaptive trust region (examples/kl_tightness.py): after each diagnostics measurement, scale
    # the bounds (or the split gate's algo.kl_bound) toward a marginal action KL per update.
    adaptive: bool = False
    marginal_target: float = checked(0.05, gt=0)  # well above the k-NN noise, kl_marginal_se
    adaptive_min: float = checked(0.1, gt=0, le=1)  # range of the bounds' scale factor
    adaptive_max: float = checked(10.0, ge=1)


@dataclass
class AlgoConfig:
    name: str = MISSING  # the arm's name in output paths and plots
    loss: str = checked(MISSING, choices=("trudi", "dppo", "clip_ppo", "trudi_pathwise", "reppo"))
    entropy_coeff: float = checked(0.0, ge=0)
    critic_coeff: float = checked(0.5, ge=0)


@dataclass
class TruDiAlgoConfig(AlgoConfig):
    trust_region_coeff: float = checked(1.0, ge=0)  # alpha: weight of KL(network || projection)


@dataclass
class DPPOAlgoConfig(AlgoConfig):
    """DPPO (``docs/dppo.md``). Defaults: DPPO's from-scratch Gym configs
    (irom-princeton/dppo ``cfg/gym/scratch/*/ppo_diffusion_mlp.yaml``), names in brackets."""

    # clamped_mean: DPPO's per-dimension log-probs, clamped and averaged over the action dims;
    # joint: the transition's summed, unclamped log-prob (trudi's earlier variant)
    ratio: str = checked("clamped_mean", choices=("clamped_mean", "joint"))
    clip_epsilon: float = checked(0.1, gt=0)  # clip of the last denoising step (clip_ploss_coef)
    # of the first fine-tuned (noisiest) step (clip_ploss_coef_base); exponential in between
    clip_epsilon_first: float = checked(0.1, gt=0)
    clip_rate: float = checked(3.0, gt=0)  # the schedule's exponent (clip_ploss_coef_rate)
    # advantage discount per denoising step (gamma_denoising; 0.99 in DPPO's fine-tuning configs)
    denoising_discount: float = checked(1.0, gt=0, le=1)
    # the last steps that are trained (ft_denoising_steps); the earlier ones run a frozen copy of
    # the denoiser (trudi.policies.FineTunedDenoiser). null: all K, as DPPO from scratch
    ft_denoising_steps: int | None = checked(None, ge=1)
    log_prob_min: float = -5.0  # clamp of the per-dimension log-probs (clamped_mean)
    log_prob_max: float = 2.0
    critic_coeff: float = checked(0.25, ge=0)  # DPPO's vf_coef 0.5 x its 0.5 * MSE


@dataclass
class PPOAlgoConfig(AlgoConfig):
    clip_epsilon: float = checked(0.2, gt=0)


@dataclass
class PathwiseAlgoConfig(AlgoConfig):
    """``trudi_pathwise`` and ``reppo`` (docs/pathwise.md): a Q critic on soft lambda-returns."""

    # split: the paper's gate with a dual; projection: trudi's TrajectoryKLProjection (projection.*)
    trust_region: str = checked("split", choices=("split", "projection"))
    kl_bound: float = checked(0.1, gt=0)  # epsilon of the gate
    v_min: float = -200.0  # HL-Gauss value range, in units of the scaled rewards' returns
    v_max: float = 200.0
    num_bins: int = checked(151, ge=2)
    embedding_coeff: float = checked(1.0, ge=0)  # REPPO's auxiliary next-embedding loss (0: off)
    init_temperature: float = checked(0.01, gt=0)  # alpha_0
    init_lagrange: float = checked(0.01, gt=0)  # lambda_0 of the gate
    target_entropy: float | None = None  # None: -0.5 x action dims (REPPO)


@dataclass
class CriticConfig:
    hidden_dim: int = checked(256, ge=1)
    num_layers: int = checked(2, ge=1)


@dataclass
class DiagnosticsConfig:
    # Every N iterations (0: off) the marginal action KL(old || new) by k-NN beside the update's
    # exact trajectory KL (examples/kl_tightness.py); training itself does not change.
    kl_tightness_every: int = checked(0, ge=0)
    kl_states: int = checked(32, ge=1)  # states drawn from the batch
    kl_samples: int = checked(512, ge=2)  # chains per state and policy
    knn_k: int = checked(1, ge=1)  # the k of the k-NN estimator

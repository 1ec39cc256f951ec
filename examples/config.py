"""The training example's configuration schema: Hydra structured configs, checked before any build.

Every field of ``examples/train.py`` is declared here once, with its type, default, meaning and
allowed values. Hydra composes ``examples/conf/config.yaml`` onto :class:`Config`, so a wrong type
or an unknown field fails at composition with the field's full name (``total_frames=abc``,
``algo.clip_epsilon=0.1`` under ``algo=trudi``); :func:`validate` then checks values and the
relations between fields (``total_frames=0``, a negative bound) before anything is built.

Groups and their schemas (``examples/conf/<group>/<option>.yaml``):

====================  =======================================  ==================================
group                 options                                  schema
====================  =======================================  ==================================
``env``               halfcheetah, hopper, walker2d, ant,      :class:`EnvConfig`
                      humanoid, pendulum, dmc_humanoid_stand,
                      dmc_humanoid_walk, dmc_humanoid_run,
                      dmc_cheetah_run, g1_joystick, t1_joystick
``scale``             default, massive                         (sets top-level fields)
``policy``            diffusion, gaussian                      :class:`DiffusionPolicyConfig`, ...
``sampler``           ancestral, ddim, euler_maruyama          :class:`AncestralSamplerConfig`, ...
``projection``        kl, w2, frobenius                        :class:`ProjectionConfig`
``algo``              trudi, dppo, ppo, trpl, trudi_pathwise,  :class:`TruDiAlgoConfig`, ...
                      reppo
====================  =======================================  ==================================

How to extend:

- **A field**: one dataclass field below, with its default, a comment, and ``checked(...)`` if its
  values are constrained (``choices=``, ``gt=``, ``ge=``, ``le=``); :func:`validate` reads those.
- **An option of a group** (``env=dmc_walker``): one yaml file in ``examples/conf/<group>/``. Where
  the group has one schema (``env``, ``projection``) the file holds only values. Where it has
  several (``policy``, ``sampler``, ``algo``) the file's first default names its schema, e.g.
  ``- /schema/policy/diffusion@_here_``; an option with fields of its own gets a dataclass that
  extends the group's base class, registered in :func:`register` (see ``DPPOAlgoConfig``).
- **A group**: a dataclass, a field of that type in :class:`Config`, a line in the defaults of
  ``config.yaml``. A group whose options only set existing fields (say ``scale=massive`` setting
  ``num_envs`` and ``rollout_length``) needs no schema of its own: a line in the defaults of
  ``config.yaml`` and yaml files that start with ``# @package _global_``; :class:`Config` checks
  what they set. Put it after the groups whose values it may change.

Example:
    >>> cfg = compose_config("algo=ppo", "total_frames=8192")  # as python -m examples.train ... would
    >>> cfg.policy.type, cfg.algo.clip_epsilon
    ('gaussian', 0.2)
    >>> compose_config("total_frames=0")
    Traceback (most recent call last):
    ...
    examples.config.ConfigError: invalid configuration:
      total_frames: must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

__all__ = [
    "CONFIG_DIR",
    "Config",
    "ConfigError",
    "checked",
    "compose_config",
    "register",
    "validate",
]

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


class ConfigError(ValueError):
    """The configuration has values that cannot run; the message names every such field."""


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
    clip_epsilon: float = checked(0.2, gt=0)  # clip of the last denoising step
    clip_epsilon_first: float = checked(0.05, gt=0)  # of the first (noisiest); exponential between
    denoising_discount: float = checked(0.99, gt=0, le=1)  # advantage discount per denoising step


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


@dataclass
class Config:
    seed: int = 0  # torch, Python and environment seeds
    # torch CPU threads. Env stepping and learning share the cores, and torch with more threads
    # than free cores collapses (38-162 s against 3.5 s per iteration on a busy 2-core machine).
    threads: int = checked(1, ge=1)
    # Environment steps. Training runs whole iterations of num_envs x rollout_length steps, so the
    # budget rounds down to a multiple of that (at least one iteration); the run prints its budget.
    total_frames: int = checked(500_000, ge=1)
    num_envs: int = checked(64, ge=1)  # vectorized sub-environments
    rollout_length: int = checked(64, ge=1)  # steps per env per iteration
    epochs: int = checked(5, ge=1)  # passes over each batch
    minibatches: int = checked(8, ge=1)  # minibatches per epoch
    gamma: float = checked(0.99, gt=0, le=1)  # discount
    lmbda: float = checked(0.95, ge=0, le=1)  # GAE lambda
    lr: float = checked(3.0e-4, gt=0)  # Adam learning rate, actor and critic
    lr_schedule: str = checked("linear", choices=("linear", "constant"))  # linear: to 0 at the end
    max_grad_norm: float = checked(0.5, gt=0)  # global gradient-norm clip
    eval_every: int = checked(
        25, ge=0
    )  # iterations between evaluations, and one at the end; 0: none
    eval_episodes: int = checked(4, ge=1)  # eval envs, one episode each, per sampler
    checkpoint_every: int = checked(10, ge=1)  # iterations between checkpoints (and at the end)
    # Continue the checkpoint in the run directory; fails if there is none. A fresh run refuses a
    # directory that holds an earlier run's output.
    resume: bool = False
    logger: str = checked("csv", choices=("csv", "tensorboard", "wandb"))
    progress_bar: bool = True
    critic: CriticConfig = field(default_factory=CriticConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    env: EnvConfig = MISSING
    policy: PolicyConfig = MISSING
    sampler: SamplerConfig = MISSING
    projection: ProjectionConfig = MISSING
    algo: AlgoConfig = MISSING


# An arm's loss works with one policy head only.
_LOSS_POLICY = {
    "dppo": "diffusion",
    "clip_ppo": "gaussian",
    "trudi_pathwise": "diffusion",
    "reppo": "gaussian",
}


def register() -> None:
    """Store the schemas in Hydra's ``ConfigStore`` (done on import; calling again is harmless)."""
    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)
    for group, name, node in (
        ("policy", "diffusion", DiffusionPolicyConfig),
        ("policy", "gaussian", GaussianPolicyConfig),
        ("sampler", "ancestral", AncestralSamplerConfig),
        ("sampler", "ddim", DDIMSamplerConfig),
        ("sampler", "euler_maruyama", EulerMaruyamaSamplerConfig),
        ("algo", "trudi", TruDiAlgoConfig),
        ("algo", "dppo", DPPOAlgoConfig),
        ("algo", "ppo", PPOAlgoConfig),
        ("algo", "pathwise", PathwiseAlgoConfig),
    ):
        store.store(group=f"schema/{group}", name=name, node=node)


def _field_errors(node: DictConfig, prefix: str) -> list[str]:
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return []
    errors = []
    for f in dataclasses.fields(schema):
        name = f"{prefix}{f.name}"
        if OmegaConf.is_missing(node, f.name):
            errors.append(f"{name}: must be set")
            continue
        value = node[f.name]
        if isinstance(value, DictConfig):
            errors += _field_errors(value, f"{name}.")
            continue
        meta = f.metadata
        if value is None or not meta:
            continue
        if meta["choices"] and value not in meta["choices"]:
            errors.append(f"{name}: must be one of {list(meta['choices'])}, got {value!r}")
        for key, holds, word in (
            ("gt", lambda v, b: v > b, ">"),
            ("ge", lambda v, b: v >= b, ">="),
            ("le", lambda v, b: v <= b, "<="),
        ):
            if meta[key] is not None and not holds(value, meta[key]):
                errors.append(f"{name}: must be {word} {meta[key]}, got {value!r}")
    return errors


def validate(cfg: DictConfig) -> None:
    """Check every field's value and the relations between fields; raise one :class:`ConfigError`
    naming each bad field. Types and unknown fields were already checked by Hydra."""
    errors = _field_errors(cfg, "")
    if not errors:
        frames_per_iteration = cfg.num_envs * cfg.rollout_length
        if cfg.total_frames < frames_per_iteration:
            errors.append(
                f"total_frames: must be >= one iteration, num_envs x rollout_length = "
                f"{frames_per_iteration:,}, got {cfg.total_frames:,}"
            )
        if cfg.minibatches > frames_per_iteration:
            errors.append(
                f"minibatches: must be <= the {frames_per_iteration:,} frames of an iteration, "
                f"got {cfg.minibatches}"
            )
        errors += _diagnostics_errors(cfg)
        needed = _LOSS_POLICY.get(cfg.algo.loss)
        if needed is not None and cfg.policy.type != needed:
            errors.append(
                f"policy.type: algo.loss={cfg.algo.loss!r} needs policy={needed}, "
                f"got {cfg.policy.type!r}"
            )
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))


def _diagnostics_errors(cfg: DictConfig) -> list[str]:
    d, errors = cfg.diagnostics, []
    if d.kl_samples < d.knn_k + 1:
        errors.append(f"diagnostics.kl_samples: must be > diagnostics.knn_k, got {d.kl_samples}")
    if cfg.projection.adaptive and d.kl_tightness_every < 1:
        errors.append("projection.adaptive: needs diagnostics.kl_tightness_every >= 1, got 0")
    if cfg.projection.adaptive and cfg.algo.loss in ("dppo", "clip_ppo"):
        errors.append(
            f"projection.adaptive: algo.loss={cfg.algo.loss!r} clips its ratio and has no bound "
            "to adapt; use trudi, trpl, trudi_pathwise or reppo"
        )
    return errors


def compose_config(*overrides: str) -> DictConfig:
    """The validated training config with Hydra ``overrides``, outside a Hydra app (tests,
    notebooks, benchmarks); ``hydra.*`` fields are not composed."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=list(overrides))
    validate(cfg)
    return cfg


register()

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

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from examples.config_groups import (
    AlgoConfig,
    AncestralSamplerConfig,
    CriticConfig,
    DDIMSamplerConfig,
    DiagnosticsConfig,
    DiffusionPolicyConfig,
    DPPOAlgoConfig,
    EnvConfig,
    EulerMaruyamaSamplerConfig,
    GaussianPolicyConfig,
    PathwiseAlgoConfig,
    PolicyConfig,
    PPOAlgoConfig,
    ProjectionConfig,
    SamplerConfig,
    ScheduledSamplerConfig,
    TruDiAlgoConfig,
    checked,
)

__all__ = [
    "CONFIG_DIR",
    "AlgoConfig",
    "AncestralSamplerConfig",
    "Config",
    "ConfigError",
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
    "compose_config",
    "register",
    "validate",
]

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


class ConfigError(ValueError):
    """The configuration has values that cannot run; the message names every such field."""


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
    critic_lr: float | None = checked(None, gt=0)  # the critic's own learning rate (null: lr)
    lr_schedule: str = checked("linear", choices=("linear", "constant"))  # linear: to 0 at the end
    max_grad_norm: float | None = checked(0.5, gt=0)  # global gradient-norm clip (null: none)
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
    # torch.compile of the policy's sampling and of the loss's forward+backward (parameters and
    # checkpoint keys unchanged; examples/compiling.py). It pays on long runs: compiling takes
    # minutes on a CPU (1-7 on a busy 2-core machine) and then cuts TruDi's update by about a
    # fifth there (benchmarks/results/overhead.md); on GPUs also "reduce-overhead". Off by default.
    compile: bool = False
    # torch.compile's mode: "reduce-overhead" adds CUDA graphs (on CUDA; as "default" on a CPU).
    compile_mode: str = checked(
        "default",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    )
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


def _dppo_errors(cfg: DictConfig) -> list[str]:
    errors = []
    a = cfg.algo
    steps = cfg.policy.get("num_steps", 1)
    if a.ft_denoising_steps is not None and a.ft_denoising_steps > steps:
        errors.append(
            f"algo.ft_denoising_steps: must be <= policy.num_steps = {steps}, "
            f"got {a.ft_denoising_steps}"
        )
    if not a.log_prob_min < a.log_prob_max:
        errors.append(
            f"algo.log_prob_min: must be < algo.log_prob_max = {a.log_prob_max}, "
            f"got {a.log_prob_min}"
        )
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
        if cfg.algo.loss == "dppo":
            errors += _dppo_errors(cfg)
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
    if "diagnostics" not in cfg:  # configs without the group (the multi-agent example's)
        return []
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

"""The multi-agent example's configuration schema: Hydra structured configs, checked before any build.

The same approach and the same field names as the training example (:mod:`examples.config`): the
samplers, the projection and the arms' schemas are the training example's own, and
:func:`validate` runs its checks (types, ranges, choices, one iteration in the budget, the arm's
policy head) before the multi-agent ones. Hydra composes ``examples/conf/multiagent/config.yaml``
onto :class:`MultiAgentConfig`.

====================  ======================================  ====================================
group                 options                                 schema
====================  ======================================  ====================================
``algo``              trudi, trudi_pathwise, mappo            ``TruDiAlgoConfig``,
                                                              ``PathwiseAlgoConfig``,
                                                              ``PPOAlgoConfig`` (examples.config)
``policy``            diffusion, gaussian                     :class:`MultiAgentDiffusionConfig`,
                                                              :class:`MultiAgentGaussianConfig`
``sampler``           ancestral, euler_maruyama               examples.config's sampler schemas
``scale``             default, massive, small                 (sets top-level fields)
====================  ======================================  ====================================

Example:
    >>> cfg = compose_config("algo=mappo", "total_frames=100000")
    >>> cfg.policy.type, cfg.algo.loss, cfg.num_envs * cfg.rollout_length
    ('gaussian', 'clip_ppo', 40960)
    >>> compose_config("algo=trudi_pathwise", "critic.share_params=false")
    Traceback (most recent call last):
    ...
    examples.config.ConfigError: invalid configuration:
      critic.share_params: the Q critic of algo.loss='trudi_pathwise' shares its weights across agents, got false
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from examples.config import (
    AlgoConfig,
    ConfigError,
    CriticConfig,
    DiffusionPolicyConfig,
    PolicyConfig,
    ProjectionConfig,
    SamplerConfig,
    checked,
    validate,
)

__all__ = [
    "CONFIG_DIR",
    "MultiAgentConfig",
    "compose_config",
    "validate_multiagent",
]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf" / "multiagent"


@dataclass
class VmasConfig:
    # Any VMAS scenario with continuous actions; benchmarked: navigation, balance, transport.
    scenario: str = "navigation"
    max_steps: int = checked(100, ge=1)  # episode length cap
    scenario_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {n_agents: 3}


@dataclass
class MultiAgentDiffusionConfig(DiffusionPolicyConfig):
    share_params: bool = True  # one denoiser for all agents (MAPPO's share_parameters_policy)
    # Learned scale per agent, [K, n_agents, A], also with a shared denoiser (false: one [K, A]
    # for all agents; per-agent denoiser weights always come with per-agent scales).
    per_agent_scale: bool = True


@dataclass
class MultiAgentGaussianConfig(PolicyConfig):
    """MAPPO's head as in TorchRL's ``multiagent/mappo_ippo.py``: MLP -> loc, softplus scale,
    TanhNormal (so ``squash`` is always tanh and ``max_std`` is not used)."""

    type: str = checked("gaussian", choices=("gaussian",))
    share_params: bool = True  # MAPPO's share_parameters_policy
    num_layers: int = checked(2, ge=1)  # hidden layers of the MLP
    min_std: float = checked(1e-4, gt=0)  # the scale's lower bound
    squash: str = checked("tanh", choices=("tanh",))


@dataclass
class MultiAgentCriticConfig(CriticConfig):
    # MAPPO: every agent's value sees all agents' observations (V), or observations and actions
    # (the pathwise arm's Q); false: each agent's own (IPPO-style).
    centralised: bool = True
    share_params: bool = True  # V: one network for all agents; the Q critic always shares


@dataclass
class MultiAgentConfig:
    seed: int = 0  # torch, Python and VMAS seeds
    device: str = "cpu"  # where the envs, the policy and the update run
    threads: int = checked(1, ge=1)  # torch CPU threads
    # The defaults are scale=default, the massively parallel regime sized for a 2-core CPU:
    # 4,096 envs x 10 steps = 40,960 env steps per iteration (a 100-step episode ends every 10
    # iterations), 4 epochs of 8 minibatches of 5,120 env steps (x n_agents agent samples).
    total_frames: int = checked(2_048_000, ge=1)  # env steps (one step moves every agent)
    num_envs: int = checked(4096, ge=1)  # vectorized VMAS envs
    rollout_length: int = checked(10, ge=1)  # steps per env per iteration
    epochs: int = checked(4, ge=1)  # passes over each batch
    minibatches: int = checked(8, ge=1)  # minibatches per epoch (of env steps, all agents each)
    gamma: float = checked(0.99, gt=0, le=1)
    lmbda: float = checked(0.9, ge=0, le=1)  # GAE / soft lambda-return lambda
    lr: float = checked(3.0e-4, gt=0)
    lr_schedule: str = checked("constant", choices=("linear", "constant"))
    max_grad_norm: float = checked(1.0, gt=0)
    checkpoint_every: int = checked(10, ge=1)  # iterations between checkpoints (and at the end)
    resume: bool = False  # continue the checkpoint in the run directory
    logger: str = checked("csv", choices=("csv", "tensorboard", "wandb"))
    progress_bar: bool = True
    env: VmasConfig = field(default_factory=VmasConfig)
    critic: MultiAgentCriticConfig = field(default_factory=MultiAgentCriticConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    policy: PolicyConfig = MISSING
    sampler: SamplerConfig = MISSING
    algo: AlgoConfig = MISSING


_ARMS = ("trudi", "trudi_pathwise", "clip_ppo")


def register() -> None:
    """Store the schemas in Hydra's ``ConfigStore`` (done on import)."""
    store = ConfigStore.instance()
    store.store(name="multiagent_schema", node=MultiAgentConfig)
    store.store(group="schema/multiagent_policy", name="diffusion", node=MultiAgentDiffusionConfig)
    store.store(group="schema/multiagent_policy", name="gaussian", node=MultiAgentGaussianConfig)


def validate_multiagent(cfg: DictConfig) -> None:
    """:func:`examples.config.validate`, then the multi-agent relations; one
    :class:`~examples.config.ConfigError` naming every bad field."""
    validate(cfg)
    errors = []
    if cfg.algo.loss not in _ARMS:
        errors.append(f"algo.loss: must be one of {list(_ARMS)} here, got {cfg.algo.loss!r}")
    if cfg.algo.loss == "trudi" and cfg.policy.type != "diffusion":
        # The Gaussian head here is TorchRL's TanhNormal actor, not a trudi chain policy.
        errors.append(
            f"policy.type: algo.loss='trudi' needs policy=diffusion, got {cfg.policy.type!r}"
        )
    if cfg.algo.loss == "trudi_pathwise" and not cfg.critic.share_params:
        errors.append(
            "critic.share_params: the Q critic of algo.loss='trudi_pathwise' shares its weights "
            "across agents, got false"
        )
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))


def compose_config(*overrides: str) -> DictConfig:
    """The validated multi-agent config with Hydra ``overrides``, outside a Hydra app."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=list(overrides))
    validate_multiagent(cfg)
    return cfg


register()

"""Multi-agent TruDi on VMAS, with TorchRL's MAPPO (Gaussian head) as the baseline.

Run from the repository root:

    python -m examples.multiagent                                  # TruDi on navigation, CPU
    python -m examples.multiagent algo=mappo                       # the MAPPO baseline
    python -m examples.multiagent algo=trudi_pathwise              # pathwise TruDi (Q critic)
    python -m examples.multiagent --multirun algo=trudi,mappo seed=0,1,2
    python -m examples.multiagent env.scenario=balance scale=massive device=cuda
    python -m examples.multiagent resume=true                      # continue this run's checkpoint

Arms (``algo``): ``trudi`` (diffusion policy + TruDiLoss, V critic, GAE), ``trudi_pathwise``
(diffusion policy + TruDiPathwiseLoss, Q critic, soft lambda-returns) and ``mappo`` (TorchRL's
TanhNormal head + MAPPOLoss). Every field is declared and documented in
:mod:`examples.multiagent.config` and checked before anything is built; ``scale=default`` is sized
for a 2-core CPU, ``scale=massive`` for a GPU, ``scale=small`` the pre-issue-21 benchmark's 256 envs x
100 steps (``examples/conf/multiagent/scale/``).

Each run has its own directory, ``outputs/multiagent/<scenario>/<algo>/seed<seed>/``, with
``config.yaml``, ``checkpoint.pt`` (atomic, every ``checkpoint_every`` iterations and at the end),
``logs/`` (TorchRL's CSV logger) and ``learning_curve.png``; Ctrl-C finishes the iteration, saves
and prints the resume command; a non-finite loss stops the run before that iteration is saved.

Data layout (TorchRL's multi-agent convention, as :class:`~torchrl.envs.libs.vmas.VmasEnv` writes
it): per-agent entries live under ``"agents"`` with shape ``[envs, time, n_agents, ·]``; VMAS
rewards are per agent, ``("next", "agents", "reward")``, while ``done``/``terminated`` are team-level
``[envs, time, 1]`` and are broadcast along the agent dim before the value estimator, as in
TorchRL's ``multiagent/mappo_ippo.py``. The diffusion policy's chain keys are moved under
``"agents"``, so every agent's chain is one row of the trust-region projection.
"""

from examples.multiagent.build import (
    JointQCritic,
    broadcast_team_done,
    make_critic,
    make_env,
    make_loss,
    make_policy,
    set_agent_keys,
)
from examples.multiagent.config import MultiAgentConfig, compose_config, validate_multiagent
from examples.multiagent.train import train

__all__ = [
    "JointQCritic",
    "MultiAgentConfig",
    "broadcast_team_done",
    "compose_config",
    "make_critic",
    "make_env",
    "make_loss",
    "make_policy",
    "set_agent_keys",
    "train",
    "validate_multiagent",
]

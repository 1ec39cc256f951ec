"""Small multi-agent fixtures: the example's config composed by Hydra, tiny VMAS envs, batches."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type

CONFIG_DIR = Path(__file__).resolve().parents[2] / "examples" / "conf" / "multiagent"

TINY = [
    "env.num_envs=4",
    "env.max_steps=8",
    "+env.scenario_kwargs.n_agents=3",
    "collector.frames_per_batch=24",
    "collector.total_frames=24",
    "optim.minibatch_size=12",
    "optim.num_epochs=1",
    "policy.hidden_dim=16",
    "policy.num_steps=3",
    "critic.hidden_dim=16",
    "log.progress_bar=false",
]


def make_cfg(*overrides: str) -> DictConfig:
    """The example's config with a tiny budget, plus ``overrides``."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("config", overrides=[*TINY, *overrides])


def agent_batch(policy, batch=(10,), n_agents=3, obs_dim=18, seed=0) -> TensorDict:
    """Recorded chains for ``[*batch, n_agents]`` random observations, with random advantages."""
    g = torch.Generator().manual_seed(seed)
    shape = (*batch, n_agents)
    agents = TensorDict(
        {
            "observation": torch.randn(*shape, obs_dim, generator=g),
            "advantage": torch.randn(*shape, 1, generator=g),
            "value_target": torch.randn(*shape, 1, generator=g),
        },
        batch_size=shape,
    )
    td = TensorDict({"agents": agents}, batch_size=batch)
    with set_interaction_type(InteractionType.RANDOM), torch.no_grad():
        return policy(td)

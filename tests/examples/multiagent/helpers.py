"""Small multi-agent fixtures: the example's config with tiny envs and networks, batches."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type

from examples.multiagent import compose_config

N_AGENTS = 3
OBS_DIM = 18  # navigation's observation with 3 agents
TINY = [
    "num_envs=4",
    "rollout_length=6",
    "env.max_steps=8",
    f"+env.scenario_kwargs.n_agents={N_AGENTS}",
    "total_frames=24",
    "minibatches=2",
    "epochs=1",
    "policy.hidden_dim=16",
    "critic.hidden_dim=16",
    "progress_bar=false",
]


def make_cfg(*overrides: str) -> DictConfig:
    """The example's config with a tiny budget and tiny networks, plus ``overrides``."""
    return compose_config(*TINY, *overrides)


def agent_batch(policy, batch=(10,), n_agents=N_AGENTS, obs_dim=OBS_DIM, seed=0) -> TensorDict:
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

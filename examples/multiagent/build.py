"""Build the multi-agent example's env, policy heads, critics and losses from its config.

The diffusion head, its samplers and the TruDi / pathwise losses come from the training example's
builders (:mod:`examples.build`) with the keys moved under ``"agents"``; MAPPO is TorchRL's own
(``MultiAgentMLP`` -> ``TanhNormal``, ``MAPPOLoss``), as in TorchRL's ``multiagent/mappo_ippo.py``.

Critics (``cfg.critic``): the likelihood-ratio arms (TruDi, MAPPO) learn V per agent with
TorchRL's ``MultiAgentMLP``, centralised (every agent's value sees all observations, MAPPO) or not
(IPPO). The pathwise arm learns Q with an HL-Gauss head: centralised, :class:`JointQCritic`,
Q_i(o_1..n, a_1..n, i) — every agent's Q sees all observations and actions and the agent's one-hot
id, so the actor's gradient reaches agent j's action from every agent's Q (the team's value, as
for MADDPG's critics in a cooperative game); decentralised, one shared
:class:`~trudi.learners.QCritic` on each agent's own (o_i, a_i).
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.envs import EnvBase, RewardSum, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import LossModule, ValueEstimators
from torchrl.objectives.multiagent import MAPPOLoss

from examples.build import build_denoiser, build_loss, build_samplers
from trudi.learners import HLGaussHead, QCritic, QOutput
from trudi.policies import DiffusionPolicy

__all__ = [
    "ACTION",
    "EPISODE_REWARD",
    "OBSERVATION",
    "REWARD",
    "JointQCritic",
    "broadcast_team_done",
    "make_critic",
    "make_env",
    "make_loss",
    "make_policy",
    "set_agent_keys",
]

OBSERVATION = ("agents", "observation")
ACTION = ("agents", "action")
REWARD = ("agents", "reward")
EPISODE_REWARD = ("agents", "episode_reward")


def make_env(cfg: DictConfig, seed: int | None = None) -> TransformedEnv:
    """``cfg.num_envs`` VMAS envs on ``cfg.device``, tracking each agent's episode return."""
    env = VmasEnv(
        scenario=cfg.env.scenario,
        num_envs=cfg.num_envs,
        continuous_actions=True,
        max_steps=cfg.env.max_steps,
        device=cfg.device,
        seed=cfg.seed if seed is None else seed,
        **cfg.env.scenario_kwargs,
    )
    return TransformedEnv(env, RewardSum(in_keys=[REWARD], out_keys=[EPISODE_REWARD]))


def _dims(env: EnvBase) -> tuple[int, int, int]:
    """``(n_agents, observation_dim, action_dim)``."""
    return (
        env.n_agents,
        env.observation_spec[OBSERVATION].shape[-1],
        env.full_action_spec[ACTION].shape[-1],
    )


def _diffusion_policy(cfg: DictConfig, env: EnvBase) -> DiffusionPolicy:
    """TruDi's head: one chain per agent; shared or per-agent denoiser, per-agent scales."""
    n_agents, obs_dim, act_dim = _dims(env)
    p = cfg.policy
    sampler, eval_sampler = build_samplers(cfg)
    policy = DiffusionPolicy(
        build_denoiser(cfg, obs_dim, act_dim, n_agents=None if p.share_params else n_agents),
        sampler,
        eval_sampler,
        action_spec=env.full_action_spec_unbatched[ACTION],
        squash=p.squash,
        learn_scale=p.learn_scale,
        n_agents=n_agents if p.per_agent_scale else None,
        min_std=p.min_std,
        max_std=p.max_std,
        validate_args=False,  # the check syncs the host in every update
    )
    # Every policy key (observation, action, chain) under "agents", so they carry the agent dim.
    return policy.set_keys(policy.tensor_keys.prefixed("agents"))


def _gaussian_actor(cfg: DictConfig, env: EnvBase) -> ProbabilisticActor:
    """MAPPO's head, as in TorchRL's ``mappo_ippo.py``: MLP -> (loc, softplus scale) -> TanhNormal."""
    n_agents, obs_dim, act_dim = _dims(env)
    p = cfg.policy
    net = nn.Sequential(
        MultiAgentMLP(
            n_agent_inputs=obs_dim,
            n_agent_outputs=2 * act_dim,
            n_agents=n_agents,
            centralized=False,
            share_params=p.share_params,
            device=cfg.device,
            depth=p.num_layers,
            num_cells=p.hidden_dim,
            activation_class=nn.Tanh,
        ),
        NormalParamExtractor(scale_lb=p.min_std),
    )
    module = TensorDictModule(net, [OBSERVATION], [("agents", "loc"), ("agents", "scale")])
    spec = env.full_action_spec_unbatched[ACTION]
    return ProbabilisticActor(
        module,
        in_keys=[("agents", "loc"), ("agents", "scale")],
        out_keys=[ACTION],
        spec=env.full_action_spec[ACTION],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": spec.space.low, "high": spec.space.high},
        return_log_prob=True,
    )


def make_policy(cfg: DictConfig, env: EnvBase) -> DiffusionPolicy | ProbabilisticActor:
    """``cfg.policy``: the diffusion head (TruDi arms) or TorchRL's Gaussian actor (MAPPO)."""
    return (
        _diffusion_policy(cfg, env) if cfg.policy.type == "diffusion" else _gaussian_actor(cfg, env)
    )


class JointQCritic(QCritic):
    """Centralised Q_i(o_1..n, a_1..n, i) with an HL-Gauss head (see the module doc).

    ``forward(observation [*B, n_agents, O], action [*B, n_agents, A])`` returns a
    :class:`~trudi.learners.QOutput` with ``[*B, n_agents, ·]`` entries: row i is agent i's Q,
    from all agents' observations and actions and agent i's one-hot id. One network for all agents.

    Examples:
        >>> import torch
        >>> from trudi.learners import HLGaussHead
        >>> critic = JointQCritic(3, 5, 2, HLGaussHead(-1.0, 1.0, num_bins=11), hidden_dim=8)
        >>> critic(torch.randn(4, 3, 5), torch.rand(4, 3, 2)).value.shape
        torch.Size([4, 3, 1])
    """

    def __init__(
        self, n_agents: int, observation_dim: int, action_dim: int, head: HLGaussHead, **kwargs
    ) -> None:
        super().__init__(n_agents * (observation_dim + 1), n_agents * action_dim, head, **kwargs)
        self.n_agents = n_agents
        self.register_buffer("agent_id", torch.eye(n_agents), persistent=False)

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> QOutput:
        if observation.shape[-2] != self.n_agents or action.shape[-2] != self.n_agents:
            raise ValueError(
                f"observation and action must be [*B, n_agents={self.n_agents}, ·], got "
                f"{tuple(observation.shape)} and {tuple(action.shape)}."
            )
        *batch, n, _ = observation.shape
        joint_obs = observation.flatten(-2).unsqueeze(-2).expand(*batch, n, -1)
        joint_action = action.flatten(-2).unsqueeze(-2).expand(*batch, n, -1)
        agent_id = self.agent_id.to(observation.dtype).expand(*batch, n, n)
        return super().forward(torch.cat([joint_obs, agent_id], -1), joint_action)


def make_critic(cfg: DictConfig, env: EnvBase) -> TensorDictModule | QCritic:
    """V per agent, ``("agents", "state_value")`` ``[*B, n_agents, 1]``, for the likelihood-ratio
    arms; Q (centralised or not, see the module doc) for the pathwise arm."""
    n_agents, obs_dim, act_dim = _dims(env)
    c = cfg.critic
    if cfg.algo.loss == "trudi_pathwise":
        a = cfg.algo
        q_args = {
            "head": HLGaussHead(a.v_min, a.v_max, num_bins=a.num_bins),
            "hidden_dim": c.hidden_dim,
            "encoder_layers": c.num_layers,
            "head_layers": c.num_layers,
            "next_embedding": a.embedding_coeff > 0,
        }
        if c.centralised:
            return JointQCritic(n_agents, obs_dim, act_dim, **q_args).to(cfg.device)
        return QCritic(obs_dim, act_dim, **q_args).to(cfg.device)
    net = MultiAgentMLP(
        n_agent_inputs=obs_dim,
        n_agent_outputs=1,
        n_agents=n_agents,
        centralized=c.centralised,
        share_params=c.share_params,
        device=cfg.device,
        depth=c.num_layers,
        num_cells=c.hidden_dim,
        activation_class=nn.Tanh,
    )
    return TensorDictModule(net, [OBSERVATION], [("agents", "state_value")])


def set_agent_keys(loss: LossModule) -> None:
    """Point a loss's reward, done, value, advantage and target keys at the agent level."""
    names = {
        "reward": REWARD,
        "done": ("agents", "done"),
        "terminated": ("agents", "terminated"),
        "value": ("agents", "state_value"),
        "advantage": ("agents", "advantage"),
        "value_target": ("agents", "value_target"),
    }
    if hasattr(loss.tensor_keys, "next_embedding"):  # the pathwise loss's auxiliary target
        names["next_embedding"] = ("agents", "next_embedding")
    loss.set_keys(**names)


def make_loss(cfg: DictConfig, env: EnvBase) -> tuple[LossModule, nn.Module]:
    """``(loss, policy)`` for ``cfg.algo``, every key at the agent level, with its value estimator
    (``loss.value_estimator``: GAE for TruDi and MAPPO, soft lambda-returns for pathwise TruDi)."""
    policy = make_policy(cfg, env)
    critic = make_critic(cfg, env)
    a = cfg.algo
    if a.loss == "clip_ppo":
        loss = MAPPOLoss(
            policy,
            critic,
            clip_epsilon=a.clip_epsilon,
            entropy_bonus=a.entropy_coeff > 0,
            entropy_coeff=a.entropy_coeff,
            critic_coeff=a.critic_coeff,
            loss_critic_type="l2",
            normalize_advantage=True,
            functional=False,
        )
    else:
        loss = build_loss(cfg, policy, critic)
    if a.loss != "trudi_pathwise":
        # Standardise advantages over samples, per agent (not over the agent dim), as TorchRL's
        # multi-agent example does.
        loss.normalize_advantage_exclude_dims = (-2,)
    set_agent_keys(loss)
    if a.loss != "trudi_pathwise":
        loss.make_value_estimator(ValueEstimators.GAE, gamma=cfg.gamma, lmbda=cfg.lmbda)
    return loss.to(cfg.device), policy


def broadcast_team_done(data: TensorDictBase) -> TensorDictBase:
    """Copy the team ``done``/``terminated`` ``[*B, 1]`` to every agent, ``[*B, n_agents, 1]``."""
    shape = data.get_item_shape(("next", *REWARD))
    for name in ("done", "terminated"):
        data.set(("next", "agents", name), data.get(("next", name)).unsqueeze(-1).expand(shape))
    return data

"""Multi-agent TruDi on VMAS, with TorchRL's MAPPO (Gaussian head) as the baseline.

    python -m examples.multiagent                                  # TruDi on navigation, CPU
    python -m examples.multiagent algo=mappo                       # the Gaussian MAPPO baseline
    python -m examples.multiagent --multirun algo=trudi,mappo      # both, one run each
    python -m examples.multiagent env.scenario=balance env.num_envs=4096 device=cuda

Reads top to bottom: environment, policy heads, critic, loss, then the training loop. Every
hyperparameter is in ``examples/conf/multiagent/config.yaml``.

Data layout (TorchRL's multi-agent convention, as :class:`~torchrl.envs.libs.vmas.VmasEnv` writes
it): per-agent entries live under ``"agents"`` with shape ``[envs, time, n_agents, ·]``; VMAS
rewards are per agent, ``("next", "agents", "reward")``, while ``done``/``terminated`` are team-level
``[envs, time, 1]`` and are broadcast along the agent dim before GAE, as in TorchRL's
``multiagent/mappo_ippo.py``. The diffusion policy's chain keys are renamed under ``"agents"``,
so every agent's chain is one row of the trust-region projection.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import ValueEstimators
from torchrl.objectives.multiagent import MAPPOLoss

from examples.plotting import arm_colour
from trudi.constraints import TrajectoryKLProjection
from trudi.learners import TruDiLoss
from trudi.policies import DenoiserMLP, DiffusionPolicy
from trudi.samplers import AncestralSampler, CosineSchedule

log = logging.getLogger(__name__)

OBSERVATION = ("agents", "observation")
ACTION = ("agents", "action")
REWARD = ("agents", "reward")
EPISODE_REWARD = ("agents", "episode_reward")
_LOGGED = (
    "kl_trajectory_after",
    "frac_projected",
    "kl_approx",
    "clip_fraction",
    "explained_variance",
)


def make_env(cfg: DictConfig) -> TransformedEnv:
    """``num_envs`` vectorized VMAS envs on ``cfg.device``, tracking each agent's episode return."""
    env = VmasEnv(
        scenario=cfg.env.scenario,
        num_envs=cfg.env.num_envs,
        continuous_actions=True,
        max_steps=cfg.env.max_steps,
        device=cfg.device,
        seed=cfg.seed,
        **cfg.env.scenario_kwargs,
    )
    return TransformedEnv(env, RewardSum(in_keys=[REWARD], out_keys=[EPISODE_REWARD]))


def _dims(env) -> tuple[int, int, int]:
    """``(n_agents, observation_dim, action_dim)``."""
    return (
        env.n_agents,
        env.observation_spec[OBSERVATION].shape[-1],
        env.full_action_spec[ACTION].shape[-1],
    )


def make_diffusion_policy(cfg: DictConfig, env) -> DiffusionPolicy:
    """TruDi's head: one chain per agent, shared or per-agent denoiser weights."""
    n_agents, obs_dim, act_dim = _dims(env)
    p = cfg.policy
    denoiser = DenoiserMLP(
        obs_dim,
        act_dim,
        p.num_steps,
        hidden_dim=p.hidden_dim,
        num_blocks=p.num_blocks,
        layer_norm=True,
        n_agents=None if p.share_params else n_agents,
    )
    policy = DiffusionPolicy(
        denoiser,
        AncestralSampler(CosineSchedule(p.num_steps), min_std=p.min_std),
        action_spec=env.full_action_spec_unbatched[ACTION],
        learn_scale=True,
        min_std=p.min_std,
        validate_args=False,  # the check syncs the host in every update
    )
    # Every policy key (observation, action, chain) under "agents", so they carry the agent dim.
    return policy.set_keys(policy.tensor_keys.prefixed("agents"))


def make_gaussian_actor(cfg: DictConfig, env) -> ProbabilisticActor:
    """The MAPPO baseline's head, as in TorchRL's ``mappo_ippo.py``: MLP → TanhNormal."""
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
            depth=p.depth,
            num_cells=p.hidden_dim,
            activation_class=nn.Tanh,
        ),
        NormalParamExtractor(scale_lb=1e-4),
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


def make_critic(cfg: DictConfig, env) -> TensorDictModule:
    """``V`` per agent, ``("agents", "state_value")`` ``[*B, n_agents, 1]``.

    Centralised (MAPPO): every agent's value sees all agents' observations; decentralised (IPPO):
    each agent's value sees its own.
    """
    n_agents, obs_dim, _ = _dims(env)
    c = cfg.critic
    net = MultiAgentMLP(
        n_agent_inputs=obs_dim,
        n_agent_outputs=1,
        n_agents=n_agents,
        centralized=c.centralised,
        share_params=c.share_params,
        device=cfg.device,
        depth=c.depth,
        num_cells=c.hidden_dim,
        activation_class=nn.Tanh,
    )
    return TensorDictModule(net, [OBSERVATION], [("agents", "state_value")])


def make_loss(cfg: DictConfig, env):
    """``(loss, policy)`` for ``cfg.algo``, with the PPO keys moved to the agent level."""
    critic = make_critic(cfg, env)
    c = cfg.loss
    common = {
        "critic_coeff": c.critic_coeff,
        "normalize_advantage": c.normalize_advantage,
        "normalize_advantage_exclude_dims": (-2,),
        "entropy_bonus": False,
    }
    if cfg.algo == "trudi":
        policy = make_diffusion_policy(cfg, env)
        projection = TrajectoryKLProjection(c.mean_bound, c.cov_bound, validate_args=False)
        loss = TruDiLoss(
            policy, critic, projection, trust_region_coeff=c.trust_region_coeff, **common
        )
    elif cfg.algo == "mappo":
        policy = make_gaussian_actor(cfg, env)
        loss = MAPPOLoss(policy, critic, clip_epsilon=c.clip_epsilon, **common)
    else:
        raise ValueError(f"algo must be 'trudi' or 'mappo', got {cfg.algo!r}")
    set_agent_keys(loss)
    loss.make_value_estimator(ValueEstimators.GAE, gamma=c.gamma, lmbda=c.lmbda)
    return loss.to(cfg.device), policy.to(cfg.device)


def set_agent_keys(loss) -> None:
    """Point a PPO-style loss's reward, done, value and advantage keys at the agent level."""
    loss.set_keys(
        reward=REWARD,
        done=("agents", "done"),
        terminated=("agents", "terminated"),
        value=("agents", "state_value"),
        advantage=("agents", "advantage"),
        value_target=("agents", "value_target"),
    )


def broadcast_team_done(data: TensorDictBase) -> TensorDictBase:
    """Copy the team ``done``/``terminated`` ``[*B, 1]`` to every agent, ``[*B, n_agents, 1]``."""
    shape = data.get_item_shape(("next", *REWARD))
    for name in ("done", "terminated"):
        data.set(("next", "agents", name), data.get(("next", name)).unsqueeze(-1).expand(shape))
    return data


def episode_return(data: TensorDictBase) -> float:
    """Mean over agents and finished episodes of the episode return (nan if none finished)."""
    done = data.get(("next", "done")).squeeze(-1)
    returns = data.get(("next", *EPISODE_REWARD)).mean((-2, -1))[done]
    return returns.mean().item() if returns.numel() else math.nan


def train(cfg: DictConfig) -> list[dict[str, float]]:
    """Train ``cfg.algo`` on ``cfg.env.scenario``; one row of metrics per iteration."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    env = make_env(cfg)
    loss, policy = make_loss(cfg, env)
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.optim.lr)
    collector = Collector(
        env,
        policy,
        frames_per_batch=cfg.collector.frames_per_batch,
        total_frames=cfg.collector.total_frames,
        device=cfg.device,
        auto_register_policy_transforms=False,
    )
    try:
        from tqdm import tqdm

        bar = tqdm(total=cfg.collector.total_frames, disable=not cfg.log.progress_bar)
    except ImportError:  # the progress bar is optional
        bar = None
    history, frames, start = [], 0, time.perf_counter()
    for data in collector:
        data = broadcast_team_done(data)
        with torch.no_grad():
            loss.value_estimator(
                data,
                params=loss.critic_network_params,
                target_params=loss.target_critic_network_params,
            )
        flat = data.reshape(-1)
        metrics: dict[str, list[torch.Tensor]] = {}
        for _ in range(cfg.optim.num_epochs):
            for idx in torch.randperm(flat.numel(), device=flat.device).split(
                cfg.optim.minibatch_size
            ):
                out = loss(flat[idx])
                total = sum(v for k, v in out.items() if k.startswith("loss_"))
                optimizer.zero_grad()
                total.backward()
                nn.utils.clip_grad_norm_(loss.parameters(), cfg.optim.max_grad_norm)
                optimizer.step()
                for k, v in out.items():
                    metrics.setdefault(k, []).append(v.detach())
        collector.update_policy_weights_()

        frames += data.numel()
        row = {
            "frames": frames,
            "time_s": time.perf_counter() - start,
            "return": episode_return(data),
            "reward_per_step": data.get(("next", *REWARD)).mean().item(),
        }
        row |= {k: torch.stack(v).float().mean().item() for k, v in metrics.items()}
        history.append(row)
        if bar is not None:
            bar.update(data.numel())
            shown = {"ret": f"{row['return']:.3f}"} if math.isfinite(row["return"]) else {}
            bar.set_postfix(shown, t=f"{row['time_s']:.0f}s")
        log.info(
            "frames %d  return %.3f  reward/step %.4f  %s",
            frames,
            row["return"],
            row["reward_per_step"],
            "  ".join(f"{k} {row[k]:.4g}" for k in _LOGGED if k in row),
        )
    collector.shutdown()
    if bar is not None:
        bar.close()
    return history


def write_csv(history: list[dict[str, float]], path: Path) -> None:
    names = sorted({k for row in history for k in row})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(history)


def plot_curves(curves: dict[str, list[dict[str, float]]], path: Path, title: str) -> None:
    """One line per arm (``curves``' keys, in the arm's colour): episode return against env frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, history in curves.items():
        frames, returns = [r["frames"] for r in history], [r["return"] for r in history]
        ax.plot(frames, returns, label=label, color=arm_colour(label))
    ax.set(xlabel="env frames", ylabel="episode return (mean over agents)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: DictConfig, out_dir: Path) -> list[dict[str, float]]:
    """Train, then write the metrics CSV and the learning curve to ``out_dir``, which must not
    hold another run's."""
    used = [name for name in (cfg.log.csv, cfg.log.plot) if (out_dir / name).exists()]
    if used:
        raise FileExistsError(
            f"{out_dir} holds another run's {', '.join(used)}; a new run never overwrites one: "
            "start it elsewhere with hydra.run.dir=<dir>."
        )
    history = train(cfg)
    write_csv(history, out_dir / cfg.log.csv)
    title = f"{cfg.algo} on {cfg.env.scenario}"
    plot_curves({cfg.algo: history}, out_dir / cfg.log.plot, title)
    first, last = history[0], history[-1]
    print(
        f"{title}: return {first['return']:.3f} -> {last['return']:.3f} over "
        f"{last['frames']} frames in {last['time_s']:.0f} s; outputs in {out_dir}"
    )
    return history


def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    import hydra

    config_dir = Path(__file__).resolve().parent / "conf" / "multiagent"
    hydra.main(config_path=str(config_dir), config_name="config", version_base=None)(main)()

"""The example's trust-region diagnostics: how tight the trajectory bound is, and a bound adapted to it.

``diagnostics.kl_tightness_every=N`` (0: off): every N iterations, a few dozen states of the batch
(``diagnostics.kl_states``) and a few hundred chains per state and policy
(``diagnostics.kl_samples``) measure, between the behaviour policy (a copy taken before the update)
and the updated policy, with :func:`trudi.diagnostics.marginal_kl`:

- ``kl_marginal``: the k-NN estimate of the marginal KL(old ‖ new) of x_0, averaged over the
  states, and ``kl_marginal_se``, its standard error over the states;
- ``kl_trajectory_update``: the exact trajectory KL(old ‖ new) of the whole update, on chains of
  the old policy at the same states (``kl_trajectory_*`` of the losses are per minibatch);
- ``kl_tightness_ratio`` = ``kl_marginal / kl_trajectory_update``: 1 where the bound on the chain
  is a bound on the action, ~0.09 for the analytic chain where the trajectory KL was 11x the
  marginal one.

Every arm is measured. For the Gaussian arms (PPO, TRPL, REPPO: a chain with K = 1) the two KLs are
the same quantity, so their ratio is the k-NN estimator's own error at that action dimension and
sample size, in the same run: the control against which the diffusion arms' ratio is read (the
estimator is biased in high dimensions, ``trudi/diagnostics/knn_kl.py``).

``projection.adaptive=true`` (needs ``kl_tightness_every`` >= 1): after each measurement a
:class:`trudi.constraints.AdaptiveBound` scales the arm's bounds toward
``projection.marginal_target`` (the projection's ``mean_bound`` and ``cov_bound`` for TruDi, TRPL
and pathwise TruDi with ``trust_region=projection``; ``algo.kl_bound`` of the split gate for
pathwise TruDi and REPPO), logged as ``trust_region_scale`` (the scale in force during that
update). Its state is saved in the checkpoint.

The measurement runs after the iteration's timing (``wall_clock`` and ``steps_per_second``
exclude it, as they exclude evaluation), makes one host sync of its own, and draws its random
numbers inside ``torch.random.fork_rng`` from a seed of the run, the rank and the iteration: a
run with the diagnostic on trains exactly as one with it off, and resumes exactly.
"""

from __future__ import annotations

import copy
import math

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from torchrl.objectives import LossModule

from examples import distributed
from trudi.constraints import AdaptiveBound
from trudi.diagnostics import marginal_kl
from trudi.policies import ChainPolicy

__all__ = ["KLTightness"]

# Spacing of the measurement seeds per iteration: far from the ranks' seed offsets (+1 per rank).
_SEED_STRIDE = 7919


class KLTightness:
    """The diagnostic and the adaptive rule of one training run (one per rank).

    Args:
        cfg: the training config (``diagnostics.*``, ``projection.*``, ``algo.kl_bound``).
        loss: the arm's loss; its trust region is adapted in place.
        policy: the policy being trained.
        seed: this rank's seed.
    """

    def __init__(self, cfg: DictConfig, loss: LossModule, policy: ChainPolicy, seed: int) -> None:
        self.every = cfg.diagnostics.kl_tightness_every
        self.states = cfg.diagnostics.kl_states
        self.samples = cfg.diagnostics.kl_samples
        self.k = cfg.diagnostics.knn_k
        self.seed = seed
        self.policy = policy
        self.old = copy.deepcopy(policy).requires_grad_(False) if self.every else None
        self.loss = loss
        self.bounds = (cfg.projection.mean_bound, cfg.projection.cov_bound)
        self.gate = getattr(cfg.algo, "kl_bound", None)
        self.rule = None
        if cfg.projection.adaptive:
            self.rule = AdaptiveBound(
                cfg.projection.marginal_target,
                min_scale=cfg.projection.adaptive_min,
                max_scale=cfg.projection.adaptive_max,
            )
            self._apply()

    def due(self, iteration: int) -> bool:
        """Whether iteration ``iteration`` (from 0) is measured."""
        return self.every > 0 and (iteration + 1) % self.every == 0

    def before_update(self, iteration: int) -> None:
        """Keep the behaviour policy of a measured iteration (call after collecting)."""
        if self.due(iteration):
            self.old.load_state_dict(self.policy.state_dict())

    def after_update(self, iteration: int, batch: TensorDictBase) -> dict[str, float]:
        """The metrics of a measured iteration (nothing otherwise), then the adaptive step.

        Every rank calls it: the values are the ranks' means, so every rank adapts alike.
        """
        if not self.due(iteration):
            return {}
        observation = batch.reshape(-1).get(self.policy.tensor_keys.observation)
        device = observation.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed + _SEED_STRIDE * (iteration + 1))
            index = torch.randperm(observation.shape[0], device=device)[: self.states]
            kl = marginal_kl(self.old, self.policy, observation[index], self.samples, self.k)
        spread = kl.marginal.std() if kl.marginal.numel() > 1 else torch.zeros_like(kl.marginal[0])
        values = torch.stack(
            [
                kl.marginal.mean(),
                spread / math.sqrt(kl.marginal.numel()),
                kl.trajectory.mean(),
            ]
        ).float()
        marginal, error, trajectory = distributed.all_mean(values).tolist()
        metrics = {
            "kl_marginal": marginal,
            "kl_marginal_se": error,
            "kl_trajectory_update": trajectory,
            "kl_tightness_ratio": marginal / trajectory if trajectory > 0 else math.nan,
        }
        if self.rule is not None:
            metrics["trust_region_scale"] = self.rule.scale
            self.rule.step(marginal)
            self._apply()
        return metrics

    def _apply(self) -> None:
        projection = getattr(self.loss, "projection", None)
        if projection is not None:
            self.rule.apply(projection, *self.bounds)
        else:  # the pathwise split gate
            self.loss.kl_bound.fill_(self.rule.bound(self.gate))

    def state_dict(self) -> dict | None:
        """The adaptive rule's state (``None`` without one): the checkpoint's ``kl_tightness``."""
        return None if self.rule is None else self.rule.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.rule is None:
            return
        if state is None:
            raise ValueError(
                "projection.adaptive=true: the checkpoint holds no adaptive bound (kl_tightness)"
            )
        self.rule.load_state_dict(state)
        self._apply()

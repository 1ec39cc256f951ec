"""What TruDi's and DPPO's losses share: TorchRL's PPO machinery plus the policy's chain keys.

Both losses are :class:`torchrl.objectives.PPOLoss` subclasses, so the critic loss, the value
estimator (GAE by default, :meth:`make_value_estimator`), advantage normalisation, coefficients as
buffers, ``reduction``, loss masks, ``set_keys`` and the functional / non-functional modes are
TorchRL's own. This base adds the chain keys, reads the behaviour transitions, evaluates the current
transitions on the recorded chain (one batched denoiser call through the actor's ``get_dist``) and
assembles the output tensordict.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.objectives import PPOLoss

from trudi.policies import ChainKeys, ChainNormal
from trudi.validation import read_key

__all__ = ["ChainLoss"]

_CHAIN_KEY_NAMES = ("chain", "loc", "scale", "chain_log_prob")
_POLICY_KEYS = ChainKeys()


class ChainLoss(PPOLoss):
    """Base of the chain losses; not meant to be used directly.

    Args:
        actor_network: a chain policy (:class:`~trudi.policies.DiffusionPolicy` or
            :class:`~trudi.policies.GaussianPolicy`) whose ``get_dist(td)`` returns the current
            transitions on the recorded chain as a :class:`~trudi.policies.ChainNormal`.
        critic_network: the state-value network ``V(s)`` writing ``state_value``.
        **ppo_kwargs: every keyword of :class:`torchrl.objectives.PPOLoss` (``entropy_coeff``,
            ``critic_coeff``, ``loss_critic_type``, ``normalize_advantage``, ``reduction``,
            ``functional``, ``clip_value``, ``separate_losses``, …).
    """

    @dataclass
    class _AcceptedKeys(PPOLoss._AcceptedKeys):
        """PPO's keys plus the chain's; the chain keys are copied from the policy's
        :class:`~trudi.policies.ChainKeys` at construction, and renamable with :meth:`set_keys`.

        Attributes:
            chain: the recorded chain ``[*B, K+1, A]``; also PPO's ``action`` (what is scored).
            loc, scale: the behaviour transitions ``[*B, K, A]``.
            chain_log_prob: the behaviour per-step log-probs ``[*B, K]``; also PPO's
                ``sample_log_prob``.
        """

        action: NestedKey = _POLICY_KEYS.chain
        sample_log_prob: NestedKey = _POLICY_KEYS.chain_log_prob
        chain: NestedKey = _POLICY_KEYS.chain
        loc: NestedKey = _POLICY_KEYS.loc
        scale: NestedKey = _POLICY_KEYS.scale
        chain_log_prob: NestedKey = _POLICY_KEYS.chain_log_prob

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys

    def __init__(self, actor_network, critic_network=None, **ppo_kwargs) -> None:
        if not hasattr(actor_network, "get_dist"):
            raise ValueError(
                "actor_network must be a chain policy with get_dist(td) (e.g. trudi's "
                f"DiffusionPolicy or GaussianPolicy), got {type(actor_network).__name__}"
            )
        super().__init__(actor_network, critic_network, **ppo_kwargs)
        # Copy the policy's own key names, so a renamed (e.g. multi-agent) policy needs no
        # second set_keys call on the loss.
        policy_keys = getattr(actor_network, "tensor_keys", None)
        if isinstance(policy_keys, ChainKeys):
            self.set_keys(**{name: getattr(policy_keys, name) for name in _CHAIN_KEY_NAMES})

    def set_keys(self, **kwargs) -> None:
        # The chain is what the policy scores and the per-step log-prob is the behaviour score:
        # keep PPO's action / sample_log_prob keys tied to them.
        if "chain" in kwargs:
            kwargs.setdefault("action", kwargs["chain"])
        if "chain_log_prob" in kwargs:
            kwargs.setdefault("sample_log_prob", kwargs["chain_log_prob"])
        super().set_keys(**kwargs)

    def _set_in_keys(self) -> None:
        super()._set_in_keys()
        keys = self.tensor_keys
        self._in_keys = list({*self._in_keys, keys.chain, keys.loc, keys.scale})

    @property
    def out_keys(self):
        if self._out_keys is None:
            self._out_keys = self._loss_names()
        return self._out_keys

    @out_keys.setter
    def out_keys(self, values) -> None:
        self._out_keys = values

    def _loss_names(self) -> list[str]:
        names = ["loss_objective"]
        if self.entropy_bonus:
            names += ["entropy", "loss_entropy"]
        if self._has_critic:
            names.append("loss_critic")
        return names

    def _read(self, tensordict: TensorDictBase, name: str) -> torch.Tensor:
        return read_key(
            tensordict,
            getattr(self.tensor_keys, name),
            name,
            reader="loss",
            source="the policy writes it at collection",
            stored=True,
        )

    def _advantage(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The advantage ``[*B, 1]``, from the value estimator when the batch has none."""
        advantage = tensordict.get(self.tensor_keys.advantage, None)
        update_norm = advantage is None
        if advantage is None:
            self.value_estimator(
                tensordict,
                params=self._cached_critic_network_params_detached,
                target_params=self.target_critic_network_params,
            )
            advantage = tensordict.get(self.tensor_keys.advantage)
        return self._maybe_normalize_advantage(advantage, tensordict, update_norm=update_norm)

    def _current_transitions(self, tensordict: TensorDictBase) -> ChainNormal:
        """The current policy's transitions on the recorded chain, ``[*B, K, A]`` each.

        Returned per step (``log_prob`` and ``entropy`` are ``[*B, K]``) whether or not the policy
        scores whole chains.
        """
        with (
            self.actor_network_params.to_module(self.actor_network, preserve_module_state=False)
            if self.functional
            else contextlib.nullcontext()
        ):
            dist = self.actor_network.get_dist(tensordict)
        return ChainNormal(dist.loc, dist.scale, validate_args=False)

    @staticmethod
    def _broadcast(advantage: torch.Tensor, per_sample: torch.Tensor) -> torch.Tensor:
        """``advantage [*B, 1]`` viewed as ``[*B, 1, …, 1]`` to broadcast over the extra batch dims
        (e.g. agents) of ``per_sample [*B, *E, 1]``; matching shapes pass through unchanged.

        TorchRL does the same in a private helper (``ppo._broadcast_advantage_to_log_weight``);
        these few lines stand in for it so that a TorchRL release cannot break them.
        """
        extra = per_sample.dim() - advantage.dim()
        if extra <= 0 or per_sample.shape[: advantage.dim() - 1] != advantage.shape[:-1]:
            return advantage
        return advantage.reshape(*advantage.shape[:-1], *(1,) * extra, advantage.shape[-1])

    def _finish(
        self,
        tensordict: TensorDictBase,
        losses: dict[str, torch.Tensor],
        entropy: torch.Tensor,
        diagnostics: dict[str, torch.Tensor],
    ) -> TensorDict:
        """Add entropy and critic terms, reduce every ``loss_*`` entry, attach diagnostics."""
        td_out = TensorDict(losses)
        if self.entropy_bonus:
            td_out.set("entropy", entropy.detach().mean())
            td_out.set("loss_entropy", self._weighted_loss_entropy(entropy))
        if self._has_critic:
            loss_critic, value_clip_fraction, explained_variance = self.loss_critic(tensordict)
            td_out.set("loss_critic", loss_critic)
            if value_clip_fraction is not None:
                td_out.set("value_clip_fraction", value_clip_fraction)
            if explained_variance is not None:
                td_out.set("explained_variance", explained_variance.mean())
        td_out = td_out.named_apply(
            lambda name, value: (
                self._reduce_loss(value, tensordict).squeeze(-1)
                if name.startswith("loss_")
                else value
            ),
        )
        for name, value in diagnostics.items():
            td_out.set(name, value.detach())
        self._clear_weakrefs(
            tensordict,
            td_out,
            "actor_network_params",
            "critic_network_params",
            "target_actor_network_params",
            "target_critic_network_params",
        )
        return td_out

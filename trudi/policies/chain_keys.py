"""The tensordict keys of a chain policy, declared once: the policy owns them, losses copy them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tensordict.utils import NestedKey

__all__ = ["ChainKeys"]


@dataclass
class ChainKeys:
    """Keys read and written by a chain policy (``docs/design.md``, "Keys and shapes").

    Attributes:
        observation: the policy input ``[*B, O]``.
        action: ``squash(x_0)``, ``[*B, A]``.
        chain: x_K … x_0, ``[*B, K+1, A]``.
        loc, scale: the behaviour transitions, ``[*B, K, A]``.
        chain_log_prob: the behaviour per-step log-probs, ``[*B, K]``.
        log_prob: their sum, ``[*B]`` (the stored log-prob TorchRL's ``ClipPPOLoss`` reads).

    Example:
        >>> ChainKeys().prefixed("agents").chain
        ('agents', 'diffusion', 'chain')
    """

    observation: NestedKey = "observation"
    action: NestedKey = "action"
    chain: NestedKey = ("diffusion", "chain")
    loc: NestedKey = ("diffusion", "loc")
    scale: NestedKey = ("diffusion", "scale")
    chain_log_prob: NestedKey = ("diffusion", "chain_log_prob")
    log_prob: NestedKey = ("diffusion", "log_prob")

    def prefixed(self, prefix: NestedKey, *names: str) -> ChainKeys:
        """A copy with the keys ``names`` (default: all) nested under ``prefix``.

        ``prefix`` is a key (``"agents"`` or a tuple); multi-agent data keeps per-agent entries
        under ``"agents"`` so that they carry the agent dim: ``policy.set_keys(
        policy.tensor_keys.prefixed("agents"))``.
        """
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(f"prefixed got unknown key names {unknown}; expected some of {known}.")
        head = prefix if isinstance(prefix, tuple) else (prefix,)
        renamed = {}
        for name in names or known:
            key = getattr(self, name)
            renamed[name] = (*head, *(key if isinstance(key, tuple) else (key,)))
        return dataclasses.replace(self, **renamed)

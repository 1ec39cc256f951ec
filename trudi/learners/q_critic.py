"""The Q critic of the pathwise learners: Q(s, a) with an HL-Gauss head and a next-embedding head."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from trudi.learners.hl_gauss import HLGaussHead

__all__ = ["QCritic", "QOutput"]


class QOutput(NamedTuple):
    """What :class:`QCritic` returns.

    Attributes:
        value: Q(s, a), the expected bin centre, ``[*B, 1]``.
        logits: the HL-Gauss logits, ``[*B, num_bins]``.
        embedding: the encoder's features of (s, a), ``[*B, H]`` (the next-embedding target).
        predicted_next: the predicted features of the next (s', a'), ``[*B, H]``, or ``None``.
    """

    value: torch.Tensor
    logits: torch.Tensor
    embedding: torch.Tensor
    predicted_next: torch.Tensor | None


def _mlp(in_features: int, width: int, layers: int, out_features: int) -> nn.Sequential:
    """``layers`` normalised SiLU blocks, then a linear output (REPPO's FCNN shape)."""
    modules: list[nn.Module] = []
    for i in range(layers):
        modules += [nn.Linear(in_features if i == 0 else width, width), nn.LayerNorm(width)]
        modules.append(nn.SiLU())
    modules.append(nn.Linear(width if layers else in_features, out_features))
    return nn.Sequential(*modules)


class QCritic(nn.Module):
    """Q(s, a) as REPPO builds it: an encoder of [s, a], an HL-Gauss head, a next-embedding head.

    ``forward(observation [*B, O], action [*B, A])`` returns a :class:`QOutput`. The auxiliary head
    (REPPO's "next-embedding" loss) predicts the encoder features of the next state and a freshly
    sampled next action; the soft λ-return estimator stores that target next to the value target.

    Args:
        observation_dim, action_dim: O and A.
        head: the :class:`HLGaussHead` (range, bins, σ).
        hidden_dim: width (REPPO: 512).
        encoder_layers, head_layers: hidden layers of the encoder and the value head (REPPO: 2, 2).
        next_embedding: build the next-embedding predictor (``predicted_next`` is ``None`` without).

    Examples:
        >>> import torch
        >>> from trudi.learners import HLGaussHead, QCritic
        >>> critic = QCritic(3, 2, HLGaussHead(-10.0, 10.0), hidden_dim=32)
        >>> out = critic(torch.randn(5, 3), torch.rand(5, 2))
        >>> out.value.shape, out.logits.shape, out.predicted_next.shape
        (torch.Size([5, 1]), torch.Size([5, 151]), torch.Size([5, 32]))
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        head: HLGaussHead,
        *,
        hidden_dim: int = 512,
        encoder_layers: int = 2,
        head_layers: int = 2,
        next_embedding: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(head, HLGaussHead):
            raise ValueError(f"head must be an HLGaussHead, got {type(head).__name__}.")
        for name, value in (("observation_dim", observation_dim), ("action_dim", action_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        self.head = head
        self.encoder = _mlp(observation_dim + action_dim, hidden_dim, encoder_layers, hidden_dim)
        self.value_net = nn.Sequential(
            nn.SiLU(), _mlp(hidden_dim, hidden_dim, head_layers, head.num_bins)
        )
        self.predictor = (
            nn.Sequential(nn.SiLU(), _mlp(hidden_dim, hidden_dim, head_layers, hidden_dim))
            if next_embedding
            else None
        )

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> QOutput:
        embedding = self.encoder(torch.cat([observation, action], dim=-1))
        logits = self.value_net(embedding)
        predicted = None if self.predictor is None else self.predictor(embedding)
        return QOutput(self.head.value(logits), logits, embedding, predicted)

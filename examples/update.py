"""The example's policy update: epochs of minibatch steps over one collected batch."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase

from examples import distributed

__all__ = ["update"]


def update(cfg: DictConfig, loss, optimizer, batch: TensorDictBase) -> dict[str, torch.Tensor]:
    """``cfg.epochs`` passes of ``cfg.minibatches`` equal minibatches over ``batch`` (``[N, T]``,
    with advantages; a remainder of fewer than ``cfg.minibatches`` samples sits each pass out);
    returns each scalar loss output's mean over the updates, on the device: the update never
    waits for the host."""
    flat = batch.reshape(-1)
    size = flat.numel() // cfg.minibatches
    sums: dict[str, torch.Tensor] = {}
    updates = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(flat.numel(), device=flat.device)
        for index in order[: cfg.minibatches * size].split(size):
            try:
                out = loss(flat[index])
            except Exception:
                # Parameters made non-finite by an earlier step can fail a distribution's checks
                # (errors of any type): stop with the means so far, which the caller reports.
                if any(not v.isfinite() for k, v in sums.items() if k.startswith("loss_")):
                    return {key: value / updates for key, value in sums.items()}
                raise
            total = sum(v for k, v in out.items() if k.startswith("loss_"))
            optimizer.zero_grad()
            total.backward()
            distributed.average_gradients(loss.parameters())
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(loss.parameters(), cfg.max_grad_norm)
            optimizer.step()
            updates += 1
            for key, value in out.items():
                if value.numel() == 1:
                    sums[key] = sums.get(key, 0.0) + value.detach().float().reshape(())
    return {key: value / updates for key, value in sums.items()}

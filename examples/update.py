"""The example's policy update: epochs of minibatch steps over one collected batch."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase

from examples import distributed

__all__ = ["update"]


def _in_key_order(batch: TensorDictBase) -> TensorDictBase:
    """``batch`` with its keys in one fixed (sorted) order, sharing its tensors.

    A compiled loss guards on the order of its input's keys, and a collected batch's order is not
    fixed (the env's first reset writes its keys in another order than its steps): without this,
    ``compile=true`` recompiled the loss on later batches and the compiled update ran slower than
    the eager one.
    """
    keys = batch.keys(include_nested=True, leaves_only=True)
    return batch.select(*sorted(keys, key=lambda key: (key,) if isinstance(key, str) else key))


def update(cfg: DictConfig, loss, optimizer, batch: TensorDictBase) -> dict[str, torch.Tensor]:
    """``cfg.epochs`` passes of ``cfg.minibatches`` equal minibatches over ``batch`` (``[N, T]``,
    with advantages; a remainder of fewer than ``cfg.minibatches`` samples sits each pass out);
    returns each scalar loss output's mean over the updates, on the device: the update never
    waits for the host.

    Diagnostics that a loss computes on request only (``loss.metrics``: TruDi's projection
    metrics, ~5% of its eager update) are computed in the last epoch, once per sample, and their
    means are over its updates; the update itself is the same either way. A compiled loss
    (``cfg.compile``) keeps them on: there they cost little, and switching them would compile a
    second graph.
    """
    flat = _in_key_order(batch.reshape(-1))
    size = flat.numel() // cfg.minibatches
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def means() -> dict[str, torch.Tensor]:
        return {key: value / counts[key] for key, value in sums.items()}

    on_request = getattr(loss, "metrics", None) is True and not cfg.get("compile", False)
    try:
        for epoch in range(cfg.epochs):
            if on_request:
                loss.metrics = epoch == cfg.epochs - 1
            order = torch.randperm(flat.numel(), device=flat.device)
            for index in order[: cfg.minibatches * size].split(size):
                try:
                    out = loss(flat[index])
                except Exception:
                    # Parameters made non-finite by an earlier step can fail a distribution's
                    # checks (errors of any type): stop with the means so far, which the caller
                    # reports.
                    if any(not v.isfinite() for k, v in sums.items() if k.startswith("loss_")):
                        return means()
                    raise
                total = sum(v for k, v in out.items() if k.startswith("loss_"))
                optimizer.zero_grad()
                total.backward()
                distributed.average_gradients(loss.parameters())
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(loss.parameters(), cfg.max_grad_norm)
                optimizer.step()
                for key, value in out.items():
                    if value.numel() == 1:
                        sums[key] = sums.get(key, 0.0) + value.detach().float().reshape(())
                        counts[key] = counts.get(key, 0) + 1
    finally:
        if on_request:
            loss.metrics = True
    return means()

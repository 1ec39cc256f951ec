"""The example's update: projection metrics in the last epoch only, the update itself unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import open_dict

from examples.update import update
from tests.examples.helpers import collected_batch

pytest.importorskip("gymnasium")


def test_metrics_in_the_last_epoch_only_leave_the_update_unchanged():
    cfg, _, loss, optimizer, batch = collected_batch("epochs=3", "minibatches=2")
    twin = copy.deepcopy(loss)
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3, eps=1e-5)
    calls, outputs = [], []
    loss.register_forward_hook(lambda module, args, out: calls.append(module.metrics))
    twin.register_forward_hook(lambda module, args, out: outputs.append(out))
    torch.manual_seed(1)
    on_request = update(cfg, loss, optimizer, batch)
    always = copy.deepcopy(cfg)
    with open_dict(always):
        always.compile = True  # a compiled loss keeps its metrics on in every update
    torch.manual_seed(1)
    every_update = update(always, twin, twin_optimizer, batch)

    assert calls == [False] * 4 + [True] * 2 and loss.metrics is True
    for a, b in zip(loss.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    assert on_request.keys() == every_update.keys()
    for key in on_request:
        if key.startswith(("kl_", "frac_", "max_")):
            last_epoch = torch.stack([out[key] for out in outputs[-2:]]).mean()
            torch.testing.assert_close(on_request[key], last_epoch, msg=key)
        else:
            assert torch.equal(on_request[key], every_update[key]), key

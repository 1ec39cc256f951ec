"""ActionSquash maps [-1, 1] onto the spec's bounds."""

from __future__ import annotations

import pytest
import torch
from torchrl.data import Bounded

from trudi.policies import ActionSquash

SPEC = Bounded(torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0]), shape=(2,))


@pytest.mark.parametrize("mode", ["clip", "tanh"])
def test_bounds_and_midpoint(mode):
    squash = ActionSquash(mode, SPEC)
    x0 = torch.tensor([[-50.0, -50.0], [0.0, 0.0], [50.0, 50.0]])
    action = squash(x0)
    torch.testing.assert_close(action[0], SPEC.space.low)
    torch.testing.assert_close(action[1], torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(action[2], SPEC.space.high)


def test_none_is_identity():
    x0 = torch.randn(4, 2) * 10
    assert torch.equal(ActionSquash("none", SPEC)(x0), x0)


def test_bad_mode_raises():
    with pytest.raises(ValueError, match="squash"):
        ActionSquash("softsign")

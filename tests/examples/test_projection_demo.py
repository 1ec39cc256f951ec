"""examples/projection_demo.py runs and prints one row per divergence and mode."""

from __future__ import annotations

import torch

from examples import projection_demo


def test_projection_demo_prints_every_divergence_and_mode(capsys):
    torch.set_num_threads(2)
    projection_demo.main(["--threads", "1"])
    assert torch.get_num_threads() == 1
    rows = [line.split()[:2] for line in capsys.readouterr().out.splitlines() if "|" in line][1:]
    assert rows == [[d, m] for d in ("kl", "w2", "frobenius") for m in ("trajectory", "per_step")]

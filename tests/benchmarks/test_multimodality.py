"""benchmarks/multimodality.py: its per-state metrics on synthetic actions, its report, and a run
end to end on a tiny Pendulum checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from benchmarks import multimodality
from examples import train
from tests.examples.helpers import config


def synthetic(separation: float, seed: int) -> torch.Tensor:
    """``[4, 1000, 3]`` actions: N(0, 0.1² I) plus ``separation`` along the first dim for half."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(4, 1000, 3, generator=g)
    x[..., 0] += separation * torch.randint(0, 2, (4, 1000), generator=g) - separation / 2
    return x


def test_two_modes_score_above_their_gaussian_fit_and_one_mode_does_not():
    modes = multimodality.state_metrics(synthetic(0.8, seed=0))
    single = multimodality.state_metrics(synthetic(0.0, seed=1))
    for i in range(4):
        assert modes["silhouette"][i] > modes["silhouette_gaussian"][i] + 0.2
        assert abs(single["silhouette"][i] - single["silhouette_gaussian"][i]) < 0.05
        assert modes["bimodality_pc1"][i] > 5 / 9 > single["bimodality_pc1"][i]
        assert modes["bimodality_max_dim"][i] >= modes["bimodality_pc1"][i] - 0.05
    assert modes["at_bound"] == single["at_bound"] == [0.0] * 4


def test_actions_at_the_bounds_are_counted():
    actions = torch.zeros(1, 10, 2)
    actions[0, :3, 0] = 1.0
    actions[0, 3, 1] = -1.0
    assert multimodality.state_metrics(actions + 0.0)["at_bound"] == [pytest.approx(0.2)]


def test_report_and_figure(tmp_path):
    results = {"TruDi": multimodality.state_metrics(synthetic(0.8, 0))}
    results["Gaussian PPO"] = multimodality.state_metrics(synthetic(0.0, 1))
    text = multimodality.write_report(results, tmp_path, note="synthetic")
    rows = [line for line in text.splitlines() if line.startswith("| TruDi |")]
    assert len(rows) == 1 + 4 and "±" in rows[0] and rows[-1].startswith("| TruDi | 3 |")
    assert json.loads((tmp_path / "multimodality.json").read_text()).keys() == results.keys()
    multimodality.plot_states({"a": synthetic(0.8, 0), "b": synthetic(0.0, 1)}, tmp_path, 2)
    assert (tmp_path / "multimodality.png").stat().st_size > 0


def test_end_to_end_on_a_tiny_checkpoint(tmp_path, monkeypatch):
    for algo in ("trudi", "ppo"):
        train.train(config(f"algo={algo}", "total_frames=64", "eval_every=0"), tmp_path / algo)
    out = tmp_path / "report"
    monkeypatch.setattr(
        "sys.argv",
        [
            "multimodality",
            str(tmp_path / "trudi"),
            str(tmp_path / "ppo" / "checkpoint.pt"),
            "--states",
            "3",
            "--samples",
            "50",
            "--warmup",
            "5",
            "--plot-states",
            "2",
            "--out",
            str(out),
        ],
    )
    multimodality.main()
    saved = json.loads((out / "multimodality.json").read_text())
    assert saved.keys() == {"trudi", "ppo"}
    assert all(len(values) == 3 for values in saved["trudi"].values())
    assert (out / "multimodality.png").exists()

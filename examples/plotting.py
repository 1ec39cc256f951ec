"""Learning-curve plots with one colour per arm, the same in every figure of the examples and the
benchmarks (an arm missing from one figure does not shift the others' colours)."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

__all__ = ["arm_colour", "plot_learning_curve"]

# Matplotlib's default cycle; the Gaussian baselines (PPO, MAPPO) share a colour.
_ARM_COLOURS = {
    "trudi": "C0",
    "ppo": "C1",
    "mappo": "C1",
    "trpl": "C2",
    "dppo": "C3",
    "trudi_pathwise": "C4",
    "pathwise": "C4",
    "pathwise-split": "C4",
    "pathwise-projection": "C6",
    "reppo": "C5",
}
# The curves of one run: its arm's colour, told apart by line style.
_CURVES = (
    ("train_return", "training episodes", {"linestyle": ":"}),
    ("eval_return_deterministic", "eval, deterministic", {"marker": "."}),
    ("eval_return_stochastic", "eval, stochastic", {"marker": ".", "linestyle": "--"}),
)


def arm_colour(arm: str) -> str:
    """The arm's matplotlib colour; an arm not in the table gets a fixed one from its name."""
    return _ARM_COLOURS.get(arm, f"C{6 + zlib.crc32(arm.encode()) % 4}")


def plot_learning_curve(history: list[dict[str, float]], path: Path, title: str, arm: str) -> None:
    """Episode returns of one run against environment steps (``history``: one dict per iteration,
    with ``frames`` and whichever of the returns were measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, style in _CURVES:
        points = [(h["frames"], h[key]) for h in history if math.isfinite(h.get(key, math.nan))]
        if points:
            ax.plot(*zip(*points, strict=True), label=label, color=arm_colour(arm), **style)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title if ax.lines else f"{title} (no finished episode yet)")
    if ax.lines:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

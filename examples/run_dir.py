"""A training run's directory: a fresh run never overwrites an earlier one; a resumed run continues
only a checkpoint written under its own configuration, with logs that hold each step once.

Layout of a run directory (``outputs/<env>/<algo>/seed<seed>/`` unless ``hydra.run.dir=`` says
otherwise): ``config.yaml`` (the resolved configuration, written when the run starts),
``checkpoint.pt``, ``logs/`` (TorchRL's CSV logger: ``logs/scalars/<metric>.csv``, rows
``step,value``) and ``learning_curve.png``.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from examples.checkpoint import load_checkpoint

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_FORMAT",
    "RunDirectoryError",
    "check_resumable",
    "describe",
    "open_run",
    "resume_command",
    "trim_csv_logs",
]

CHECKPOINT = "checkpoint.pt"
# The layout of checkpoint.pt; a checkpoint of another layout is refused, not converted.
CHECKPOINT_FORMAT = 2
# What a run writes; any of them marks the directory as used.
_OUTPUTS = (CHECKPOINT, "logs", "learning_curve.png", "config.yaml")
# Fields that may change between a run and its resumption: they do not touch the training itself.
RESUME_MAY_CHANGE = frozenset({"resume", "progress_bar", "logger", "threads"})


class RunDirectoryError(ValueError):
    """The run directory does not fit the request: it holds another run, or nothing to resume."""


def describe(checkpoint: dict[str, Any]) -> str:
    """``"iteration 20 (81,920 of 499,712 env steps)"``."""
    return (
        f"iteration {checkpoint['iteration']} ({checkpoint['frames']:,} of "
        f"{checkpoint['budget']:,} env steps)"
    )


def _load(path: Path) -> dict[str, Any]:
    checkpoint = load_checkpoint(path)
    found = checkpoint.get("format", 1)
    if found != CHECKPOINT_FORMAT:
        raise RunDirectoryError(
            f"{path} has checkpoint format {found}, written by another version of "
            f"examples/train.py (this one reads format {CHECKPOINT_FORMAT}); start a new run "
            f"elsewhere with hydra.run.dir=<dir>."
        )
    return checkpoint


def open_run(out_dir: Path, resume: bool) -> dict[str, Any] | None:
    """The checkpoint to continue (``resume``), or ``None`` for a fresh run in an unused directory.

    Raises:
        RunDirectoryError: a fresh run into a directory that holds an earlier run's output, or
            ``resume`` where there is no checkpoint. The message says what to do instead.
    """
    path = out_dir / CHECKPOINT
    used = [name for name in _OUTPUTS if (out_dir / name).exists()]
    if resume:
        if path.exists():
            return _load(path)
        hint = "run without resume=true to start a fresh run there"
        if used:
            hint = (
                f"it holds {', '.join(used)} but no checkpoint; start a fresh run in another "
                "directory with hydra.run.dir=<dir>"
            )
        raise RunDirectoryError(
            f"resume=true: nothing to resume in {out_dir} (no {CHECKPOINT}); {hint}."
        )
    if used:
        state, advice = "", ""
        if path.exists():
            checkpoint = _load(path)
            finished = checkpoint["frames"] >= checkpoint["budget"]
            state = f", {'finished' if finished else 'stopped'} at {describe(checkpoint)}"
            advice = "" if finished else "Continue it with resume=true, or start"
        raise RunDirectoryError(
            f"{out_dir} holds an earlier run ({', '.join(used)}{state}); a new run never "
            f"overwrites one. {advice or 'Start'} this one elsewhere with hydra.run.dir=<dir> "
            "(or another seed, env or algo)."
        )
    return None


def _flatten(config: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        flat.update(_flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


_NO_DEFAULT = object()


def _schema_default(cfg: DictConfig, key: str) -> object:
    """The default of field ``key`` (dotted) in its config schema, if it has one."""
    *parents, name = key.split(".")
    node = OmegaConf.select(cfg, ".".join(parents)) if parents else cfg
    schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    for f in dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ():
        if f.name == name and f.default is not dataclasses.MISSING:
            return f.default
    return _NO_DEFAULT


def check_resumable(saved: dict, cfg: DictConfig, path: Path) -> None:
    """Refuse to resume a checkpoint written under another configuration (another head, bound,
    budget...), which would otherwise load silently when the parameter shapes happen to agree.
    A field added to the schema since the checkpoint was written passes at its default value."""
    old, new = _flatten(saved), _flatten(OmegaConf.to_container(cfg, resolve=True))
    changed = sorted(
        key
        for key in old.keys() | new.keys()
        if key.split(".")[0] not in RESUME_MAY_CHANGE
        and old.get(key) != new.get(key)
        and not (key not in old and new[key] == _schema_default(cfg, key))
    )
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise RunDirectoryError(
            f"resume=true: the checkpoint {path} was written under another configuration "
            f"({details}); resume with the same configuration or start a new run elsewhere "
            f"with hydra.run.dir=<dir>."
        )


def trim_csv_logs(log_dir: Path, last_step: int) -> None:
    """Drop the CSV log rows after ``last_step``: what a run logged between its last checkpoint
    and a hard stop, which the resumed run logs again."""
    for path in sorted((log_dir / "scalars").glob("*.csv")):
        rows = path.read_text().splitlines(keepends=True)
        kept = [row for row in rows if int(row.split(",", 1)[0]) <= last_step]
        if len(kept) < len(rows):
            path.write_text("".join(kept))


def resume_command(
    out_dir: Path, overrides: list[str], nproc: int = 1, module: str = "examples.train"
) -> str:
    """The shell command that continues the run of ``python -m <module>`` in ``out_dir`` launched
    with ``overrides`` (by torchrun on ``nproc`` ranks if ``nproc > 1``)."""
    python = sys.executable
    if Path(python).is_relative_to(Path.cwd()):
        python = os.path.relpath(python)
    kept = [
        o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("resume", "hydra.run.dir")
    ]
    launcher = [python] if nproc == 1 else ["torchrun", "--standalone", f"--nproc_per_node={nproc}"]
    words = [*launcher, "-m", module, *kept, "resume=true", f"hydra.run.dir={out_dir}"]
    return shlex.join(words)

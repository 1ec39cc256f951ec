"""``python -m examples.multiagent [overrides]``: the Hydra entry point of the multi-agent example."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from examples.config import ConfigError
from examples.interrupt import TrainingInterrupted
from examples.multiagent.config import CONFIG_DIR
from examples.multiagent.train import train
from examples.run_dir import CHECKPOINT, RunDirectoryError, resume_command


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    run = HydraConfig.get()
    out_dir = Path(run.runtime.output_dir)
    try:
        history = train(cfg, out_dir)
    except (ConfigError, RunDirectoryError) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt as stop:
        if isinstance(stop, TrainingInterrupted):
            when = "at" if stop.graceful else "at once; the last checkpoint is of"
            print(f"stopped {when} iteration {stop.checkpoint_iteration}; outputs in {out_dir}.")
        if (out_dir / CHECKPOINT).exists():
            overrides = list(run.overrides.task)
            command = resume_command(out_dir, overrides, module="examples.multiagent")
            print(f"resume with:\n  {command}")
        sys.exit(130)
    last = history[-1]
    ret = last.get("train_return")
    shown = "no finished episode yet" if ret is None else f"training return {ret:.3f}"
    print(f"done: {last['frames']:,} env steps, {shown}, {last['wall_clock']:.0f} s; in {out_dir}")
    return math.nan if ret is None else ret


if __name__ == "__main__":
    main()

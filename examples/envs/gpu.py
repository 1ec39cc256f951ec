"""GPU simulators through TorchRL's own wrappers: mjlab (MuJoCo Warp) and MuJoCo Playground (JAX).

Both need CUDA and an optional package; :func:`require` fails before anything is built, with a
message naming the backend, the task and what to install. The keys are renamed to the example's:
mjlab's observation groups ``policy`` / ``critic`` and Playground's ``state`` become
``observation`` / ``privileged_state``.

The example's learners run on the CPU, so the env's outputs are cast there (``DeviceCastTransform``);
a GPU training loop would drop that cast and keep everything on the simulator's device.

Known limits of the wrappers (TorchRL 0.14):

- ``MujocoPlaygroundEnv`` resets the whole vmapped batch when any env finishes (it keeps one JAX
  state for all of them) and reports no ``truncated``: here a ``StepCounter`` provides the time
  limit. It suits fixed-length tasks (the DeepMind Control suite); for early-terminating
  locomotion prefer mjlab, whose wrapper resets only the finished envs.
- mjlab's velocity tasks are mjlab's own (G1 velocity tracking), close to but not the same task as
  Playground's G1 joystick; its episode length is the task's ``episode_length_s``.
"""

from __future__ import annotations

import importlib.util

import torch
from torchrl.envs import DeviceCastTransform, EnvBase, RenameTransform, StepCounter, Transform

__all__ = ["make_mjlab_env", "make_playground_env", "require"]

INSTALL = {
    "mjlab": "pip install mjlab (MuJoCo Warp; needs an NVIDIA GPU)",
    "playground": "pip install playground 'jax[cuda12]' (MuJoCo Playground on JAX; needs a GPU)",
}
# The example's joystick tasks under mjlab's names (mjlab has a G1 velocity task, no T1).
MJLAB_TASKS = {"G1JoystickFlatTerrain-v1": "Mjlab-Velocity-Flat-Unitree-G1"}


def require(backend: str, task: str, module: str) -> None:
    """Fail with a message naming the backend, the task and what to install, before any build."""
    missing = []
    if importlib.util.find_spec(module) is None:
        missing.append(f"the {module!r} package is not installed")
    if not torch.cuda.is_available():
        missing.append("CUDA is not available")
    if missing:
        raise RuntimeError(
            f"env.backend={backend} cannot build task {task!r}: {' and '.join(missing)}. "
            f"Install: {INSTALL[backend]}; on a CPU machine use env.backend=envpool."
        )


def _renames(env: EnvBase, names: dict[str, str]) -> list[Transform]:
    present = {old: new for old, new in names.items() if old in env.observation_spec.keys()}
    if not present:
        return []
    return [RenameTransform(list(present), list(present.values()))]


def make_mjlab_env(
    name: str, num_envs: int, *, device: str | None = None
) -> tuple[EnvBase, list[Transform]]:
    """mjlab task ``name`` (an mjlab id, or one of :data:`MJLAB_TASKS`) with ``num_envs`` worlds."""
    task = MJLAB_TASKS.get(name, name)
    require("mjlab", task, "mjlab")
    from torchrl.envs import MJLabEnv

    env = MJLabEnv(task, num_envs=num_envs, device=device or "cuda:0")
    renames = _renames(env, {"policy": "observation", "critic": "privileged_state"})
    return env, [*renames, DeviceCastTransform("cpu", env.device)]


def make_playground_env(
    name: str, num_envs: int, *, max_episode_steps: int | None, device: str | None = None
) -> tuple[EnvBase, list[Transform]]:
    """MuJoCo Playground task ``name`` (EnvPool's ``-v1`` suffix dropped: ``"HumanoidWalk"``)."""
    task = name.removesuffix("-v1")
    require("playground", task, "mujoco_playground")
    from torchrl.envs import MujocoPlaygroundEnv

    env = MujocoPlaygroundEnv(task, batch_size=[num_envs], device=device or "cuda:0")
    transforms = _renames(env, {"state": "observation"})
    if max_episode_steps is not None:
        transforms.append(StepCounter(max_steps=max_episode_steps))
    return env, [*transforms, DeviceCastTransform("cpu", env.device)]

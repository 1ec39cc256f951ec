"""The training example's environments: one factory over EnvPool, Gymnasium, mjlab and Playground.

    from examples.envs import make_env
    env = make_env("HumanoidWalk-v1", 1024, seed=0, backend="envpool")

See :mod:`examples.envs.factory` for the keys every backend provides and
:mod:`examples.envs.state` for what a checkpoint restores per backend.
"""

from .envpool_env import EnvPoolEnv
from .factory import BACKENDS, env_options, make_env, normalizer
from .state import env_state, load_env_state

__all__ = [
    "BACKENDS",
    "EnvPoolEnv",
    "env_options",
    "env_state",
    "load_env_state",
    "make_env",
    "normalizer",
]

"""Environment throughput per backend, the EnvPool adapter's cost, and training frames/s.

    python -m benchmarks.envs [--seconds 2] [--repeats 3] [--sizes 64 256 1024 4096]
                              [--dmc-sizes 64 256 1024] [--playground-sizes 16 64]
                              [--iterations 3] [--skip-training]

1. Env steps/s (random actions, all envs together) per task family: raw EnvPool (``pool.step`` on
   numpy arrays), the adapter (``EnvPoolEnv.step_and_maybe_reset``), the example's whole env
   (``make_env``: adapter + RewardSum + RewardScaling + VecNorm) and Gymnasium's ``SyncVectorEnv``
   (``make_env(backend="gymnasium")``, Gymnasium tasks only); GPU backends where CUDA exists.
   HalfCheetah-v5 runs at ``--sizes``, HumanoidWalk-v1 at ``--dmc-sizes`` (EnvPool builds DMC envs at
   ~0.1 s each; the build time is in the table) and G1 at ``--playground-sizes``: EnvPool 1.2.5's
   Playground humanoids hold ~90 MB per env, so 256 of them exhaust a 24 GB machine.
2. Collection frames/s with TruDi's policy (K = 5): the example's loop against TorchRL's ``Collector``.
3. Training frames/s (collection + update): TruDi and Gaussian PPO at ``scale=default`` and
   ``scale=massive`` on HalfCheetah-v5 with EnvPool, and at ``scale=default`` with Gymnasium.

Variants are measured in alternating rounds and the best round of ``--repeats`` is kept, so a
neighbour's burst on a shared machine does not land on one variant only. Torch runs one thread.
Writes ``benchmarks/results/envs.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import envpool
import torch
from tensordict.nn import InteractionType, set_interaction_type
from torchrl.collectors import Collector

from examples import train
from examples.build import build_policy
from examples.checkpoint import load_checkpoint
from examples.config import compose_config
from examples.envs import make_env

FAMILIES = {  # family: (task, the option holding its sizes)
    "Gymnasium MuJoCo": ("HalfCheetah-v5", "sizes"),
    "DeepMind Control": ("HumanoidWalk-v1", "dmc_sizes"),
    "MuJoCo Playground": ("G1JoystickFlatTerrain-v1", "playground_sizes"),
}


def rate(step, batch: int, seconds: float) -> float:
    """Steps/s of ``step()`` (one call steps ``batch`` envs) over about ``seconds``."""
    step()
    calls, tic = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - tic) < seconds:
        step()
        calls += 1
    return calls * batch / elapsed


def best_of_rounds(variants: dict, batch: int, seconds: float, repeats: int) -> dict[str, float]:
    best = dict.fromkeys(variants, 0.0)
    for _ in range(repeats):
        for name, step in variants.items():
            best[name] = max(best[name], rate(step, batch, seconds))
    return best


def torchrl_stepper(env):
    """One ``step_and_maybe_reset`` per call, with one fixed random action as the raw rows use
    (sampling from the spec each step would cost more than the adapter itself)."""
    state = {"td": env.reset()}
    action = env.action_spec.rand()

    def step():
        _, state["td"] = env.step_and_maybe_reset(state["td"].set("action", action))

    return step


class _ReplayPool:
    """Stands in for an EnvPool pool with one recorded step and reset and no physics, so what
    remains is the TorchRL side's own cost per step (contention moves it far less than steps/s)."""

    def __init__(self, pool, actions):
        obs, reward, terminated, truncated, info = pool.step(actions)
        self.step_result = (obs, reward, terminated & False, truncated & False, info)
        self.reset_result = pool.reset()

    def step(self, actions):
        return self.step_result

    def reset(self, env_ids=None):
        return self.reset_result


def torchrl_cost_us(env, repeats: int = 500) -> float:
    """Microseconds per ``step_and_maybe_reset`` of ``env`` with its pool replaced by a replay."""
    adapter = env.base_env if hasattr(env, "base_env") else env
    pool = adapter.pool
    actions = adapter.action_spec.zero().numpy()
    adapter._pool = _ReplayPool(pool, actions)  # the benchmark's own stand-in, restored below
    try:
        step = torchrl_stepper(env)
        step()
        tic = time.perf_counter()
        for _ in range(repeats):
            step()
        return (time.perf_counter() - tic) / repeats * 1e6
    finally:
        adapter._pool = pool


def env_rows(task: str, n: int, args) -> dict[str, float]:
    """One pool per task and size (DMC and Playground pools take minutes to build at 1,024): the
    adapter is the example env's base and the raw rows step the adapter's own pool."""
    tic = time.perf_counter()
    env = make_env(task, n, seed=0, backend="envpool")
    build = time.perf_counter() - tic
    adapter = env.base_env
    actions = adapter.action_spec.rand().numpy()
    variants = {
        "raw EnvPool": lambda: adapter.pool.step(actions),
        "adapter": torchrl_stepper(adapter),
        "make_env": torchrl_stepper(env),
    }
    if task.endswith("-v5") and n <= args.gym_max:
        variants["Gymnasium"] = torchrl_stepper(make_env(task, n, seed=0, backend="gymnasium"))
    rows = best_of_rounds(variants, n, args.seconds, args.repeats)
    rows["build (s)"] = build
    rows["adapter us"] = torchrl_cost_us(adapter)
    rows["make_env us"] = torchrl_cost_us(env)
    env.close()
    return rows


def gpu_rows(args) -> dict[str, dict[str, float]]:
    if not torch.cuda.is_available():
        return {}
    rows = {}
    for backend, task in (("mjlab", "G1JoystickFlatTerrain-v1"), ("playground", "HumanoidWalk-v1")):
        for n in args.sizes:
            try:
                env = make_env(task, n, seed=0, backend=backend, max_episode_steps=1000)
            except (RuntimeError, ImportError) as err:
                print(f"{backend}: {err}")
                break
            rows[f"{backend} {task} {n}"] = rate(torchrl_stepper(env), n, args.seconds)
    return rows


def config(*overrides: str):
    return compose_config("progress_bar=false", "eval_every=0", *overrides)


def collection_rows(n: int, steps: int, args) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = config(f"num_envs={n}", f"rollout_length={steps}")
    env = make_env(cfg.env.name, n, seed=0, backend="envpool")
    policy = build_policy(cfg, env)
    state = {"td": env.reset()}

    def hand_loop():
        _, state["td"] = train.collect(env, policy, state["td"], steps)

    collector = Collector(
        make_env(cfg.env.name, n, seed=1, backend="envpool"),
        policy,
        frames_per_batch=n * steps,
        total_frames=-1,
        exploration_type=InteractionType.RANDOM,
        auto_register_policy_transforms=False,  # the policy needs no env transform
    )
    batches = iter(collector)

    def torchrl_collector():
        with torch.no_grad():
            next(batches)

    with set_interaction_type(InteractionType.RANDOM):
        rows = best_of_rounds(
            {"example loop": hand_loop, "Collector": torchrl_collector},
            n * steps,
            args.seconds,
            args.repeats,
        )
    collector.shutdown()
    return rows


def training_fps(overrides: list[str], iterations: int) -> tuple[float, float]:
    """Median frames/s and collection share over ``iterations`` after a warm-up iteration."""
    cfg = config(*overrides)
    cfg.total_frames = (iterations + 1) * cfg.num_envs * cfg.rollout_length
    cfg.checkpoint_every = 10**9
    with tempfile.TemporaryDirectory() as out:
        train.train(cfg, out)
        history = load_checkpoint(Path(out) / "checkpoint.pt")["history"][1:]
    return (
        statistics.median(h["steps_per_second"] for h in history),
        statistics.median(h["collect_fraction"] for h in history),
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--dmc-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--playground-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--gym-max", type=int, default=1024, help="largest Gymnasium batch")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "envs.md"
    )
    parser.add_argument("--note", default="", help="a line about the machine (e.g. shared)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    machine = (
        f"{os.cpu_count()} CPU cores, torch {torch.__version__} (1 thread), "
        f"EnvPool {envpool.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}"
    )
    sections = [
        "# Environment throughput (`benchmarks/envs.py`)",
        f"Command: `python -m benchmarks.envs {' '.join(sys.argv[1:])}`\n\nMachine: {machine}. "
        + args.note,
    ]

    rows = []
    for family, (task, sizes) in FAMILIES.items():
        for n in getattr(args, sizes):
            r = env_rows(task, n, args)
            raw = r["raw EnvPool"]
            gym = r.get("Gymnasium")
            step_ms = n / raw * 1e3
            rows.append(
                [
                    family,
                    task,
                    f"{n:,}",
                    f"{r['build (s)']:.1f}",
                    f"{raw:,.0f}",
                    f"{r['adapter']:,.0f}",
                    f"{r['adapter'] / raw:.0%}",
                    f"{r['make_env']:,.0f}",
                    f"{r['make_env'] / raw:.0%}",
                    "–" if gym is None else f"{gym:,.0f}",
                    f"{step_ms:.1f}",
                    f"{r['adapter us']:.0f} ({step_ms / (step_ms + r['adapter us'] / 1e3):.0%})",
                    f"{r['make_env us']:.0f} ({step_ms / (step_ms + r['make_env us'] / 1e3):.0%})",
                ]
            )
            print(rows[-1], flush=True)
    header = ["family", "task", "envs", "EnvPool build (s)", "raw EnvPool", "adapter"]
    header += ["adapter / raw", "make_env", "make_env / raw", "Gymnasium", "raw ms/step"]
    header += ["adapter µs/step (bound)", "make_env µs/step (bound)"]
    sections.append(
        "## Env steps/s (random actions, all envs together)\n\n"
        + table(header, rows)
        + "\n\nThe last two columns are the TorchRL side's own cost per step, measured with the pool"
        " replaced by a replay of one recorded step (no physics), and in brackets the fraction of raw"
        " EnvPool it leaves: raw ms/step / (raw ms/step + cost). Unlike the steps/s columns, they"
        " barely move with the machine's load."
    )
    gpu = gpu_rows(args)
    sections.append(
        "## GPU backends\n\n"
        + (
            table(["backend, task, envs", "steps/s"], [[k, f"{v:,.0f}"] for k, v in gpu.items()])
            if gpu
            else "No CUDA on this machine: the mjlab and playground rows were not run."
        )
    )

    rows = []
    for n, steps in ((64, 64), (1024, 16)):
        r = collection_rows(n, steps, args)
        rows.append([f"{n:,} x {steps}", f"{r['example loop']:,.0f}", f"{r['Collector']:,.0f}"])
        rows[-1].append(f"{r['Collector'] / r['example loop']:.0%}")
        print(rows[-1], flush=True)
    sections.append(
        "## Collection frames/s, TruDi policy (K = 5), HalfCheetah-v5 on EnvPool\n\n"
        + table(["envs x steps", "example loop", "TorchRL Collector", "Collector / loop"], rows)
    )

    if not args.skip_training:
        rows = []
        for scale, backend in (
            ("default", "gymnasium"),
            ("default", "envpool"),
            ("massive", "envpool"),
        ):
            for arm in ("trudi", "ppo"):
                fps, share = training_fps(
                    [f"scale={scale}", f"env.backend={backend}", f"algo={arm}"], args.iterations
                )
                rows.append([arm, scale, backend, f"{fps:,.0f}", f"{share:.0%}"])
                print(rows[-1], flush=True)
        sections.append(
            "## Training frames/s, HalfCheetah-v5 (collection + update)\n\n"
            + table(["algo", "scale", "backend", "frames/s", "collection share"], rows)
        )
    text = "\n\n".join(sections) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()

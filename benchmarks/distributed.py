"""Frames/s and update time of the training example on 1 and 2 data-parallel ranks.

    python -m benchmarks.distributed [--ranks 1 2] [--env halfcheetah] [--iterations 3]

Each rank is a process (``torch.multiprocessing``, gloo: the example's envs and networks live on
the CPU, so NCCL figures wait for an example that trains on GPUs) with one torch thread and its own
``num_envs`` envs, running the training example's own collect, VecNorm averaging and update
(``examples/train.py``, ``examples/update.py``, ``examples/distributed.py``) for ``--iterations``
timed iterations after one warm-up. Frames/s counts the env steps of all ranks; the update time
(``epochs`` x ``minibatches`` optimizer steps, each with one gradient all-reduce) is rank 0's. With
N ranks on N free cores, frames/s should grow ~N-fold at a flat update time; on fewer free cores
the ranks share them. Writes a Markdown table to stdout (and ``--out``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchrl.objectives.value import GAE

from examples import distributed
from examples.build import build_critic, build_loss, build_policy
from examples.config import compose_config
from examples.envs import make_env, normalizer
from examples.train import collect
from examples.update import update


def _rank(rank: int, world_size: int, store: str, args: argparse.Namespace, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    cfg = compose_config(f"env={args.env}", f"num_envs={args.num_envs}")
    seed = cfg.seed + rank
    torch.manual_seed(seed)
    env = make_env(cfg.env.name, cfg.num_envs, seed=cfg.seed + rank * cfg.num_envs)
    policy, critic = build_policy(cfg, env), build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    distributed.broadcast_parameters(loss)
    advantage = GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=critic, average_gae=False)
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr, eps=1e-5)
    td = env.reset()
    times = []
    reducing = [0.0]  # time in the gradient all-reduce (which waits for the slower rank)
    average = distributed.average_gradients

    def timed(parameters):
        tic = time.perf_counter()
        average(parameters)
        reducing[0] += time.perf_counter() - tic

    distributed.average_gradients = timed
    for _ in range(args.iterations + 1):
        dist.barrier()
        tic = time.perf_counter()
        batch, td = collect(env, policy, td, cfg.rollout_length)
        distributed.average_normalizer(normalizer(env))
        with torch.no_grad():
            advantage(batch)
        dist.barrier()
        toc = time.perf_counter()
        reducing[0] = 0.0
        update(cfg, loss, optimizer, batch)
        dist.barrier()
        times.append((toc - tic, time.perf_counter() - toc, reducing[0]))
    distributed.average_gradients = average
    if rank == 0:
        collect_s, update_s, reduce_s = (
            sum(t[i] for t in times[1:]) / args.iterations for i in range(3)
        )
        frames = world_size * cfg.num_envs * cfg.rollout_length
        result = {"frames": frames, "collect": collect_s, "update": update_s, "reduce": reduce_s}
        torch.save(result, out)
    env.close()
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--env", default="halfcheetah", help="an env= option of examples/conf")
    parser.add_argument("--num-envs", type=int, default=16, help="envs per rank")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per run")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    rows = [
        "| ranks | frames / iteration | collect (s) | update (s) | of which all-reduce (s) "
        "| frames/s |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.ranks:
            out = os.path.join(tmp, f"ranks{n}.pt")
            mp.spawn(_rank, args=(n, os.path.join(tmp, f"store{n}"), args, out), nprocs=n)
            r = torch.load(out)
            fps = r["frames"] / (r["collect"] + r["update"])
            rows.append(
                f"| {n} | {r['frames']:,} | {r['collect']:.2f} | {r['update']:.2f} | "
                f"{r['reduce']:.2f} | {fps:,.0f} |"
            )
    table = "\n".join(rows)
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()

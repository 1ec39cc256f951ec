"""Data-parallel training on two gloo ranks (CPU), spawned inside the tests: the ranks keep identical
parameters, normalisers and loss buffers, take the step one process takes on both ranks' batches,
write files from rank 0 only, and a killed two-rank run resumes from its checkpoint."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.optim.optimizer import register_optimizer_step_post_hook
from torchrl.objectives.value import GAE

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from examples import distributed, train
from examples.build import build_critic, build_loss, build_policy
from examples.checkpoint import load_checkpoint
from examples.envs import make_env
from tests.examples.helpers import config

RANKS = 2
# 2 ranks x 4 envs x 16 steps = 128 frames per iteration: 4 iterations, checkpoints after 2 and 4.
RUN = ("total_frames=512", "checkpoint_every=2", "eval_every=2")
COMPARED = ("loss_objective", "loss_critic", "loss_trust_region", "train_return")


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


def _join(rank: int, store: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=RANKS)


def _spawn(worker, tmp_path: Path, *args) -> None:
    """Run ``worker(rank, store, tmp_path, *args)`` on two ranks, forked: a spawned rank would import
    torch, TorchRL and Gymnasium again (seconds per rank on a busy machine)."""
    store = tmp_path / f"store-{worker.__name__}-{len(list(tmp_path.glob('store-*')))}"
    mp.start_processes(worker, args=(store, tmp_path, *args), nprocs=RANKS, start_method="fork")


# -- one update on two ranks against one process on both batches -------------------------------


def _update_cfg():
    # One full-batch minibatch per epoch, without per-minibatch advantage normalisation: the
    # loss is a mean over the minibatch, so the mean of the ranks' gradients is the gradient on
    # the union of their batches.
    return config("algo=trudi", "epochs=3", "minibatches=1")


def _build(cfg, seed: int):
    torch.manual_seed(seed)
    env = make_env(cfg.env.name, cfg.num_envs, seed=seed)
    policy = build_policy(cfg, env)
    critic = build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    loss.normalize_advantage = False
    return env, policy, critic, loss


def _update_worker(rank: int, store: Path, out: Path) -> None:
    _join(rank, store)
    cfg = _update_cfg()
    env, policy, critic, loss = _build(cfg, seed=rank)  # different inits: the broadcast matters
    distributed.broadcast_parameters(loss)
    start = _flat(loss.parameters())
    batch, _ = train.collect(env, policy, env.reset(), cfg.rollout_length)
    with torch.no_grad():
        GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=critic, average_gae=False)(batch)
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr, eps=1e-5)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(_flat(loss.parameters())))
    train.update(cfg, loss, optimizer, batch)
    torch.save({"start": start, "batch": batch, "steps": steps}, out / f"update{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_take_the_step_of_one_process_on_both_batches(tmp_path):
    _spawn(_update_worker, tmp_path)
    ranks = [torch.load(tmp_path / f"update{r}.pt", weights_only=False) for r in range(RANKS)]
    assert torch.equal(ranks[0]["start"], ranks[1]["start"])
    assert len(ranks[0]["steps"]) == 3
    for a, b in zip(ranks[0]["steps"], ranks[1]["steps"], strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(ranks[0]["batch"]["observation"], ranks[1]["batch"]["observation"])

    cfg = _update_cfg()
    _, _, _, loss = _build(cfg, seed=0)
    torch.nn.utils.vector_to_parameters(ranks[0]["start"], loss.parameters())
    optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr, eps=1e-5)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(_flat(loss.parameters())))
    both = torch.cat([ranks[0]["batch"], ranks[1]["batch"]], dim=0)  # [2N, T]
    train.update(cfg, loss, optimizer, both)
    for one, two in zip(steps, ranks[0]["steps"], strict=True):
        torch.testing.assert_close(two, one, rtol=1e-4, atol=1e-6)


# -- whole training runs --------------------------------------------------------------------------


def _written(out_dir: Path, record: list[str]):
    """An audit hook recording every file or folder this process creates or changes in ``out_dir``."""
    root = str(out_dir.resolve())
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, Path)):
            mode, flags = args[1] or "", args[2] or 0
            if any(c in mode for c in "wax+") or flags & writes:
                path = str(Path(args[0]).resolve())
                if path.startswith(root):
                    record.append(path)
        elif event in ("os.mkdir", "os.rename", "os.remove"):  # os.replace is "os.rename"
            if str(Path(str(args[0])).resolve()).startswith(root):
                record.append(f"{event} {' '.join(map(str, args[:2]))}")

    return hook


def _run_worker(rank: int, store: Path, tmp: Path, name: str, kill_after: int, *extra) -> None:
    _join(rank, store)
    out_dir = tmp / name
    built, record, writes = [], [], []
    sys.addaudithook(_written(out_dir, writes))
    build = train.build_loss
    train.build_loss = lambda *a: built.append(build(*a)) or built[-1]
    average = distributed.average_normalizer

    def averaged(obs_norm):
        average(obs_norm)
        record.append({"normalizer": _flat(obs_norm.get_extra_state().values())})

    distributed.average_normalizer = averaged
    hook = register_optimizer_step_post_hook(
        lambda opt, *_: record.append(
            {"step": _flat(p for g in opt.param_groups for p in g["params"])}
        )
    )

    def on_iteration(iteration, metrics):
        record.append({"state": _flat(built[0].state_dict().values())})
        if iteration == kill_after:
            os.kill(
                os.getpid(), signal.SIGKILL
            )  # after logging, before this iteration's checkpoint

    try:
        train.train(config(*RUN, *extra), out_dir, on_iteration=on_iteration)
    finally:
        hook.remove()
        distributed.average_normalizer = average
        train.build_loss = build
    torch.save({"record": record, "writes": writes}, tmp / f"{name}{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    _spawn(_run_worker, tmp, "full", 0)
    return tmp, [torch.load(tmp / f"full{r}.pt", weights_only=False) for r in range(RANKS)]


def test_ranks_keep_identical_parameters_normalisers_and_loss_state(full_run):
    _, (zero, one) = full_run
    assert len(zero["record"]) == len(one["record"])
    kinds = [next(iter(entry)) for entry in zero["record"]]
    # 4 iterations of 2 epochs x 2 minibatches, each after one normaliser averaging.
    assert (
        kinds.count("step") == 16 and kinds.count("normalizer") == 4 and kinds.count("state") == 4
    )
    for a, b in zip(zero["record"], one["record"], strict=True):
        (kind, x), (_, y) = *a.items(), *b.items()
        assert torch.equal(x, y), kind


def test_only_rank_zero_writes_files(full_run):
    tmp, (zero, one) = full_run
    assert one["writes"] == []
    assert any(path.endswith("/checkpoint.pt") for path in zero["writes"])  # the rename
    assert any(path.endswith("loss_objective.csv") for path in zero["writes"])
    ckpt = load_checkpoint(tmp / "full" / "checkpoint.pt")
    assert ckpt["world_size"] == RANKS and len(ckpt["other_ranks"]) == RANKS - 1
    assert ckpt["frames"] == 512 and "eval_return_deterministic" in ckpt["history"][-1]


def test_killed_two_rank_run_resumes_from_its_checkpoint(full_run, tmp_path):
    tmp, _ = full_run
    with pytest.raises(mp.ProcessExitedException):
        _spawn(_run_worker, tmp_path, "killed", 3)
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["iteration"] == 2
    _spawn(_run_worker, tmp_path, "killed", 0, "resume=true")
    full = load_checkpoint(tmp / "full" / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    assert resumed["iteration"] == 4
    for before, after in zip(full["history"], resumed["history"], strict=True):
        for key in COMPARED:
            assert before.get(key) == after.get(key), key
    for key, value in full["loss"].items():
        assert torch.equal(value, resumed["loss"][key]), key


def test_resume_with_another_number_of_ranks_is_refused(full_run, tmp_path):
    tmp, _ = full_run
    with pytest.raises(train.RunDirectoryError, match="written by 2 rank"):
        train.train(config(*RUN, "resume=true"), tmp / "full")


def test_docstring_example_runs_on_one_process():
    """Outside torchrun every call is that of a single rank."""
    import doctest

    result = doctest.testmod(distributed, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

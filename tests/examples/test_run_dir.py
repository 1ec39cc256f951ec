"""Run directories of the training example: a new run never destroys an earlier one; Ctrl-C
leaves a checkpoint, the plot and the exact resume command; a resumed run logs each step once."""

from __future__ import annotations

import shlex
import signal
import sys

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from examples import train
from examples.checkpoint import load_checkpoint
from examples.interrupt import TrainingInterrupted
from examples.run_dir import RunDirectoryError
from tests.examples.helpers import FRAMES_PER_ITERATION, TINY, config, logged_steps

FOUR = ("total_frames=256", "checkpoint_every=2", "eval_every=0")  # 4 iterations
STEPS = [FRAMES_PER_ITERATION * i for i in range(1, 5)]
COMPARED = ("loss_objective", "loss_critic", "loss_trust_region", "train_return")


def _after(n: int, stop):
    """An ``on_iteration`` hook that calls ``stop()`` after iteration ``n``."""

    def hook(iteration, metrics):
        if iteration == n:
            stop()

    return hook


def _keyboard_interrupt():
    raise KeyboardInterrupt


def _ctrl_c():
    signal.raise_signal(signal.SIGINT)


def _same_history(a, b):
    assert len(a) == len(b)
    for before, after in zip(a, b, strict=True):
        for key in COMPARED:
            assert before.get(key) == after.get(key), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    train.train(config(*FOUR), out)
    return load_checkpoint(out / "checkpoint.pt")["history"]


def test_ctrl_c_checkpoints_the_iteration_and_resume_continues_exactly(
    tmp_path, uninterrupted, capsys
):
    with pytest.raises(TrainingInterrupted) as stop:
        train.train(config(*FOUR), tmp_path, on_iteration=_after(3, _ctrl_c))
    assert stop.value.graceful and stop.value.checkpoint_iteration == 3
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 3
    assert (tmp_path / "learning_curve.png").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    train.train(config(*FOUR, "resume=true"), tmp_path)
    resumed = f"resumed {tmp_path / 'checkpoint.pt'} at iteration 3 (192 of 256 env steps)"
    assert resumed in capsys.readouterr().out
    _same_history(uninterrupted, load_checkpoint(tmp_path / "checkpoint.pt")["history"])
    assert logged_steps(tmp_path) == STEPS


def test_hard_stop_resumes_from_last_checkpoint_with_each_step_logged_once(tmp_path, uninterrupted):
    """Iteration 3 is logged, then the run dies before its checkpoint: the resumed run redoes it."""
    with pytest.raises(TrainingInterrupted) as stop:
        train.train(config(*FOUR), tmp_path, on_iteration=_after(3, _keyboard_interrupt))
    assert not stop.value.graceful and stop.value.checkpoint_iteration == 2
    assert logged_steps(tmp_path) == STEPS[:3]
    train.train(config(*FOUR, "resume=true"), tmp_path)
    assert logged_steps(tmp_path) == STEPS
    _same_history(uninterrupted, load_checkpoint(tmp_path / "checkpoint.pt")["history"])


def test_second_run_into_a_used_directory_refuses_and_destroys_nothing(tmp_path):
    train.train(config("total_frames=128", "eval_every=1"), tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(
        RunDirectoryError,
        match=r"finished at iteration 2 .*Start this one elsewhere with hydra\.run\.dir",
    ):
        train.train(config("total_frames=64"), tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_fresh_run_into_a_stopped_run_names_resume(tmp_path):
    with pytest.raises(TrainingInterrupted):
        train.train(config(*FOUR), tmp_path, on_iteration=_after(1, _ctrl_c))
    with pytest.raises(RunDirectoryError, match=r"stopped at iteration 1 .*resume=true"):
        train.train(config(*FOUR), tmp_path)


def test_resume_with_nothing_to_resume_fails(tmp_path):
    with pytest.raises(RunDirectoryError, match=r"nothing to resume.*without resume=true"):
        train.train(config("total_frames=64", "resume=true"), tmp_path)
    assert not any(tmp_path.iterdir())


def test_resuming_a_finished_run_says_so(tmp_path, capsys):
    first = train.train(config("total_frames=128", "eval_every=0"), tmp_path)
    again = train.train(config("total_frames=128", "eval_every=0", "resume=true"), tmp_path)
    assert "already finished at iteration 2 (128 of 128 env steps)" in capsys.readouterr().out
    assert again == first


def test_resume_refuses_another_configuration(tmp_path):
    overrides = ("total_frames=128", "checkpoint_every=1", "eval_every=0")
    with pytest.raises(TrainingInterrupted):
        train.train(config(*overrides), tmp_path, on_iteration=_after(1, _ctrl_c))
    with pytest.raises(RunDirectoryError, match=r"policy\.activation: 'silu' -> 'mish'"):
        train.train(config(*overrides, "resume=true", "policy.activation=mish"), tmp_path)
    # Fields that do not touch the training may change.
    train.train(config(*overrides, "resume=true", "threads=2", "progress_bar=true"), tmp_path)


def test_command_line_prints_the_exact_resume_command(tmp_path, monkeypatch, capsys):
    """``python -m examples.train``: Ctrl-C prints a command that, run, finishes the run."""
    update, calls = train.update, {"n": 0}

    def update_then_ctrl_c(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            _ctrl_c()
        return update(*args)

    monkeypatch.setattr(train, "update", update_then_ctrl_c)
    run_dir = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["train", *TINY, *FOUR, f"hydra.run.dir={run_dir}"])
    with pytest.raises(SystemExit) as exit_:
        train.main()
    assert exit_.value.code == 130
    out = capsys.readouterr().out
    assert f"stopped at iteration 2; checkpoint and plot in {run_dir}" in out
    command = shlex.split(out.split("resume with:\n")[1].strip())
    assert command[1:3] == ["-m", "examples.train"] and "resume=true" in command
    monkeypatch.setattr(sys, "argv", ["train", *command[3:]])
    train.main()
    assert "done: 256 env steps" in capsys.readouterr().out
    assert logged_steps(run_dir) == STEPS


def test_command_line_reports_a_used_directory_without_traceback(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(
        sys, "argv", ["train", *TINY, "total_frames=64", f"hydra.run.dir={run_dir}"]
    )
    train.main()
    with pytest.raises(SystemExit, match=r"error: .* holds an earlier run"):
        train.main()


def test_checkpoint_of_another_format_is_refused(tmp_path):
    from examples.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "checkpoint.pt", {"iteration": 3})  # examples 0.1.0 had no format
    with pytest.raises(RunDirectoryError, match=r"checkpoint format 1.*reads format 2"):
        train.train(config("total_frames=64", "resume=true"), tmp_path)

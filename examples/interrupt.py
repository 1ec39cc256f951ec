"""Ctrl-C as a request: the first one lets the training iteration finish, so the run can write a
consistent checkpoint and its plot; a second one stops at once."""

from __future__ import annotations

import signal
import sys
import threading
from types import TracebackType

__all__ = ["StopRequest", "TrainingInterrupted"]


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped on Ctrl-C.

    Attributes:
        checkpoint_iteration: the iteration of the run's last checkpoint (0: none).
        graceful: the checkpoint is of the iteration the run stopped at (the first Ctrl-C);
            ``False`` after a second Ctrl-C, when the steps since the checkpoint are redone on
            resume.
    """

    def __init__(self, checkpoint_iteration: int, graceful: bool) -> None:
        super().__init__(checkpoint_iteration, graceful)
        self.checkpoint_iteration = checkpoint_iteration
        self.graceful = graceful


class StopRequest:
    """Inside ``with StopRequest() as stop:``, the first SIGINT sets ``stop.requested`` and prints
    what happens next; a second one raises ``KeyboardInterrupt`` as usual. Outside the main thread
    (where Python delivers signals) it does nothing and Ctrl-C raises at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(
            "\nCtrl-C: stopping after this iteration to write a checkpoint and the plot "
            "(Ctrl-C again stops at once, without them).",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

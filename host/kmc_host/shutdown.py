"""Stopping a long-running command on SIGINT (Ctrl-C) and SIGTERM (systemd, `kill`).

Every service (`kmc gateway`, `kmc sink`, `kmc ward`, `kmc demo`) stops the same way: the first
of the two signals asks it to stop, it flushes what it holds and stops what it started, then
exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a
process ended by that signal, so systemd and scripts can tell a requested stop from a failure.

`StopSignals` records which signal came first and wakes whoever waits: an `asyncio.Event` for
the asyncio services (`run_asyncio`), a `threading.Event` for the threaded ones
(`install_threads`). Code that is neither waiting on an event nor in an event loop (a demo
between its phases) gets `Interrupted`, a BaseException, so no `except Exception` can swallow
it and every `with`/`finally` on the way out runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # imported where a loop is run: the offline commands start faster without
    import asyncio

T = TypeVar("T")

__all__ = ["STOP_SIGNALS", "Interrupted", "StopSignals", "exit_status"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status(signum: int) -> int:
    """The shell's status for a process stopped by `signum`: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


class Interrupted(BaseException):
    """A stop signal arrived while no event loop or stop event was listening for it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class StopSignals:
    """The first stop signal received, and the handlers that report it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._holding = False  # in asyncio's making or closing of a loop: note, do not raise
        self._held: int | None = None  # the signal noted while holding, not yet acted on

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def exit_status(self, otherwise: int = 0) -> int:
        return exit_status(self.signum) if self.signum is not None else otherwise

    def _note(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum

    def install_raising(self) -> None:
        """From now on a stop signal raises Interrupted in the main thread (the first one only:
        a second Ctrl-C during the orderly stop is noted, not raised again). While a loop is
        being made or closed (`run_asyncio`) the first is held, and a second one raises."""

        def handler(signum: int, frame: FrameType | None) -> None:
            first = self.signum is None
            self._note(signum)
            if self._holding and self._held is None and first:
                self._held = signum  # acted on once asyncio is out of the way
                return
            if first or self._holding:  # (a second one while holding: the way out of a hang)
                self._holding = False
                raise Interrupted(signum)

        for sig in STOP_SIGNALS:
            signal.signal(sig, handler)

    def install_threads(self, stop: threading.Event) -> None:
        """A stop signal sets `stop` (for a main thread that waits on it)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            self._note(signum)
            stop.set()

        for sig in STOP_SIGNALS:
            signal.signal(sig, handler)

    def run_asyncio(self, main: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
        """`asyncio.run(main(stop))`, where a stop signal sets `stop` from the loop's first moment
        to its last, and afterwards raises `Interrupted` again (`install_raising`).

        While asyncio makes the loop and while it closes it, a first stop signal is held:
        raised inside asyncio's own setup, `Interrupted` would leave a half-made loop whose
        clean-up prints a traceback (CI saw it: SIGTERM right after the demo's first line).
        One held while the loop is made sets `stop` as soon as the loop listens; one held
        while it closes is raised once it is closed. A second signal while holding raises at
        once: the way out of a close that hangs (an executor job that never ends). Held in
        Python, not by blocking: a signal blocked in this thread goes to another (paho's, the
        demo's servers'), and Python still runs the handler here."""
        import asyncio

        self._holding, self._held = True, None
        try:
            with asyncio.Runner() as runner:
                loop = runner.get_loop()
                stop = asyncio.Event()
                self.install_asyncio(loop, stop)
                self._holding = False
                if self._held is not None:  # came while the loop was being made
                    self._held = None
                    stop.set()
                try:
                    result = runner.run(main(stop))
                finally:
                    self._holding = True
                    self.uninstall_asyncio(loop)
        finally:
            self._holding = False
        held, self._held = self._held, None
        if held is not None:  # came while the loop was being closed
            raise Interrupted(held)
        return result

    def install_asyncio(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        """A stop signal sets `stop` inside the running loop; `uninstall_asyncio` afterwards."""

        def handler(signum: int) -> None:
            self._note(signum)
            stop.set()

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, handler, sig)

    def uninstall_asyncio(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the signals back from the loop to `install_raising`'s handler at once: asyncio
        would leave Python's defaults (SIGTERM: die on the spot) while it shuts down."""
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        self.install_raising()

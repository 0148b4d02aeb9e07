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
        a second Ctrl-C during the orderly stop is noted, not raised again)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            first = self.signum is None
            self._note(signum)
            if first:
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

        The signals are held (blocked for this thread) while the loop is made and while it is
        closed: a signal raising `Interrupted` inside asyncio's own setup leaves a half-made
        loop whose clean-up prints a traceback (CI saw it: SIGTERM right after the demo's first
        line). A held signal is delivered the moment they are let through again, to the
        loop's handler or, after the close, as `Interrupted`."""
        import asyncio

        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            with asyncio.Runner() as runner:
                loop = runner.get_loop()
                stop = asyncio.Event()
                self.install_asyncio(loop, stop)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                try:
                    return runner.run(main(stop))
                finally:
                    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
                    self.uninstall_asyncio(loop)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

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

"""Stop signals reach an asyncio service at every moment of its event loop's life, with no
traceback: while the loop is being made, while it runs, and while it is being closed.

Each case runs in a process of its own (the handlers are process-wide), and places the signal
exactly: the script sends it to itself from inside asyncio's own setup or clean-up."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from kmc_host.shutdown import Interrupted, StopSignals

    when, signame = sys.argv[1], sys.argv[2]
    sig = getattr(signal, signame)
    signals = StopSignals()
    signals.install_raising()

    def kill_self():
        os.kill(os.getpid(), sig)

    if when == "making":  # inside asyncio.Runner's making of the loop
        made = asyncio.events.new_event_loop
        def new_event_loop():
            kill_self()
            return made()
        asyncio.events.new_event_loop = new_event_loop
    if when == "closing":  # inside the loop's close, after main has returned
        close = asyncio.unix_events._UnixSelectorEventLoop.close
        def closing(loop):
            kill_self()
            close(loop)
        asyncio.unix_events._UnixSelectorEventLoop.close = closing

    async def main(stop):
        if when == "running":
            kill_self()
        if when != "closing":
            await asyncio.wait_for(stop.wait(), 10)  # the signal must come through `stop`
        print("main ended; stop set:", stop.is_set(), flush=True)

    try:
        signals.run_asyncio(main)
    except Interrupted as exc:
        print("interrupted after the loop:", exc, flush=True)
    print("signum:", signals.signum, flush=True)
    """
)


def run(when: str, sig: signal.Signals) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-c", SCRIPT, when, sig.name],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("when", ["making", "running"])
def test_a_signal_while_the_loop_is_made_or_runs_sets_stop(when, sig):
    """Before the fix a signal during the loop's making raised inside asyncio.Runner and left a
    half-made loop whose __del__ printed 'Traceback ... no attribute _debug'."""
    done = run(when, sig)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main ended; stop set: True", f"signum: {int(sig)}"]
    assert done.stderr == ""  # -X dev shows every warning: no unclosed loop, no lost coroutine


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_while_the_loop_closes_is_raised_after_it(sig):
    """Held through the close (where asyncio would give SIGTERM back to the default, which
    kills on the spot), then raised as Interrupted once the loop is gone."""
    done = run("closing", sig)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "main ended; stop set: False",
        f"interrupted after the loop: stopped by {sig.name}",
        f"signum: {int(sig)}",
    ]
    assert done.stderr == ""

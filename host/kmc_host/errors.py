"""How a failure is put in words for the person at the terminal or in the log.

An exception's text is what users see (`kmc demo: error: ...`), and some exceptions have none
(`TimeoutError()`, `asyncio.CancelledError()`, a bare `KeyError`): `describe` never returns an
empty string, and `doing` adds what was being done when it failed, so a message always names
the kind of failure and the step.

Every error of KMC Sense's own derives from `KmcError`, so a command line catches one type
(and OSError for files and sockets) instead of bare ValueError:

- `KmcError`: the base.
  - `BadInput`: what a user gave cannot be used (an option, a file, a config value); the CLI
    exits 2. `ConfigError`, `SamplesFileError`, `DeployError`, `MessageError` ... derive from it.
  - `StepFailed`: a step of a longer job failed for a reason outside the input; exit 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["BadInput", "ConfigError", "KmcError", "StepFailed", "describe", "doing"]


class KmcError(Exception):
    """The base of every error KMC Sense raises on purpose (bleak's `BleakError` is the model)."""


class BadInput(KmcError, ValueError):
    """Input that cannot be used as it is: the message names what was wrong and where.

    A ValueError too, so code that validates with `int()`/`float()` and catches ValueError
    keeps working beside it."""


class ConfigError(BadInput):
    """A configuration value is missing, of the wrong type or outside its allowed range."""


class StepFailed(KmcError, RuntimeError):
    """A step of a longer job failed; the message names the step and the cause."""


def describe(exc: BaseException) -> str:
    """The exception's own text, or its type's name when it has none (never empty)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and exc.args:  # str(KeyError('x')) is "'x'": say what it is
        text = f"no {exc.args[0]!r}"
    name = type(exc).__name__
    return text if text else f"{name} (no message)"


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Re-raise a failure inside the block as StepFailed('<what>: <cause>'), the cause chained.

    An inner step's StepFailed passes unchanged (it names the narrower step), and so do
    interruptions (KeyboardInterrupt, SystemExit: not Exceptions)."""
    try:
        yield
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(f"{what}: {describe(exc)}") from exc

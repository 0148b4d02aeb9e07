"""A small real filesystem for the disk-full tests: a tmpfs of a few MB, mounted however this
machine allows.

1. `mount -t tmpfs` directly: root with CAP_SYS_ADMIN (`.ci/run` as root on a VM or in a
   privileged container): `small_tmpfs`.
2. Otherwise the test runs again in a user and mount namespace of its own (`unshare --user
   --map-root-user --mount`: no privilege needed where the kernel allows unprivileged user
   namespaces, as Debian and Ubuntu do), where it is root of its namespace and mounts the
   tmpfs directly: `userns_command`, `userns_unavailable`. (Reaching a tmpfs of another
   namespace through /proc/PID/root does not do: SQLite resolves that magic link to a path in
   ours.)
3. Neither (e.g. a container whose seccomp profile refuses `mount` and `unshare` without
   CAP_SYS_ADMIN): the reasons, for the test to skip or, in CI, fail.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path


class SmallDiskUnavailable(RuntimeError):
    """A small tmpfs cannot be mounted here; the message says why."""


@contextlib.contextmanager
def small_tmpfs(where: Path, size_mb: float) -> Iterator[Path]:
    """A tmpfs of `size_mb` MB mounted on `where` (an empty directory), unmounted afterwards."""
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={int(size_mb * 1024)}k", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SmallDiskUnavailable(r.stderr.strip() or f"mount exited {r.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def userns_command(argv: Sequence[str]) -> list[str]:
    """`argv` run as root of a new user namespace, in a mount namespace of its own."""
    return ["unshare", "--user", "--map-root-user", "--mount", *argv]


def userns_unavailable() -> str | None:
    """Why a tmpfs cannot be mounted in a user namespace here, or None when it can (tried)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = (
        'd=$(mktemp -d) || exit 1; mount -t tmpfs -o size=64k tmpfs "$d"; r=$?; '
        'umount "$d" 2>/dev/null; rmdir "$d"; exit $r'
    )
    r = subprocess.run(
        userns_command(["sh", "-c", probe]), capture_output=True, text=True, timeout=30
    )
    if r.returncode != 0:
        return f"in a user namespace: {r.stderr.strip() or f'exit {r.returncode}'}"
    return None

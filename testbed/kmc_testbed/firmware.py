"""The strap firmware's modules in CPython, loaded under one package name and nowhere else.

On the board the firmware's modules are files at the root of the flash, importing each other by
bare name (`import protocol`, `from store import SampleStore`) and importing MicroPython's
`micropython` and `bluetooth`. Here each module is compiled from firmware/ and run as
`kmc_firmware.<name>`, with an `__import__` of its own: the firmware's bare names resolve to
its sibling modules and to the stand-ins given (`micropython.const`, a `bluetooth` on bumble),
everything else (json, struct, asyncio...) to the ordinary import. Nothing is added to
`sys.modules` or `sys.path`, so the process's own `protocol`, `config` or `bluetooth` (if any)
are untouched, and code outside the firmware cannot import the stand-ins by accident.
"""

from __future__ import annotations

import builtins
import types
from pathlib import Path
from typing import Any

from kmc_host.deploy import FIRMWARE_DIR

from . import bluetooth

__all__ = ["PACKAGE", "Firmware", "load_firmware"]

PACKAGE = "kmc_firmware"
MODULES = ("protocol", "clock", "config", "store", "alarm", "pads", "sampler", "ble_service", "app")


def _micropython() -> types.ModuleType:
    """MicroPython's `micropython` module as far as the firmware uses it: `const`."""
    module = types.ModuleType("micropython")
    module.const = lambda value: value  # type: ignore[attr-defined]
    return module


class Firmware:
    """The firmware's modules from `source`, each loaded once, with `stand_ins` for the
    MicroPython modules it imports."""

    def __init__(self, source: Path, stand_ins: dict[str, types.ModuleType]) -> None:
        if not (source / "app.py").exists():
            raise FileNotFoundError(
                f"no strap firmware in {source}: the emulated strap needs a checkout"
            )
        self.source = source
        self.names = {path.stem for path in source.glob("*.py")} | set(stand_ins)
        self.modules: dict[str, types.ModuleType] = dict(stand_ins)
        self._builtins = dict(vars(builtins))
        self._builtins["__import__"] = self._import

    def module(self, name: str) -> types.ModuleType:
        """The firmware module `name` (e.g. "protocol"), loaded on first use."""
        if name in self.modules:
            return self.modules[name]
        path = self.source / f"{name}.py"
        module = types.ModuleType(f"{PACKAGE}.{name}")
        module.__file__ = str(path)
        module.__dict__["__builtins__"] = self._builtins
        # registered before it runs, as Python's import does: modules that import each other
        # see the partly run module instead of loading it twice
        self.modules[name] = module
        try:
            exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
        except BaseException:
            del self.modules[name]
            raise
        return module

    def _import(
        self,
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: tuple[str, ...] = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level == 0 and name in self.names:
            return self.module(name)
        return builtins.__import__(name, globals, locals, fromlist, level)


_loaded: dict[Path, Firmware] = {}


def load_firmware(source: Path = FIRMWARE_DIR) -> dict[str, types.ModuleType]:
    """The emulated straps' firmware modules by name (loaded once per source folder)."""
    firmware = _loaded.get(source)
    if firmware is None:
        firmware = Firmware(
            source, {"micropython": _micropython(), "bluetooth": bluetooth.module()}
        )
        _loaded[source] = firmware
    return {name: firmware.module(name) for name in MODULES}

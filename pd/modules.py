"""The compile cache as a region worker serves it to its sandbox.

The sandbox cannot write the shared cache (psim/build.py's folder, owned
by the daemon's user): one user's handlers could otherwise plant a module
that another user's process loads.  It asks its worker for a module by
name and gets its bytes (a hit), or compiles it in its private folder, as
its own unprivileged user, and hands it over to be installed (a miss).

The worker serves and installs modules only while its sandbox has run no
application code.  Application code first runs when the sandbox imports an
application's module (its static constructors), which comes right after
that module was served or installed: so the first application module served
or installed closes the window, and later requests are refused (a handler
can neither plant a module nor fetch others' by name).  The loader module
(psim/core/loader.cpp) is pstack's own code.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from psim import build

NAME = re.compile(r"_pstack_[a-z]+_[0-9a-f]{24}")
LOADER = "_pstack_loader_"


class Refused(ValueError):
    """A request the worker does not answer."""


class ModuleCache:
    def __init__(self, root: Path):
        self.root = root
        self.trusted = True          # the sandbox has run no application code yet

    def fetch(self, name: str) -> bytes | None:
        """The module's shared library, if it is in the cache."""
        self._check_trusted()
        path = self.root / _checked(name) / build.so_name(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        self._served(name)
        return data

    def install(self, name: str, data: bytes) -> None:
        """Publish the module built by the sandbox (atomic rename, as psim does)."""
        self._check_trusted()
        tmp = Path(tempfile.mkdtemp(prefix=_checked(name) + ".", dir=self.root))
        try:
            (tmp / build.so_name(name)).write_bytes(data)
            os.rename(tmp, self.root / name)
        except OSError:                # someone else published it first
            shutil.rmtree(tmp, ignore_errors=True)
        self._served(name)

    def _check_trusted(self) -> None:
        if not self.trusted:
            raise Refused("modules are served and installed only before application code runs")

    def _served(self, name: str) -> None:
        if not name.startswith(LOADER):
            self.trusted = False


def _checked(name: str) -> str:
    """A module name, never a path."""
    if not NAME.fullmatch(name):
        raise Refused(f"not a module name: {name!r}")
    return name

"""The binary instance form a split process travels with: the client,
which reads the instance anyway to partition it, sends psim/instcache.py's
cache file of it beside the application (pstack:u:OWNER:p:PID:instance),
and each region loads that instead of parsing the XML's instance again.
The graph type still comes from the application's <GraphType> (the
handlers compile from it), so a region gets only the XML up to its end.

On the wire (docs/protocol.md, "The instance form"): the cache key (40 hex
digits), a newline, then the cache file.  The worker writes the file into
its sandbox's folder (place: no copy through the channel, and outside the
sandbox's file-size limit), and the sandbox maps it.  A form is the user's
upload and may be forged: instcache checks every section and index, so a
bad one fails its own process with the reason, never the worker or pd.
"""
from __future__ import annotations

import re
from pathlib import Path

from psim import instcache
from psim.errors import BadInput
from psim.reader import Instance, Source
from psim.run import InstanceReader

KEY = re.compile(rb"[0-9a-f]{40}")


def of_file(path: Path) -> bytes | None:
    """The form of the application file at `path`, from the instance cache
    (None when it holds none: the regions parse the XML)."""
    try:
        key = instcache.content_key(path)
        return key.encode() + b"\n" + (instcache.folder() / f"{key}.inst").read_bytes()
    except OSError:                          # no cache folder, or no entry in it
        return None


def place(form: bytes, folder: Path) -> str:
    """Write a form's cache file into `folder` (a sandbox's); its file name.
    BadInput when the form has no cache key."""
    key, _, body = form.partition(b"\n")
    if not KEY.fullmatch(key):
        raise BadInput("the instance form sent with the application is malformed (no cache key)")
    entry = folder / f"{key.decode()}.inst"
    entry.write_bytes(body)
    entry.chmod(0o644)                      # the sandbox's user reads it; the folder is its own (0700)
    return entry.name


def instance(entry: Path, src: Source, graph, ns: str, lib, ffi) -> Instance:
    """The instance of the cache file `entry` (removed once mapped), with
    the loader's lib and ffi; BadInput saying why when it is not a
    faithful instance of `graph`."""
    try:
        return instcache.load(entry, src, graph, ns, lib, ffi)
    except (instcache.Invalid, OSError, ValueError) as e:
        raise BadInput(f"the instance form sent with the application is not a faithful instance of it ({e})") \
            from None
    finally:
        entry.unlink(missing_ok=True)       # mapped: the pages stay while the instance uses them


def from_form(entry: Path) -> InstanceReader:
    """psim.run.Loaded's `read`: the instance of the form's cache file
    `entry` instead of pass 2 of the XML."""
    return lambda src, graph, ns, lib, ffi: (instance(entry, src, graph, ns, lib, ffi), True)

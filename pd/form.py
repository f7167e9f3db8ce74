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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from psim import build, instcache
from psim.compiler import compile_graph
from psim.errors import BadInput
from psim.reader import Instance, Source, read_graph_type
from psim.run import Loaded

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


def instance(entry: Path, src: Source, graph, ns: str, loader) -> Instance:
    """The instance of the cache file `entry` (removed once mapped), with
    `loader` (build.loader_module()); BadInput saying why when it is not a
    faithful instance of `graph`."""
    try:
        return instcache.load(entry, src, graph, ns, loader.lib, loader.ffi)
    except (instcache.Invalid, OSError, ValueError) as e:
        raise BadInput(f"the instance form sent with the application is not a faithful instance of it ({e})") \
            from None
    finally:
        entry.unlink(missing_ok=True)       # mapped: the pages stay while the instance uses them


class FormLoaded(Loaded):
    """psim.run.Loaded with the instance from a form instead of pass 2:
    the same steps (graph type, g++ in a thread while the instance loads)."""

    def __init__(self, head: str, entry: Path, watchers: bool = False):
        t0 = time.perf_counter()
        src = Source(head)
        graph, ns = read_graph_type(src)
        loader = build.loader_module()           # before g++'s thread: in a sandbox both ask the worker for modules
        with ThreadPoolExecutor(1) as pool:
            compiling = pool.submit(compile_graph, graph, watchers)
            try:
                t1 = time.perf_counter()
                self.instance = instance(entry, src, graph, ns, loader)
                self.instance_cached = True
                self.read_seconds = time.perf_counter() - t1
            finally:
                self.module, self.compile_seconds = compiling.result()
        self.load_seconds = time.perf_counter() - t0
        self.used = False

"""Compiling C++ into Python extension modules (cffi, API mode), cached.

A module is keyed by a hash of everything that goes into it: its source, the
runtime headers, the flags and the Python and cffi versions.  It is built in
a private temporary folder and published with one atomic rename, so
concurrent runs never load a half-written module, and a second run of any
instance of a cached graph type compiles nothing.  Where modules are kept
is a Store: the cache folder (CacheDir), or, in a region's sandbox, its
worker, which alone may write the shared cache (pd/sandbox.py).

We run g++ ourselves (rather than through cffi's distutils path) to capture
its diagnostics and map them back to the XML.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Protocol

import cffi
from cffi.recompiler import make_c_source

CORE = Path(__file__).parent / "core"
CXX = os.environ.get("CXX", "g++")
# Where g++ finds headers: psim's runtime, Python's.  A region's sandbox,
# whose user may not reach them, opens them before it becomes that user and
# gives /proc/self/fd/N instead, with the fds to pass to g++ (pd/sandbox.py).
INCLUDE_DIRS = [str(CORE), sysconfig.get_paths()["include"]]
PASS_FDS: tuple[int, ...] = ()
FLAGS = ["-std=gnu++17", "-O2", "-g0", "-fPIC", "-shared", "-w", "-fno-plt"]


class CompileError(Exception):
    """g++ rejected a module; `output` is its diagnostics."""

    def __init__(self, output: str):
        super().__init__(output)
        self.output = output


def cache_dir() -> Path:
    root = os.environ.get("PSTACK_CACHE") or Path.home() / ".cache" / "pstack"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def so_name(name: str) -> str:
    """The file name of module `name`'s shared library."""
    return name + sysconfig.get_config_var("EXT_SUFFIX")


class Store(Protocol):
    """Where compiled modules are found and where new ones go."""

    def find(self, name: str) -> Path | None:
        """The shared library of module `name`, if it was built before."""

    def scratch(self) -> Path:
        """A folder to build in (each build makes a temporary folder there)."""

    def publish(self, name: str, built: Path) -> Path:
        """Make the module built in folder `built` (which it takes over) the
        one for `name`; returns the shared library to import."""


class CacheDir:
    """The shared cache folder, written directly (psim, and any process
    that may write the cache): a module is built in a temporary folder
    beside its final place and published with one atomic rename."""

    def __init__(self, root: Path | None = None):
        self.root = root

    def folder(self) -> Path:
        return self.root or cache_dir()

    def find(self, name: str) -> Path | None:
        so = self.folder() / name / so_name(name)
        return so if so.exists() else None

    def scratch(self) -> Path:
        return self.folder()

    def publish(self, name: str, built: Path) -> Path:
        final = self.folder() / name
        try:
            os.rename(built, final)        # atomic publish
        except OSError:                    # someone else published it first
            shutil.rmtree(built, ignore_errors=True)
        return final / so_name(name)


STORE: Store = CacheDir()      # a region's sandbox replaces it (pd/sandbox.py)


@functools.cache
def _runtime() -> dict[str, bytes]:
    """psim's runtime files (core/: headers, loader, instance reader), read
    once, all at once: a region's sandbox reads them before it becomes its
    user (pd/sandbox.py prepare), who may not reach them."""
    return {f.name: f.read_bytes() for f in sorted(CORE.iterdir())}


@functools.cache
def runtime_digest() -> bytes:
    """A hash of psim's runtime."""
    h = hashlib.sha256()
    for data in _runtime().values():
        h.update(data)
    return h.digest()


def core_text(name: str) -> str:
    """A file of psim's runtime."""
    return _runtime()[name].decode()


def module_key(source: str, cdef: str, extra: tuple[str, ...] = ()) -> str:
    h = hashlib.sha256()
    for part in (source, cdef, " ".join(FLAGS + list(extra)), CXX, sys.version, cffi.__version__):
        h.update(part.encode())
        h.update(b"\0")
    h.update(runtime_digest())
    return h.hexdigest()[:24]


def load(prefix: str, source: str, cdef: str, extra: tuple[str, ...] = ()):
    """The compiled module for `source`, built on first use; `extra`: more
    g++ arguments (libraries), after the source.  Returns (module, seconds
    spent compiling: 0.0 when it came from the cache)."""
    name = f"_pstack_{prefix}_{module_key(source, cdef, extra)}"
    if name in sys.modules:
        return sys.modules[name], 0.0
    so, spent = STORE.find(name), 0.0
    if so is None:
        so, spent = _build(name, source, cdef, extra)
    return _import(name, so), spent


def _build(name: str, source: str, cdef: str, extra: tuple[str, ...] = ()) -> tuple[Path, float]:
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=name + ".", dir=STORE.scratch()))
    try:
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        cpp = tmp / (name + ".cpp")
        make_c_source(ffi, name, source, str(cpp))
        cmd = [CXX, *FLAGS, *(f"-I{d}" for d in INCLUDE_DIRS), str(cpp), "-o", str(tmp / so_name(name)), *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, pass_fds=PASS_FDS)
        if done.returncode != 0:
            raise CompileError(done.stderr)
        so = STORE.publish(name, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return so, time.perf_counter() - start


def _import(name: str, so: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


@functools.cache
def loader_module():
    """The generic instance loader (core/loader.cpp) and the instance reader
    that drives it (core/instance_reader.cpp, on libxml2), built once and
    looked up once per process (the lookup hashes the runtime sources)."""
    source = '#include "loader.cpp"\n#include "instance_reader.cpp"\n'
    cdef = core_text("loader_api.h") + core_text("instance_reader.h")
    return load("loader", source, cdef, ("-I/usr/include/libxml2", "-lxml2"))[0]

"""Compiling C++ into Python extension modules (cffi, API mode), cached.

A module is keyed by a hash of everything that goes into it: its source, the
runtime headers, the flags and the Python and cffi versions.  It is built in
a private temporary folder and published with one atomic rename, so
concurrent runs never load a half-written module, and a second run of any
instance of a cached graph type compiles nothing.

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
from pathlib import Path

import cffi
from cffi.recompiler import make_c_source

CORE = Path(__file__).parent / "core"
CXX = os.environ.get("CXX", "g++")
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


def module_key(source: str, cdef: str) -> str:
    h = hashlib.sha256()
    for part in (source, cdef, " ".join(FLAGS), CXX, sys.version, cffi.__version__):
        h.update(part.encode())
        h.update(b"\0")
    for runtime in sorted(CORE.iterdir()):        # headers and loader.cpp
        h.update(runtime.read_bytes())
    return h.hexdigest()[:24]


def load(prefix: str, source: str, cdef: str):
    """The compiled module for `source`, built on first use.  Returns
    (module, seconds spent compiling: 0.0 when it came from the cache)."""
    key = module_key(source, cdef)
    name = f"_pstack_{prefix}_{key}"
    final = cache_dir() / name
    so = final / (name + sysconfig.get_config_var("EXT_SUFFIX"))
    spent = 0.0
    if not so.exists():
        spent = _build(name, source, cdef, final)
    return _import(name, so), spent


def _build(name: str, source: str, cdef: str, final: Path) -> float:
    import time
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=name + ".", dir=final.parent))
    try:
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        cpp = tmp / (name + ".cpp")
        make_c_source(ffi, name, source, str(cpp))
        so = tmp / (name + sysconfig.get_config_var("EXT_SUFFIX"))
        cmd = [CXX, *FLAGS, f"-I{CORE}", f"-I{sysconfig.get_paths()['include']}", str(cpp), "-o", str(so)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise CompileError(done.stderr)
        try:
            os.rename(tmp, final)          # atomic publish
        except OSError:                    # someone else published it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return time.perf_counter() - start


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
    """The generic instance loader (core/loader.cpp), built once and looked
    up once per process (the lookup hashes the runtime sources)."""
    source = '#include "loader.cpp"\n'
    return load("loader", source, (CORE / "loader_api.h").read_text())[0]

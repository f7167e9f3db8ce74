"""The binary instance cache: a file read before is mapped in, not parsed.

pass 2 of reader.py (the instance) is what a large application's load costs;
its result is flat arrays, so it is kept in cache_dir()/instances/ under a
key of the file's content (sha256 of the raw bytes) and of psim's own code,
and a second read of the same file takes the arrays back from there.  The
GraphType is still read from the XML (pass 1: small, and it is the model).

A cache file is a header (magic, format, a JSON table of counts and
section offsets) and raw sections aligned to 64 bytes: the C loader's
state before pl_finish (ids, device types, edges in file order) and the
Python side's arrays (property and state values, externals).  It may be
corrupt or forged: every section is checked against the header and the
graph type, and the C import (pl_import) checks every index, so a bad file
is a miss (the XML is read again and the entry replaced), never a crash.

Files are written to a temporary file (mode 0600) and published with an
atomic rename; beyond PSTACK_INSTANCE_CACHE_MB the least recently used go.
PSTACK_INSTANCE_CACHE=0 (psim --no-instance-cache) turns the cache off.
A region's sandbox, which may not write the shared cache (build.STORE is
its worker there), reads instances uncached.
"""
from __future__ import annotations

import functools
import hashlib
import json
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import build
from .model import GraphType
from .reader import Instance, OnBlock, Source, _pin_table, read_instance

FORMAT = 1
MAGIC = b"PSTKINST"
HEAD = struct.Struct("<8sII")          # magic, format, length of the JSON table
ALIGN = 64
DEFAULT_CAP_MB = 4096
MEMOS = 10000        # hash memos kept (64 bytes each)
MEMO_AFTER = 2.0     # seconds: a file changed more recently may change again unseen (same mtime tick)


class Invalid(Exception):
    """A cache file that is not a faithful instance of this graph type."""


def enabled() -> bool:
    """Is the cache on?  Off by PSTACK_INSTANCE_CACHE=0, and in a sandbox
    (which may write the shared cache only through its worker)."""
    return os.environ.get("PSTACK_INSTANCE_CACHE", "1") != "0" and isinstance(build.STORE, build.CacheDir)


def folder() -> Path:
    path = build.cache_dir() / "instances"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def cap_bytes() -> int:
    return int(float(os.environ.get("PSTACK_INSTANCE_CACHE_MB", DEFAULT_CAP_MB)) * (1 << 20))


def read(src: Source, graph: GraphType, ns: str, lib, ffi, on_block: OnBlock | None = None) -> tuple[Instance, bool]:
    """Pass 2, or its result from the cache: (instance, whether it was
    cached); on_block: pass 2's progress (reader.read_instance)."""
    try:
        entry = folder() / (content_key(src.path) + ".inst") if src.path is not None and enabled() else None
    except OSError:                          # no cache folder to be had: parse
        entry = None
    if entry is None:
        return read_instance(src, graph, ns, lib, ffi, on_block), False
    try:
        inst = load(entry, src, graph, ns, lib, ffi)
        _touch(entry)
        return inst, True
    except (OSError, ValueError, Invalid):   # missing, unreadable, corrupt or forged: read the XML
        pass
    inst = read_instance(src, graph, ns, lib, ffi, on_block)
    try:
        if store(entry, inst, lib, ffi):
            _touch(entry)
        evict(folder(), cap_bytes())
    except OSError:                          # a full or read-only cache only costs the next run a parse
        pass
    return inst, False


def _touch(entry: Path) -> None:
    """Mark an entry used now (eviction goes by modification time; set to the
    nanosecond so that entries used one after the other never tie)."""
    now = time.time_ns()
    os.utime(entry, ns=(now, now))


# ---- keys -----------------------------------------------------------------------------

@functools.cache
def code_digest() -> bytes:
    """psim's Python and C code, which decide what an instance's arrays hold."""
    h = hashlib.sha256(f"{FORMAT}".encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        h.update(source.read_bytes())
    h.update(build.runtime_digest())
    return h.digest()


def content_key(path: Path) -> str:
    """The cache key of a file: its bytes' sha256 and psim's code.  The
    bytes' hash is memoized by the file's identity and times, so an
    unchanged file is not hashed again (measured: hashing is half of a warm
    start's budget; docs/performance.md)."""
    st = os.stat(path)
    ident = f"{os.path.realpath(path)}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
    memo = folder() / "hashes" / hashlib.sha256(ident.encode()).hexdigest()[:32]
    try:
        digest = bytes.fromhex(memo.read_text())
        if len(digest) != 32:
            raise ValueError(memo)
    except (OSError, ValueError):
        digest = _sha256(path)
        if time.time() - max(st.st_mtime, st.st_ctime) > MEMO_AFTER:
            _publish_text(memo, digest.hex())
    return hashlib.sha256(digest + code_digest()).hexdigest()[:40]


def _sha256(path: Path) -> bytes:
    """The file's sha256, read in large blocks into one buffer (as Python
    3.11's hashlib.file_digest does)."""
    h, block = hashlib.sha256(), bytearray(1 << 20)
    view = memoryview(block)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(block):
            h.update(view[:n])
    return h.digest()


def _publish_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass


# ---- writing ----------------------------------------------------------------------------

def sections(inst: Instance, lib, ffi) -> list[tuple[str, object]]:
    """The named byte buffers that make up an instance, in file order."""
    st = ffi.new("pl_state*")
    lib.pl_export(inst.loader, st)
    n, m = st.n_devices, st.n_edges
    out = [("arena", ffi.buffer(st.arena, st.arena_len)), ("dev_type", ffi.buffer(st.dev_type, 2 * n)),
           ("src", ffi.buffer(st.src, 4 * m)), ("dst", ffi.buffer(st.dst, 4 * m)),
           ("spin", ffi.buffer(st.spin, 2 * m)), ("dpin", ffi.buffer(st.dpin, 2 * m))]
    if st.sidx != ffi.NULL:
        out.append(("sidx", ffi.buffer(st.sidx, 4 * m)))
    out += [("externals", np.array(inst.externals, dtype=np.uint32).tobytes()), ("graph_props", inst.graph_props)]
    for name in ("props", "state", "eprops", "estate"):
        out += [(f"{name}{i}", data) for i, data in enumerate(getattr(inst, name))]
    return out


def store(entry: Path, inst: Instance, lib, ffi) -> bool:
    """Write `inst` as cache file `entry`, atomically; False when it is
    larger than the whole cache may be, and not written."""
    parts = sections(inst, lib, ffi)
    table, at = [], 0
    for name, data in parts:
        table.append((name, at, len(memoryview(data).cast("B"))))
        at += -(-table[-1][2] // ALIGN) * ALIGN
    meta = json.dumps({"id": inst.id, "halt": inst.halt, "n_devices": lib.pl_n_devices(inst.loader),
                       "n_edges": inst.n_edges, "key": entry.stem, "sections": table}).encode()
    body = -(-(HEAD.size + len(meta)) // ALIGN) * ALIGN
    if body + at > cap_bytes():
        return False
    fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(HEAD.pack(MAGIC, FORMAT, len(meta)) + meta)
            for (_, off, size), (_, data) in zip(table, parts):
                f.seek(body + off)
                f.write(data)
            f.truncate(body + at)
        os.replace(tmp, entry)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def evict(where: Path, cap: int) -> None:
    """Remove the least recently used entries until the rest fit in `cap`
    bytes; the oldest hash memos beyond MEMOS; temporary files a killed
    writer left (an hour old)."""
    entries = _by_age(where.glob("*.inst"))
    total = sum(size for _, size, _ in entries)
    for _, size, p in entries:
        if total <= cap:
            break
        p.unlink(missing_ok=True)
        total -= size
    memos = _by_age((where / "hashes").glob("[0-9a-f]*"))
    for _, _, p in memos[:max(len(memos) - MEMOS, 0)]:
        p.unlink(missing_ok=True)
    stale = time.time_ns() - 3600 * 10**9
    for mtime, _, p in _by_age([*where.glob(".tmp.*"), *(where / "hashes").glob(".tmp.*")]):
        if mtime < stale:
            p.unlink(missing_ok=True)


def _by_age(paths) -> list[tuple[int, int, Path]]:
    """(mtime in ns, size, path) of each path that still exists, oldest first."""
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:                      # removed meanwhile
            continue
        out.append((st.st_mtime_ns, st.st_size, p))
    return sorted(out)


# ---- reading ----------------------------------------------------------------------------

def load(entry: Path, src: Source, graph: GraphType, ns: str, lib, ffi) -> Instance:
    """The instance cache file `entry` holds; raises Invalid (or OSError) for any doubt."""
    with open(entry, "rb") as f:
        view = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    try:
        meta, part = _sections(view, entry.stem)
    except (KeyError, TypeError, ValueError, struct.error) as e:     # a malformed header
        raise Invalid(f"bad header: {e}") from None
    return _instance(part, meta, src, graph, ns, lib, ffi)


def _sections(view: memoryview, key: str) -> tuple[dict, dict[str, memoryview]]:
    """The header's table, and the sections it names, each checked to lie in the file."""
    magic, fmt, meta_len = HEAD.unpack_from(view)
    if magic != MAGIC or fmt != FORMAT:
        raise Invalid("not a cache file of this format")
    meta = json.loads(bytes(view[HEAD.size:HEAD.size + meta_len]))
    if meta["key"] != key:
        raise Invalid("the entry of another file")
    body = -(-(HEAD.size + meta_len) // ALIGN) * ALIGN
    part = {}
    for name, off, size in meta["sections"]:
        if not (isinstance(off, int) and isinstance(size, int)) or off % ALIGN or off < 0 or size < 0 \
                or body + off + size > len(view):
            raise Invalid(f"section {name} out of the file")
        part[str(name)] = view[body + off:body + off + size]
    if "arena" not in part:
        raise Invalid("no ids")
    return meta, part


def _instance(part: dict, meta: dict, src: Source, graph: GraphType, ns: str, lib, ffi) -> Instance:
    types, pins = list(graph.devices.values()), graph.edge_pins
    n, m = _count(meta, "n_devices", 1 << 32), _count(meta, "n_edges", 1 << 63)
    _sized(part, {"dev_type": 2 * n, "src": 4 * m, "dst": 4 * m, "spin": 2 * m, "dpin": 2 * m,
                  "graph_props": graph.props.size})
    if "sidx" in part:
        _sized(part, {"sidx": 4 * m})
    loader = ffi.gc(lib.pl_create(_pin_table(graph).encode(), len(types), graph.max_outputs, len(pins)),
                    lib.pl_destroy)
    keep = {name: ffi.from_buffer(part[name]) for name in ("arena", "dev_type", "src", "dst", "spin", "dpin", "sidx")
            if name in part}
    st = ffi.new("pl_state*", {"arena_len": len(part["arena"]), "n_devices": n, "n_edges": m,
                               **{name: ffi.cast(_CTYPES[name], buf) for name, buf in keep.items()}})
    err = lib.pl_import(loader, st)
    if err:
        raise Invalid(f"pl_import refused it (code {err})")
    dev_type = np.frombuffer(part["dev_type"], dtype=np.uint16)
    counts = np.bincount(dev_type, minlength=len(types)) if n else np.zeros(len(types), dtype=np.int64)
    _sized(part, {f"props{t}": int(counts[t]) * dt.props.size for t, dt in enumerate(types)})
    _sized(part, {f"state{t}": int(counts[t]) * dt.state.size for t, dt in enumerate(types)})
    kinds = [lib.pl_kind_count(loader, p.kind) for p in pins]
    _sized(part, {f"eprops{k}": kinds[k] * p.props.size for k, p in enumerate(pins)})
    _sized(part, {f"estate{k}": kinds[k] * p.state.size for k, p in enumerate(pins)})
    ids = ArenaIds(loader, n, lib, ffi)
    inst = Instance(graph, src, str(meta.get("id", "")), ns, loader, ids=ids,
                    graph_props=bytes(part["graph_props"]),
                    props=[bytearray(part[f"props{t}"]) for t in range(len(types))],
                    state=[bytearray(part[f"state{t}"]) for t in range(len(types))],
                    eprops=[bytearray(part[f"eprops{k}"]) for k in range(len(pins))],
                    estate=[bytearray(part[f"estate{k}"]) for k in range(len(pins))],
                    halt=meta.get("halt"), n_edges=m)
    _externals(inst, part, dev_type, types)
    return inst


_CTYPES = {"arena": "char*", "dev_type": "uint16_t*", "src": "uint32_t*", "dst": "uint32_t*",
           "spin": "uint16_t*", "dpin": "uint16_t*", "sidx": "int32_t*"}


def _count(meta: dict, name: str, limit: int) -> int:
    value = meta.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
        raise Invalid(f"bad {name}")
    return value


def _sized(part: dict, sizes: dict[str, int]) -> None:
    for name, size in sizes.items():
        if name not in part or len(part[name]) != size:
            raise Invalid(f"section {name} is not {size} bytes")


def _externals(inst: Instance, part: dict, dev_type, types) -> None:
    """inst.externals from its section, and its halt device, checked: external devices of external types."""
    _sized(part, {"externals": len(part["externals"]) // 4 * 4})
    inst.externals = np.frombuffer(part["externals"], dtype=np.uint32).tolist()
    halt = [] if inst.halt is None else [inst.halt]
    for dev in inst.externals + halt:
        if not (isinstance(dev, int) and 0 <= dev < inst.n_devices and types[dev_type[dev]].external):
            raise Invalid(f"device {dev} is not an external device")
    if halt and inst.ids[inst.halt] != "__halt__" or "__halt__" in (inst.ids[d] for d in inst.externals):
        raise Invalid("the __halt__ device is not where it was")


class ArenaIds(Sequence):
    """Device ids, read from the C loader's arena when asked for, so that a
    cached load does not build a million Python strings up front."""

    def __init__(self, loader, n: int, lib, ffi):
        self.loader, self.n, self.lib, self.ffi = loader, n, lib, ffi
        self._all: list[str] | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.all()[i]
        if self._all is not None:
            return self._all[i]
        if not -self.n <= i < self.n:
            raise IndexError("device index out of range")
        return self.ffi.string(self.lib.pl_id(self.loader, int(i) % self.n)).decode()

    def __iter__(self):
        return iter(self.all())

    def __contains__(self, did) -> bool:
        return isinstance(did, str) and self._find(did) >= 0

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def index(self, did, start: int = 0, stop: int | None = None) -> int:
        i = self._find(did) if isinstance(did, str) else -1
        if i < 0 or not start <= i < (self.n if stop is None else stop):
            raise ValueError(f"{did!r} is not a device id")
        return i

    def _find(self, did: str) -> int:
        raw = did.encode()
        i = self.lib.pl_find(self.loader, raw, len(raw))
        return -1 if i == 0xFFFFFFFF else i

    def all(self) -> list[str]:
        """Every id, split out of the arena at once (one C-level split)."""
        if self._all is None:
            st = self.ffi.new("pl_state*")
            self.lib.pl_export(self.loader, st)
            self._all = self.ffi.buffer(st.arena, st.arena_len)[:].decode().split("\0")[:-1] if self.n else []
        return self._all

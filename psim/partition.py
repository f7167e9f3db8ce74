"""Splitting an application into balanced regions with few cut edges (METIS,
through pymetis).  A file's partition is kept beside its cached instance
(psim/instcache.py), keyed by the same content key and the number of
regions, so splitting the same file again reads neither it nor METIS."""
from __future__ import annotations

import os
from array import array
from pathlib import Path

import pymetis

from . import build, instcache
from .reader import Instance, Source, read_graph_type

KEPT = 64                  # partitions kept (a 1M-device one is 2 MB); the least recently used go


def partition(xml: str | Path, nregions: int) -> array:
    """The region (0..nregions-1) of every device, in file order."""
    src = Source(xml)
    cached = _cache_file(src, nregions)
    if cached is not None:
        try:
            regions = array("H", cached.read_bytes())
            os.utime(cached)
            return regions
        except OSError:
            pass
    loader = build.loader_module()
    graph, ns = read_graph_type(src)
    regions = regions_of(instcache.read(src, graph, ns, loader.lib, loader.ffi)[0], nregions)
    if cached is not None:
        _keep(cached, regions)
    return regions


def regions_of(inst: Instance, nregions: int) -> array:
    """METIS's split of `inst`'s device graph into `nregions`."""
    loader = build.loader_module()
    if nregions > 1 and inst.n_devices > 1:
        loader.lib.pl_finish(inst.loader, loader.ffi.NULL, 0, loader.ffi.new("int*"))
    return split(inst, nregions)


def split(inst: Instance, nregions: int) -> array:
    """The region of every device of `inst`, whose edges are indexed
    without a region map (finish_edges(inst, None, 0))."""
    if nregions <= 1 or inst.n_devices <= 1:
        return array("H", bytes(2 * inst.n_devices))
    loader = build.loader_module()
    lib, ffi = loader.lib, loader.ffi
    count = lib.pl_adjacency(inst.loader, ffi.NULL, ffi.NULL)      # sizes first
    starts, adjacent = array("i", bytes(4 * (inst.n_devices + 1))), array("i", bytes(4 * count))
    lib.pl_adjacency(inst.loader, ffi.from_buffer("int32_t[]", starts), ffi.from_buffer("int32_t[]", adjacent))
    parts = pymetis.part_graph(nregions, adjacency=pymetis.CSRAdjacency(starts, adjacent)).vertex_part
    return array("H", parts)


def _cache_file(src: Source, nregions: int) -> Path | None:
    """Where the partition of a file into `nregions` is kept (None: a text, or the cache is off)."""
    if src.path is None or not instcache.enabled() or nregions <= 1:
        return None
    try:
        return instcache.folder() / "partitions" / f"{instcache.content_key(src.path)}-{nregions}.u16"
    except OSError:                          # no cache folder to be had: METIS each time
        return None


def _keep(path: Path, regions: array) -> None:
    """Write a partition (atomically), and drop the least recently used past KEPT."""
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(regions.tobytes())
        os.replace(tmp, path)
        kept = sorted(path.parent.glob("*.u16"), key=lambda p: p.stat().st_mtime_ns)
        for old in kept[:-KEPT]:
            old.unlink(missing_ok=True)
    except OSError:                          # a full or read-only cache: the next split runs METIS again
        pass

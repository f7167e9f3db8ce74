"""Splitting an application into balanced regions with few cut edges (METIS,
through pymetis)."""
from __future__ import annotations

from array import array
from pathlib import Path

import pymetis

from . import build, instcache
from .reader import Source, read_graph_type


def partition(xml: str | Path, nregions: int) -> array:
    """The region (0..nregions-1) of every device, in file order."""
    loader = build.loader_module()
    lib, ffi = loader.lib, loader.ffi
    src = Source(xml)
    graph, ns = read_graph_type(src)
    inst = instcache.read(src, graph, ns, lib, ffi)[0]
    if nregions <= 1 or inst.n_devices <= 1:
        return array("H", bytes(2 * inst.n_devices))
    err = ffi.new("int*")
    lib.pl_finish(inst.loader, ffi.NULL, 0, err)
    count = lib.pl_adjacency(inst.loader, ffi.NULL, ffi.NULL)      # sizes first
    starts, adjacent = array("i", bytes(4 * (inst.n_devices + 1))), array("i", bytes(4 * count))
    lib.pl_adjacency(inst.loader, ffi.from_buffer("int32_t[]", starts), ffi.from_buffer("int32_t[]", adjacent))
    parts = pymetis.part_graph(nregions, adjacency=pymetis.CSRAdjacency(starts, adjacent)).vertex_part
    return array("H", parts)

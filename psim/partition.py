"""Splitting an application into balanced regions with few cut edges (METIS,
through pymetis)."""
from __future__ import annotations

from array import array
from pathlib import Path

import pymetis

from . import build
from .reader import Instance, Source, read_graph_type, read_instance


def partition(xml: str | Path, nregions: int) -> array:
    """The region (0..nregions-1) of every device, in file order."""
    loader = build.loader_module()
    src = Source(xml)
    graph, ns = read_graph_type(src)
    inst = read_instance(src, graph, ns, loader.lib, loader.ffi)
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

"""The wiring of an instance, as the C loader (core/loader.cpp) lays it out,
seen from Python: who receives what a (device, output pin) sends, in this
region and in others.  psim's C engine reads the same arrays directly;
a Python region (pcli.Engine) reads them here, as NumPy views.

    k = src * max_out + pin
    edges[out_off[k]:out_off[k + 1]]   the edges of (src, pin), in send-index order
    rem_reg[rem_off[k]:rem_off[k + 1]] the other regions holding one of their destinations
"""
from __future__ import annotations

from array import array

import numpy as np

from .build import loader_module
from .errors import BadInput
from .reader import Instance, find_line

EDGE = np.dtype([("dst", "<u4"), ("slot", "<u4"), ("dst_pin", "<u2"), ("flags", "<u2")])   # pe_edge
REMOTE = 1                      # PE_EDGE_REMOTE


def finish_edges(inst: Instance, region: array | None, my_region: int) -> None:
    """Index the instance's edges for one region (every device local when
    `region` is None): the loader marks edges to other regions remote and
    lists, per (device, pin), the regions to send to."""
    lib = loader_module()
    err = lib.ffi.new("int*")
    reg = lib.ffi.from_buffer("uint16_t[]", region) if region is not None else lib.ffi.NULL
    bad = lib.lib.pl_finish(inst.loader, reg, my_region, err)
    if bad >= 0:
        line = find_line(inst.source, inst.ns + "EdgeI", lambda el: True, bad + 1)
        raise BadInput("the sendIndex attributes of an indexed pin's edges must number them 0..n-1, "
                       "each once", inst.source.name, line)


def edge_arrays(inst: Instance) -> tuple:
    """The loader's (edges, rem_off, rem_reg) of an instance indexed by
    finish_edges (rem_off NULL without a region map), as loader pointers."""
    lib = loader_module().lib
    return lib.pl_edges(inst.loader), lib.pl_rem_off(inst.loader), lib.pl_rem_reg(inst.loader)


class RegionCSR:
    """Region `my_region`'s own edge flags and remote lists (loader.cpp
    pl_region), for several engines over one instance in one process
    (psim/threads.py): the instance's CSR, indexed once without a region
    map (finish_edges(inst, None, 0)), stays shared and whole."""

    def __init__(self, inst: Instance, region: array, my_region: int):
        ll = loader_module()
        self.region = region                     # read while the loader builds; kept with it
        self.handle = ll.ffi.gc(ll.lib.pl_region_create(inst.loader, ll.ffi.from_buffer("uint16_t[]", region),
                                                        my_region), ll.lib.pl_region_destroy)

    def arrays(self) -> tuple:
        """(edges, rem_off, rem_reg), as edge_arrays gives the instance's."""
        lib = loader_module().lib
        return lib.pl_region_edges(self.handle), lib.pl_region_rem_off(self.handle), lib.pl_region_rem_reg(self.handle)


class Wiring:
    """The loader's arrays of an instance whose edges are indexed
    (finish_edges done), as NumPy views (owned by the loader: keep the
    instance alive while this is used)."""

    def __init__(self, inst: Instance):
        lib, ffi = loader_module().lib, loader_module().ffi
        L, n = inst.loader, inst.n_devices
        self.max_out = inst.graph.max_outputs
        keys = n * self.max_out
        self.types = np.frombuffer(ffi.buffer(lib.pl_dev_types(L), 2 * n), "<u2") if n else np.zeros(0, "<u2")
        self.out_off = np.frombuffer(ffi.buffer(lib.pl_out_off(L), 4 * (keys + 1)), "<u4")
        self.edges = np.frombuffer(ffi.buffer(lib.pl_edges(L), EDGE.itemsize * inst.n_edges), EDGE)
        rem_off = lib.pl_rem_off(L)
        self.rem_off = (np.frombuffer(ffi.buffer(rem_off, 4 * (keys + 1)), "<u4") if rem_off != ffi.NULL
                        else np.zeros(keys + 1, "<u4"))
        self.rem_reg = np.frombuffer(ffi.buffer(lib.pl_rem_reg(L), 2 * int(self.rem_off[-1])), "<u2")

    def key(self, src: int, pin: int) -> int:
        return src * self.max_out + pin

    def local_edges(self, src: int, pin: int) -> np.ndarray:
        """The edges of (src, pin) to devices of this region."""
        k = self.key(src, pin)
        e = self.edges[self.out_off[k]:self.out_off[k + 1]]
        return e[(e["flags"] & REMOTE) == 0]

    def remote_regions(self, src: int, pin: int) -> np.ndarray:
        k = self.key(src, pin)
        return self.rem_reg[self.rem_off[k]:self.rem_off[k + 1]]


class Topology(Wiring):
    """The edges of an instance for region `my_region` of a split."""

    def __init__(self, inst: Instance, region: array, my_region: int):
        finish_edges(inst, region, my_region)
        super().__init__(inst)
        self.region = np.frombuffer(region, "<u2")
        self.my_region = my_region

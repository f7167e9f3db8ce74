"""Supervisor traffic in a Python region (pcli.pyregion), in the records of
docs/protocol.md, "Supervisors", as psim's C engine speaks them
(psim/core/supervisor.hpp):

- a device's `__SUP_OUT__` send is one record to the supervisor's region
  (here, a delivery to the supervisor when this region runs it);
- the supervisor's replies and broadcasts are records from SUP_DEV, with
  the device a reply is for, or BROADCAST, as send_index.

When this region runs the supervisor, it is the user's Python: messages to
it reach `receive` with dst "__supervisor__", and `engine.reply` /
`engine.broadcast` answer (the application's C supervisor code does not run).
Message bytes are read zero-padded (or cut) to the receiving pin's type, as
the C engine reads them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psim.engine import SUP_DEV, SUPERVISOR
from psim.reader import Instance
from psim.topology import Topology

BROADCAST = 0xFFFFFFFF
NO_PIN = -1


def fit(payload: bytes, size: int) -> bytes:
    """Bytes read as a message of `size` bytes: zero-padded or cut."""
    return payload[:size].ljust(size, b"\0")


@dataclass
class Supervision:
    """Who talks to the supervisor, and where it is, for region my_region."""
    inst: Instance
    topo: Topology
    sup_region: int

    def __post_init__(self):
        self.graph = self.inst.graph
        types = list(self.graph.devices.values())
        self.sup_in = np.array([t.sup_in.index if t.sup_in else NO_PIN for t in types])
        self.in_layouts = [t.sup_in.message.layout if t.sup_in else None for t in types]
        listens = self.sup_in[self.topo.types] != NO_PIN
        local = self.topo.region == self.topo.my_region
        self.listeners = np.flatnonzero(listens & local).tolist()
        self.here = self.graph.supervisor is not None and self.topo.my_region == self.sup_region
        self.far = sorted(set(self.topo.region[listens & ~local].tolist())) if self.here else []

    @property
    def layout(self):
        """The supervisor pin's message layout (what the supervisor reads and answers with)."""
        return self.graph.supervisor.message.layout

    def listens(self, dev: int) -> bool:
        return self.sup_in[self.topo.types[dev]] != NO_PIN

    # ---- records in ---------------------------------------------------------------

    def check(self, src: int, send_index: int, pin: int, length: int) -> None:
        """ValueError for a supervisor record this region may not take."""
        if src == SUP_DEV:
            if self.graph.supervisor is None or pin != 0:
                raise ValueError("a record from the supervisor must have pin 0, in a graph with one")
            if send_index != BROADCAST and not (send_index < self.inst.n_devices and self.listens(send_index)
                                                 and self.topo.region[send_index] == self.topo.my_region):
                raise ValueError("a reply from the supervisor to a device not in this region, or without a "
                                 "supervisor input pin")
        elif not self.here:
            raise ValueError("a message for the supervisor, sent to a region without it")

    def deliveries(self, src: int, send_index: int, pin: int, payload: bytes) -> list[tuple]:
        """The queue entries (dst, dst_pin, src, pin, payload) of a supervisor
        record: to the supervisor (dst SUP_DEV), or to devices here."""
        if src != SUP_DEV:
            return [(SUP_DEV, 0, src, pin, fit(payload, self.layout.size))]
        targets = self.listeners if send_index == BROADCAST else [send_index]
        return [(dst, int(self.sup_in[self.topo.types[dst]]), SUP_DEV, 0, fit(payload, self.in_layout(dst).size))
                for dst in targets]

    def in_layout(self, dst: int):
        """The layout a supervisor delivery to `dst` is read as."""
        return self.layout if dst == SUP_DEV else self.in_layouts[self.topo.types[dst]]

    def names(self, dst: int, src: int) -> tuple[str, str, str, str]:
        """(dst, pin, src, src_pin) names of a supervisor delivery."""
        ids, sup = self.inst.ids, self.graph.supervisor
        if dst == SUP_DEV:
            return SUPERVISOR, sup.pin_id, ids[src], "__SUP_OUT__"
        return ids[dst], "__SUP_IN__", SUPERVISOR, ""

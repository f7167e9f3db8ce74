"""A Python region's batch path (pcli.pyregion): records from several
sources, parsed and fanned out with NumPy, give the deliveries the
record-by-record path gives."""
import numpy as np

from pcli.pyregion import BROADCAST, PyRegion
from psim.run import load_instance, region_array
from psim.topology import Topology

APP = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="fan">
    <MessageTypes><MessageType id="val"><Message><Scalar name="v" type="uint32_t"/></Message></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="src">
        <ReadyToSend><![CDATA[]]></ReadyToSend>
        <OutputPin name="out" messageTypeId="val"><OnSend><![CDATA[]]></OnSend></OutputPin>
      </DeviceType>
      <DeviceType id="sink">
        <ReadyToSend><![CDATA[]]></ReadyToSend>
        <InputPin name="in" messageTypeId="val"><OnReceive><![CDATA[]]></OnReceive></InputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="fan_1" graphTypeId="fan">
    <DeviceInstances><DevI id="s0" type="src"/><DevI id="s1" type="src"/><DevI id="k0" type="sink"/>
      <DevI id="k1" type="sink"/><DevI id="far" type="sink"/></DeviceInstances>
    <EdgeInstances><EdgeI path="k0:in-s0:out"/><EdgeI path="k0:in-s1:out"/><EdgeI path="k1:in-s1:out"/>
      <EdgeI path="far:in-s1:out"/></EdgeInstances>
  </GraphInstance>
</Graphs>
"""


def region(got: list) -> PyRegion:
    inst = load_instance(APP)
    topo = Topology(inst, region_array(inst, {"k0": 1, "k1": 1, "far": 2}), 1)
    return PyRegion(inst, topo, 3, receive_batch=lambda engine, d: got.append(d), owner=None)


def deliveries(batches: list) -> list[tuple]:
    return sorted((int(d["dst"]), int(d["src"]), int(d["msg"]["v"])) for b in batches for d in b)


def test_mixed_sources_fan_out_as_record_by_record():
    records = np.zeros(6, [("src", "<u4"), ("si", "<u4"), ("pin", "<u2"), ("len", "<u2"), ("v", "<u4")])
    records["src"], records["si"], records["len"], records["v"] = [0, 1, 0, 1, 1, 0], BROADCAST, 4, range(6)
    fast, slow = [], []
    a, b = region(fast), region(slow)
    a.inject(records.tobytes())
    b._inject_each(records.tobytes())
    a.run(100), b.run(100)
    assert len(a.arrays) == 0 and deliveries(fast) == deliveries(slow)
    k0, k1 = 2, 3                              # s1's records reach k0 and k1 here; "far" is region 2's
    assert deliveries(fast) == sorted([(k0, 0, 0), (k0, 1, 1), (k1, 1, 1), (k0, 0, 2), (k0, 1, 3), (k1, 1, 3),
                                       (k0, 1, 4), (k1, 1, 4), (k0, 0, 5)])
    assert a.outcome().delivered == 9 and a.outcome().remote_received == 6

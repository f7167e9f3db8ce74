"""A Python region's batch path (pcli.pyregion): records from several
sources, parsed and fanned out with NumPy, give the deliveries the
record-by-record path gives; a batch send (send_batch) gives the records
and deliveries a loop of sends gives."""
import struct
from collections import deque

import numpy as np
import pytest

from appcases import APPS_DIR
from pcli.pyregion import BROADCAST, PyRegion
from pcli.supervision import SUP_DEV
from psim.engine import IDLE
from psim.run import load_instance, region_array
from psim.topology import Topology

APP = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="fan">
    <MessageTypes><MessageType id="val"><Message>
      <Scalar name="v" type="uint32_t"/><Scalar name="w" type="int16_t" default="7"/>
      <Scalar name="x" type="double" default="0.5"/>
    </Message></MessageType><MessageType id="tick"><Message/></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="src">
        <ReadyToSend><![CDATA[]]></ReadyToSend>
        <OutputPin name="out" messageTypeId="val"><OnSend><![CDATA[]]></OnSend></OutputPin>
        <OutputPin name="pick" messageTypeId="val" indexed="true"><OnSend><![CDATA[]]></OnSend></OutputPin>
        <OutputPin name="tick" messageTypeId="tick"><OnSend><![CDATA[]]></OnSend></OutputPin>
      </DeviceType>
      <DeviceType id="sink">
        <ReadyToSend><![CDATA[]]></ReadyToSend>
        <InputPin name="in" messageTypeId="val"><OnReceive><![CDATA[]]></OnReceive></InputPin>
        <InputPin name="tick" messageTypeId="tick"><OnReceive><![CDATA[]]></OnReceive></InputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="fan_1" graphTypeId="fan">
    <DeviceInstances><DevI id="s0" type="src"/><DevI id="s1" type="src"/><DevI id="k0" type="sink"/>
      <DevI id="k1" type="sink"/><DevI id="far" type="sink"/><DevI id="s2" type="src"/><DevI id="s3" type="src"/>
      <DevI id="r0" type="sink"/><DevI id="far2" type="sink"/></DeviceInstances>
    <EdgeInstances><EdgeI path="k0:in-s0:out"/><EdgeI path="k0:in-s1:out"/><EdgeI path="k1:in-s1:out"/>
      <EdgeI path="far:in-s1:out"/><EdgeI path="r0:in-s0:out"/><EdgeI path="far2:in-s1:out"/>
      <EdgeI path="far:in-s2:out"/>
      <EdgeI path="k1:in-s0:pick" sendIndex="0"/><EdgeI path="far:in-s0:pick" sendIndex="1"/>
      <EdgeI path="r0:in-s0:pick" sendIndex="2"/>
      <EdgeI path="far2:in-s1:pick" sendIndex="0"/><EdgeI path="k0:in-s1:pick" sendIndex="1"/>
      <EdgeI path="k1:in-s2:pick" sendIndex="0"/>
      <EdgeI path="k0:tick-s0:tick"/><EdgeI path="far:tick-s0:tick"/>
    </EdgeInstances>
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
    records = np.zeros(6, [("src", "<u4"), ("si", "<u4"), ("pin", "<u2"), ("len", "<u2"), ("v", "<u4"),
                           ("w", "<i2"), ("x", "<f8")])
    records["src"], records["si"], records["len"], records["v"] = [0, 1, 0, 1, 1, 0], BROADCAST, 14, range(6)
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


S0, S1, K0, S2, S3 = 0, 1, 2, 5, 6            # device indices in APP
VAL = np.dtype([("v", "<u4"), ("w", "<i2"), ("x", "<f8")])


def sender(batch: bool, got: list) -> PyRegion:
    """Region 1 of 4 of APP (s0-s2, k0, k1; r0 and s3 in region 0, far in 2, far2 in 3)."""
    inst = load_instance(APP)
    topo = Topology(inst, region_array(inst, {"s0": 1, "s1": 1, "s2": 1, "k0": 1, "k1": 1, "far": 2, "far2": 3}), 1)
    if batch:
        return PyRegion(inst, topo, 4, receive_batch=lambda engine, d: got.extend(
            (int(r["dst"]), int(r["dst_pin"]), int(r["src"]), int(r["src_pin"]), r["msg"].tobytes()) for r in d))
    return PyRegion(inst, topo, 4, receive=lambda engine, m: got.append(
        (m.dst, m.pin, m.src, m.src_pin, tuple(m.fields.values()))))


def structured(v) -> np.ndarray:
    msg = np.zeros(len(v), VAL)
    msg["v"], msg["w"], msg["x"] = v, -3, np.asarray(v) / 4
    return msg


# (send_batch's arguments, the same as per-message sends: (src, send_index, fields) each)
CASES = {
    "a device id, dict msg": (dict(src="s0", pin="out", msg={"v": np.arange(5), "w": -2}),
                              [("s0", None, {"v": i, "w": -2}) for i in range(5)]),
    "index array, structured msg": (dict(src=np.array([S0, S1, S2, S1], np.uint32), pin="out",
                                         msg=structured([10, 11, 12, 13])),
                                    [(s, None, {"v": v, "w": -3, "x": v / 4})
                                     for s, v in zip(["s0", "s1", "s2", "s1"], [10, 11, 12, 13])]),
    "index array of one device": (dict(src=np.full(3, S1), pin="out", msg=structured([4, 5, 6])),
                                  [("s1", None, {"v": v, "w": -3, "x": v / 4}) for v in [4, 5, 6]]),
    "indexed pin, several regions": (dict(src=np.array([S0, S0, S0, S1, S1, S2]), pin="pick",
                                          msg={"v": np.arange(6)}, send_index=np.array([0, 1, 2, 0, 1, 0])),
                                     [(s, i, {"v": v}) for v, (s, i) in
                                      enumerate([("s0", 0), ("s0", 1), ("s0", 2), ("s1", 0), ("s1", 1), ("s2", 0)])]),
    "a message without fields": (dict(src="s0", pin="tick"), [("s0", None, {})]),
    "None msg": (dict(src=np.array([S1, S0, S1]), pin="out", msg=None), [(s, None, {}) for s in ["s1", "s0", "s1"]]),
}


@pytest.mark.parametrize("batch", [True, False], ids=["receive_batch", "receive"])
@pytest.mark.parametrize("case", CASES)
def test_send_batch_is_a_loop_of_sends(case, batch):
    args, loop = CASES[case]
    got_batch, got_loop = [], []
    a, b = sender(batch, got_batch), sender(batch, got_loop)
    a.send_batch(**args)
    for src, send_index, fields in loop:
        b.send(src, args["pin"], send_index, fields)
    for q in range(4):
        assert bytes(a.outboxes[q]) == bytes(b.outboxes[q]), q
    assert any(a.outboxes) and (a.o.sends, a.o.remote_sent) == (b.o.sends, b.o.remote_sent)
    a.run(100), b.run(100)
    assert got_batch and sorted(got_batch) == sorted(got_loop)
    assert a.o.delivered == b.o.delivered == len(got_batch)


def test_a_batch_engine_receives_a_batch_send_as_arrays():
    got = []
    r = sender(True, got)
    r.send_batch(np.array([S0, S1]), "out", {"v": [1, 2]})
    assert r.queue == deque() and len(r.arrays) == 1
    assert r.run(100) == IDLE and len(got) == 3               # s0 to k0, s1 to k0 and k1


@pytest.mark.parametrize("args, error", [
    (("s0", "nope"), "device type src has no output pin 'nope'"),
    (("k0", "out"), "device type sink has no output pin 'out'"),
    ((np.array([S0, K0]), "out"), r"several device types \(sink, src\)"),
    (("s3", "out"), "device 's3' is not in this engine's region 1"),
    ((np.array([S0, S3]), "out"), "device 's3' is not in this engine's region 1"),
    ((np.array([S0, 99]), "out"), "source device index 99 out of range"),
    ((np.array([0.0]), "out"), "src: a device id or an array of device indices"),
    (("nobody", "out"), "no device 'nobody'"),
    ((np.array([S0, S1]), "out", {"v": [1, 2, 3]}), r"different lengths \[2, 3\]"),
    (("s0", "out", {"y": 1}), "unknown field 'y'"),
    (("s0", "out", {"v": -1}), "field 'v'"),
    (("s0", "out", [1]), "msg: a structured array"),
    (("s0", "out", None, 0), "output pin 'out' is not indexed"),
    (("s0", "pick"), "output pin 'pick' is indexed"),
    ((np.array([S0, S2]), "pick", None, [2, 1]), r"send index 1 out of range \(the pin has 1 edges\)"),
    (("s0", "pick", None, -1), "send index -1 out of range"),
])
def test_send_batch_refuses(args, error):
    r = sender(True, [])
    with pytest.raises(ValueError, match=error):
        r.send_batch(*args)
    assert not any(r.outboxes) and not r.arrays and r.o.sends == 0


def test_a_python_region_refuses_forged_supervisor_records():
    """As psim's engine (tests/psim/test_regions.py): supervisor records only
    where they belong."""
    inst = load_instance(str(APPS_DIR / "sup_bcast_v4.xml"))       # n0 n1 ear n2 rock n3
    away = PyRegion(inst, Topology(inst, region_array(inst, {"n1": 1}), 1), 2, receive=lambda e, m: None)
    cmd = bytes(12)
    with pytest.raises(ValueError, match="for the supervisor, sent to a region without it"):
        away.inject(struct.pack("<IIHH", 1, BROADCAST, 0, 12) + cmd)
    with pytest.raises(ValueError, match="must have pin 0"):
        away.inject(struct.pack("<IIHH", SUP_DEV, BROADCAST, 1, 12) + cmd)
    with pytest.raises(ValueError, match="reply from the supervisor to a device not in this region"):
        away.inject(struct.pack("<IIHH", SUP_DEV, 0, 0, 12) + cmd)            # n0 is region 0's
    away.inject(struct.pack("<IIHH", SUP_DEV, BROADCAST, 0, 12) + cmd)         # a broadcast: to n1, here
    assert [d[0] for d in away.queue] == [1]

"""Messages per second into a Python application engine (pcli.Engine), on a
local secured cluster (redis-server, the scheduler, 1 pd under supervisord):
a C device in region 0 sends N messages to a device in region 1, served by
the engine per message (receive) or in batches (receive_batch); and a round
trip through the batch API: the engine echoes every batch back with
send_batch, and the C device counts the N echoes.  First, send_batch by
itself, in this process (no cluster): batches of 64k echoes from one device.

    .venv/bin/python bench/bench_appengine.py [N]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="flood">
    <MessageTypes><MessageType id="val"><Message><Scalar name="v" type="uint32_t"/></Message></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="src">
        <Properties><Scalar name="n" type="uint32_t"/></Properties>
        <State><Scalar name="sent" type="uint32_t"/><Scalar name="got" type="uint32_t"/></State>
        <ReadyToSend><![CDATA[ if (deviceState->sent < deviceProperties->n) *readyToSend = RTS_FLAG_out; ]]></ReadyToSend>
        <OutputPin name="out" messageTypeId="val"><OnSend><![CDATA[ message->v = deviceState->sent++; ]]></OnSend></OutputPin>
        <InputPin name="echo" messageTypeId="val"><OnReceive><![CDATA[ deviceState->got++; ]]></OnReceive></InputPin>
      </DeviceType>
      <DeviceType id="sink">
        <State><Scalar name="got" type="uint32_t"/></State>
        <ReadyToSend><![CDATA[]]></ReadyToSend>
        <InputPin name="in" messageTypeId="val"><OnReceive><![CDATA[ deviceState->got++; ]]></OnReceive></InputPin>
        <OutputPin name="back" messageTypeId="val"><OnSend><![CDATA[]]></OnSend></OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="flood_1" graphTypeId="flood">
    <DeviceInstances><DevI id="s" type="src"><P>"n": %d</P></DevI><DevI id="k" type="sink"/></DeviceInstances>
    <EdgeInstances><EdgeI path="k:in-s:out"/><EdgeI path="s:echo-k:back"/></EdgeInstances>
  </GraphInstance>
</Graphs>
"""


def cluster(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "pd.cluster", *args], check=True, capture_output=True,
                          text=True, cwd=ROOT).stdout


PAUSE = 1.0          # s before each run: the spare worker and sandbox the last run started are ready
MODES = {"receive": "receive      ", "receive_batch": "receive_batch",
         "echo": "receive_batch + send_batch, round trip"}


def measure(pcli, n: int, mode: str) -> float:
    """Messages per second into the engine (each way, for "echo")."""
    got = [0]

    def one(engine, msg):
        got[0] += 1

    def many(engine, deliveries):
        got[0] += len(deliveries)

    def echo(engine, deliveries):
        got[0] += len(deliveries)
        engine.send_batch(deliveries["dst"], "back", deliveries["msg"])
    eng = pcli.Engine(one) if mode == "receive" else pcli.Engine(receive_batch=echo if mode == "echo" else many)
    time.sleep(PAUSE)
    future = pcli.run(APP % n, rmap={"k": 1}, rcon={1: eng}, async_=True)
    t = time.perf_counter()
    eng.run()
    dt = time.perf_counter() - t
    res = pcli.block(future)
    assert res["state"] == "finished" and got[0] == n, got
    assert res["states"]["s"]["got"] == (n if mode == "echo" else 0), res["states"]["s"]
    return n / dt


def send_batch_alone(batch: int = 65_536, total: int = 5_000_000) -> float:
    """Records per second that PyRegion.send_batch makes (outbox appends
    included) for batches like the echo's: one device, its whole batch."""
    from pcli.pyregion import PyRegion, delivery_dtype
    from psim.run import load_instance, region_array
    from psim.topology import Topology
    inst = load_instance(APP % 1)
    region = PyRegion(inst, Topology(inst, region_array(inst, {"k": 1}), 1), 2, receive_batch=lambda e, d: None)
    deliveries = np.zeros(batch, delivery_dtype(inst.graph.devices["sink"].outputs[0].message.layout))
    deliveries["dst"], deliveries["msg"]["v"] = inst.ids.index("k"), np.arange(batch)
    t = time.perf_counter()
    for _ in range(total // batch):
        region.send_batch(deliveries["dst"], "back", deliveries["msg"])
        region.clear_outbox(0)                        # as the region loop does after sending the frame
    return total // batch * batch / (time.perf_counter() - t)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rates = [send_batch_alone() for _ in range(3)]
    print(f"send_batch alone: best {max(rates) / 1e6:.1f}M records/s "
          f"(runs: {', '.join(f'{r / 1e6:.1f}M' for r in rates)}; 64k-message batches from one device)")
    with tempfile.TemporaryDirectory(prefix="pstack-bench-") as folder:
        cluster("start", folder, "--pds", "1")
        try:
            os.environ["PSTACK_REDIS"] = cluster("adduser", folder, "bench").splitlines()[-1].split("=", 1)[1]
            import pcli
            measure(pcli, 1000, "receive")                     # compile, warm up
            for mode, label in MODES.items():
                rates = [measure(pcli, n, mode) for _ in range(3)]
                each = f" each way, {2 * max(rates) / 1e6:.1f}M records/s in and out" if mode == "echo" else ""
                print(f"{label}: {n} messages, best {max(rates) / 1e3:.0f}k messages/s{each} "
                      f"(runs: {', '.join(f'{r / 1e3:.0f}k' for r in rates)}; "
                      "includes the region's start: claim, rendezvous, handshake)")
        finally:
            cluster("stop", folder)


if __name__ == "__main__":
    main()

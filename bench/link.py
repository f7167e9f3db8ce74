"""One data-plane link measured alone: region 0 of the pairs graph sends
every record to region 1 over the real components (engine outboxes,
DataPlane, msgpack frames, ZeroMQ over loopback, pe_inject, delivery).
Used by bench_dataplane.py; each side runs in its own process."""
from __future__ import annotations

import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker import wire  # noqa: E402
from broker.control import connect  # noqa: E402
from broker.dataplane import DataPlane, RedisRendezvous, advertised_host  # noqa: E402
from psim.engine import IDLE, Options  # noqa: E402
from psim.run import BATCH, Loaded  # noqa: E402


def side(url: str, path: str, region: int, pid: int, out) -> None:
    loaded = Loaded(path)
    n = loaded.instance.n_devices
    regions = array("H", [0] * (n // 2) + [1] * (n - n // 2))
    engine = loaded.engine(Options(region=region), regions=regions, n_regions=2)
    r = connect(url)
    plane = DataPlane(RedisRendezvous(r, pid, "bench"), pid, "bench", region, 2, advertised_host(r))  # CURVE: $PSTACK_CURVE
    engine.start()
    if region == 0:
        t0 = time.perf_counter()
        while True:
            status = engine.run(BATCH)
            records = engine.outbox(1)
            if records is not None:
                plane.send(1, wire.MSG, records)
                engine.clear_outbox(1)
            if status == IDLE:
                break
        sent = engine.outcome().remote_sent
        plane.send(1, wire.STOP, {"status": "idle", "code": 0})
        out.put(("sent", sent, time.perf_counter() - t0))
    else:
        first = None
        done = False
        while not done:
            for f in plane.receive(100):
                if f.kind == wire.MSG:
                    first = first or time.perf_counter()
                    engine.inject(f.payload)
                done = done or f.kind == wire.STOP
            engine.run(BATCH)
        while engine.run(BATCH) != IDLE:
            pass
        o = engine.outcome()
        out.put(("received", o.remote_received, time.perf_counter() - first, plane.bytes_in, plane.curve))
    plane.close()

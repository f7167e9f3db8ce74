"""Application engines: a region of a running process served by Python
functions in the user's own client, as in the original pstack.

    from pcli import Engine, run, block
    def receive(engine, msg):                # msg: dst, pin, src, src_pin, fields
        engine.send(src="n1", pin="toggle_out", **msg.fields)
    eng = Engine(receive)
    fut = run("ring.xml", rmap={"n1": 1}, rcon={1: eng}, async_=True)
    eng.run()                                # serves region 1 until the process ends
    print(block(fut))

The engine hosts its region like any engine: it publishes its data-plane
address through the scheduler (the user has no other right on the
process), speaks the data plane and the termination protocol of pd's
workers (pd/region.py drives a pcli.pyregion.PyRegion as it drives psim's
C engine) and records its region's result, whose states are
`engine.state[device]` for its devices.  A function that raises fails the
process with the exception's last traceback line.
"""
from __future__ import annotations

import time
from array import array
from typing import Any, Callable

import numpy as np

from broker import keys
from broker.control import APP, Control
from broker.credentials import redis_url
from broker.dataplane import DataPlane, DataPlaneError, RedisRendezvous, advertised_host
from broker.localplane import LocalPlane
from pd.region import RegionRun
from psim.engine import STOP_FAIL
from psim.reader import Instance
from psim.run import LogSink, Outcome, load_instance, region_array, supervisor_region
from psim.topology import Topology

from .keepalive import Keepalive
from .pyregion import Message, PyRegion


class ProcessEnded(RuntimeError):
    """The process an engine or debugger was serving failed or was killed
    elsewhere (not by its own region): its reason."""


class AppRendezvous(RedisRendezvous):
    """The data-plane rendezvous of an application engine or a debugger: it
    reads the process's endpoints like any region (they are its owner's
    private keys), and publishes its own through the scheduler (app_claim),
    as the owner of the process.  While it waits for the other regions
    (compiling, say), its keepalive beats; if the process ends meanwhile,
    the wait ends at once."""

    def __init__(self, ctl: Control, user: str, pid: int, keepalive: Keepalive):
        super().__init__(ctl.r, pid, user)
        self.ctl, self.user, self.keepalive = ctl, user, keepalive

    def publish(self, region: int, curve: str, address: str) -> None:
        self.ctl.app_claim(self.user, self.pid, region, curve, address)

    def lookup(self) -> tuple[dict[int, str], dict[int, str]]:
        problem = self.keepalive.problem()
        if problem:
            raise DataPlaneError(problem)
        return super().lookup()


def keepalive(user: str, pid: int, region: int) -> Keepalive:
    """A client-side region's heartbeat, from now until closed."""
    return Keepalive(redis_url(), user, pid, region)


def ended_reason(pid: int) -> str | None:
    """Why process `pid` ended, as its record says; None while it runs."""
    from . import api
    rec = api.info(pid)
    if rec["state"] not in keys.ENDED:
        return None
    return f"process {pid} {rec['state']}: {rec.get('reason') or 'no reason given'}"


def ended_elsewhere(alive: Keepalive, pid: int) -> str | None:
    """Why the process ended, if its keepalive says it did and its record
    agrees (a keepalive that died leaves it running: the region fails, with
    that reason); None otherwise."""
    return ended_reason(pid) if alive.problem() else None


def must_run(alive: Keepalive, pid: int) -> None:
    """ProcessEnded, with its reason, if the process ended elsewhere."""
    why = ended_elsewhere(alive, pid)
    if why:
        raise ProcessEnded(why)


class Engine:
    """Serves the regions of processes run with `rcon={region: engine}`.

    receive(engine, msg): called for each message to one of its devices;
    receive_batch(engine, deliveries): instead, a NumPy structured array of
    deliveries (dst, dst_pin, src, src_pin as indices; the message's fields
    under "msg") per message type; hardware_idle(engine): OnHardwareIdle for its devices.
    When it runs the application's supervisor (rmap "__supervisor__"), messages
    to the supervisor reach receive too (dst "__supervisor__"), it answers
    with reply() and broadcast(), and supervisor_idle(engine) is its
    OnSupervisorIdle, called at each hardware-idle round and at an idle end.
    start(engine): called once as the region starts (e.g. to feed input in).
    `state` holds per-device state (any JSON-able value) for the result."""

    def __init__(self, receive: Callable | None = None, receive_batch: Callable | None = None,
                 hardware_idle: Callable | None = None, supervisor_idle: Callable | None = None,
                 start: Callable | None = None):
        if (receive is None) == (receive_batch is None):
            raise ValueError("give receive or receive_batch")
        self.receive, self.receive_batch, self.hardware_idle = receive, receive_batch, hardware_idle
        self.supervisor_idle, self.start = supervisor_idle, start
        self.state: dict[str, Any] = {}
        self.jobs: list[dict] = []                # bound by pcli.run
        self.region: PyRegion | None = None

    # ---- what the user's functions call -------------------------------------------

    def send(self, src: str, pin: str, send_index: int | None = None, fields: dict | None = None,
             **more) -> None:
        """Send from device `src` on output pin `pin` (to edge `send_index`
        of an indexed pin) a message of these fields (unnamed ones keep their
        defaults); `fields` is for names that clash with the arguments."""
        self._live().send(src, pin, send_index, {**(fields or {}), **more})

    def send_batch(self, src: str | np.ndarray, pin: str, msg: np.ndarray | dict | None = None,
                   send_index: np.ndarray | int | None = None) -> None:
        """Send many messages on output pin `pin` in one call: message i from
        device src[i] (device indices, as a batch's "dst" column; all of one
        device type) or all from device `src` (an id), with fields msg[i] (a
        structured array of the pin's pcli.pyregion.layout_dtype, or a dict
        of arrays or scalars by field name; None: the defaults), to edge
        send_index[i] of an indexed pin (None for a broadcast pin)."""
        self._live().send_batch(src, pin, msg, send_index)

    def reply(self, to: Message | str | int, fields: dict | None = None, **more) -> None:
        """As the supervisor: answer the device that sent `to` (a Message), or
        device `to` (an id or index), on its __SUP_IN__.  Without fields a
        Message is answered with its own fields, as the reference does."""
        if isinstance(to, Message):
            to, fields = to.src, {**to.fields, **(fields or {})}
        self._live().reply(to, {**(fields or {}), **more})

    def broadcast(self, fields: dict | None = None, **more) -> None:
        """As the supervisor: a message to every device with a __SUP_IN__."""
        self._live().broadcast({**(fields or {}), **more})

    def exit(self, code: int = 0) -> None:
        """End the process now, with this exit code (as handler_exit)."""
        self._live().exit(code)

    def log(self, device: str, text: str, level: int = 1) -> None:
        self._live().log(device, text, level)

    def _live(self) -> PyRegion:
        if self.region is None:
            raise RuntimeError("the engine is not running a region (call engine.run())")
        return self.region

    # ---- serving -------------------------------------------------------------------

    def bind(self, future, region: int, app: bytes, rmap: dict, partition: bytes | None, nregions: int,
             timeout: float, debugger: int | None = None) -> None:
        """Called by pcli.run for each region this engine is to serve
        (`nregions` regions of devices; `debugger`: the debugger's place, if paused)."""
        self.jobs.append({"future": future, "region": region, "app": app, "rmap": rmap, "partition": partition,
                          "nregions": nregions, "timeout": timeout, "debugger": debugger})

    def run(self, verbose: bool = False) -> list[dict]:
        """Serve every region bound to this engine, one after the other, until
        its process ends; the results of those regions."""
        done = []
        while self.jobs:
            done.append(self._serve(self.jobs.pop(0), verbose))
        return done

    def _serve(self, job: dict, verbose: bool) -> dict:
        """One region, from its claim to its result.  Its keepalive beats
        from before the claim until the result is recorded, whatever the
        other regions (compiling) or this client's functions do; a process
        that ends elsewhere meanwhile raises ProcessEnded at once."""
        from . import api
        future, region = job["future"], job["region"]
        while (state := api.info(future.pid)["state"]) == "waiting":
            time.sleep(0.05)
        if state != "running":                 # killed or failed before it started: nothing to serve
            raise ProcessEnded(ended_reason(future.pid) or f"process {future.pid} {state}")
        user, ctl = api.user(), api.control()
        alive = keepalive(user, future.pid, region)
        try:
            return self._claim_and_serve(job, verbose, ctl, user, alive)
        finally:
            alive.close()

    def _claim_and_serve(self, job: dict, verbose: bool, ctl: Control, user: str, alive: Keepalive) -> dict:
        future, region = job["future"], job["region"]
        inst = load_instance(job["app"].decode())
        rmap = dict(job["rmap"])
        sup_region = supervisor_region(inst, rmap)
        regions = region_array(inst, rmap) if job["partition"] is None else array("H", job["partition"])
        try:
            plane = DataPlane(AppRendezvous(ctl, user, future.pid, alive), future.pid, future.token, region,
                              job["nregions"] + (job["debugger"] is not None), advertised_host(ctl.r))
        except (DataPlaneError, ValueError) as e:
            if why := ended_elsewhere(alive, future.pid):
                raise ProcessEnded(why) from None       # the process's reason, not the data plane's
            ctl.app_finish(user, future.pid, region, "failed", f"data plane of region {region}: {e}")
            return {}
        on_log = (lambda d, lv, t: print(f"[{APP}:{region}] {d}: {t}", flush=True)) if verbose else None
        result = self.serve(inst, regions, region, plane, job["timeout"], on_log, lambda e: self._progress(alive, region),
                            alive.problem, sup_region, job["debugger"])
        must_run(alive, future.pid)
        state = "failed" if result["status"] == "failed" else "finished"
        if not ctl.app_finish(user, future.pid, region, state, result.get("error", ""), result):
            raise ProcessEnded(ended_reason(future.pid) or f"process {future.pid} ended")   # elsewhere, just before
        return result

    def serve(self, inst: Instance, regions: array, region: int, plane: DataPlane | LocalPlane, timeout: float = 0.0,
              on_log: LogSink | None = None, on_batch: Callable | None = None,
              watch: Callable[[], str | None] = lambda: None, sup_region: int = 0,
              debugger: int | None = None) -> dict:
        """Serve region `region` of `inst` (`regions`: every device's region;
        `sup_region`: the supervisor's)
        over `plane` until the process ends, as pd/region.py's RegionRun
        drives any region; the region's result.  Log lines go to on_log, or
        without one into the result.  The cluster (above) and psim standalone
        (pcli/standalone.py) both serve here."""
        n = plane.nregions - (debugger is not None)
        py = self.region = PyRegion(inst, Topology(inst, regions, region), n, self.receive,
                                    self.receive_batch, self.hardware_idle, owner=self, sup_region=sup_region,
                                    supervisor_idle_fn=self.supervisor_idle, start_fn=self.start)
        lines: list = []
        try:
            out = RegionRun(py, plane, on_log or (lambda d, lv, t: lines.append([d, lv, t])), timeout, on_batch,
                            watch, debugger).run()
        finally:
            plane.close()
            self.region = None
        return self._result(inst, py, out, plane.dropped, lines)

    def _progress(self, alive: Keepalive, region: int) -> None:
        alive.progress({f"delivered:{region}": self.region.outcome().delivered})

    def _result(self, inst: Instance, py: PyRegion, out: Outcome, dropped: int, lines: list) -> dict:
        o, region = py.outcome(), py.topo.my_region
        mine = [d for i, d in enumerate(inst.ids) if py.topo.region[i] == region]
        res = {"states": {d: self.state.get(d, {}) for d in mine},
               "status": out.status if o.stop != STOP_FAIL else "failed",
               "metrics": {"Delivered messages": o.delivered, "Sends": o.sends, "Steps": o.steps,
                            "Exit code": out.exit_code, "Region": region, "Devices": inst.n_devices, "Edges": inst.n_edges,
                            "Dropped frames": dropped, "Hardware idle rounds": out.hw_rounds},
               "log": lines}
        if out.error:
            res["error"] = f"region {region} (application engine): {out.error}"
        return res

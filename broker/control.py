"""The control plane: processes, the gang-scheduled queue, engines and their
heartbeats, results and logs, in Redis.  Updates go through the Lua scripts
in scripts.lua; reads are plain commands on the keys of keys.py."""
from __future__ import annotations

import json
import os
import re
import time
import uuid
import zlib
from pathlib import Path

import orjson
import redis

from . import keys

LOG_CAP = 100_000           # log lines kept per process
HEARTBEAT_TTL_MS = 3000     # an engine silent for this long is dead


def redis_url() -> str:
    return os.environ.get("PSTACK_REDIS", "redis://localhost:6379/0")


def connect(url: str | None = None, password: str | None = None) -> redis.Redis:
    """A client for the pstack Redis: `url`, else $PSTACK_REDIS, else localhost;
    the password from the URL, `password` or $PSTACK_PASSWORD."""
    extra = {}
    if password or os.environ.get("PSTACK_PASSWORD"):
        extra["password"] = password or os.environ["PSTACK_PASSWORD"]
    return redis.Redis.from_url(url or redis_url(), socket_connect_timeout=5, health_check_interval=10, **extra)


def _load_scripts(r: redis.Redis) -> dict:
    here = Path(__file__).parent
    prelude, *parts = re.split(r"^-- @script (\w+)\n", (here / "scripts.lua").read_text(), flags=re.M)
    prelude += (here / "schedule.lua").read_text()       # the scheduler's rules
    return {name: r.register_script(prelude + body) for name, body in zip(parts[::2], parts[1::2])}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Control:
    def __init__(self, r: redis.Redis | None = None):
        self.r = r or connect()
        self.s = _load_scripts(self.r)

    # ---- processes ------------------------------------------------------------

    def submit(self, owner: str, app: bytes, nregions: int, rcon: dict, fields: dict,
               partition: bytes | None = None) -> int:
        """A new process, queued; `partition`: the region of every device
        (uint16 array bytes), when regions were computed for the user.
        ValueError, with the reason, for a process that can never run on
        this cluster (nothing is kept)."""
        uploads = [self._upload(app)] + ([self._upload(partition)] if partition is not None else [])
        args = [owner, nregions, json.dumps({str(k): v for k, v in rcon.items()})]
        for k, v in fields.items():
            args += [k, v if isinstance(v, (str, int, float)) else json.dumps(v)]
        pid = self.s["submit"](keys=uploads, args=args)
        if isinstance(pid, bytes):
            raise ValueError(f"refused: {_text(pid)}")
        return pid

    def _upload(self, data: bytes) -> str:
        key = f"{keys.PREFIX}:upload:{uuid.uuid4().hex}"
        self.r.set(key, zlib.compress(data, 1), ex=3600)
        return key

    def finish_region(self, pid: int, region: int, engine: str, state: str, reason: str = "",
                      result: dict | None = None) -> None:
        # orjson: a million device states serialise in a fraction of json's time
        self.s["finish_region"](args=[pid, region, engine, state, reason, orjson.dumps(result) if result else ""])

    def kill(self, pid: int, user: str, force: bool = False) -> str:
        return _text(self.s["kill"](args=[pid, user, int(force)]))

    def process(self, pid: int) -> dict | None:
        raw = self.r.hgetall(keys.proc(pid))
        if not raw:
            return None
        rec = {_text(k): _text(v) for k, v in raw.items()}
        rec["regions"] = {int(_text(k)): _text(v) for k, v in self.r.hgetall(keys.proc_regions(pid)).items()}
        return rec

    def update(self, pid: int, **fields) -> None:
        self.r.hset(keys.proc(pid), mapping={k: v if isinstance(v, (str, int, float)) else json.dumps(v)
                                              for k, v in fields.items()})

    def progress(self, pid: int, region: int, delivered: int) -> None:
        """Deliveries so far in a running region (for top)."""
        self.r.hset(keys.proc(pid), f"delivered:{region}", delivered)

    def pids(self) -> list[int]:
        return [int(p) for p in self.r.zrange(keys.PROCS, 0, -1)]

    def states(self, pids: list[int]) -> list[str | None]:
        pipe = self.r.pipeline()
        for pid in pids:
            pipe.hget(keys.proc(pid), "state")
        return [_text(s) if s is not None else None for s in pipe.execute()]

    def region_done(self, pid: int, region: int) -> bool:
        return bool(self.r.hexists(keys.proc_results(pid), region))

    def app(self, pid: int) -> bytes:
        return zlib.decompress(self.r.get(keys.proc_app(pid)))

    def partition(self, pid: int) -> bytes | None:
        data = self.r.get(keys.proc_partition(pid))
        return zlib.decompress(data) if data is not None else None

    def results(self, pid: int) -> dict[int, dict]:
        return {int(_text(k)): orjson.loads(v) for k, v in self.r.hgetall(keys.proc_results(pid)).items()}

    # ---- logs and events -----------------------------------------------------------

    def log(self, pid: int, entries: list[dict]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for e in entries:
            pipe.xadd(keys.proc_log(pid), e, maxlen=LOG_CAP, approximate=True)
        pipe.execute()

    def read_log(self, pid: int, after: str = "0-0", block_ms: int | None = None, count: int = 10_000):
        """[(id, {field: value})] after `after`; waits up to block_ms for new lines."""
        got = self.r.xread({keys.proc_log(pid): after}, count=count, block=block_ms)
        if not got:
            return []
        return [(_text(i), {_text(k): _text(v) for k, v in f.items()}) for i, f in got[0][1]]

    def wait_event(self, after: str, block_ms: int) -> str:
        """Wait up to block_ms for any process event after `after`; returns the
        newest event id seen."""
        got = self.r.xread({keys.EVENTS: after}, block=block_ms)
        return _text(got[0][1][-1][0]) if got else after

    def last_event(self) -> str:
        last = self.r.xrevrange(keys.EVENTS, count=1)
        return _text(last[0][0]) if last else "0-0"

    # ---- engines --------------------------------------------------------------------

    def register(self, name: str, host: str, kind: str, slots: int, daemon: str) -> bool:
        return bool(self.s["register"](args=[name, host, kind, slots, daemon, HEARTBEAT_TTL_MS]))

    def heartbeat(self, name: str, daemon: str, cpu: float, mem: int, mem_total: int) -> bool:
        return bool(self.s["heartbeat"](args=[name, daemon, HEARTBEAT_TTL_MS, cpu, mem, mem_total]))

    def unregister(self, name: str, daemon: str, reason: str) -> None:
        self.s["unregister"](args=[name, daemon, reason])

    def reap(self) -> int:
        """Fail the processes of engines whose heartbeat expired."""
        return int(self.s["reap"]())

    def engines(self) -> list[dict]:
        names = sorted(_text(n) for n in self.r.smembers(keys.ENGINES))
        pipe = self.r.pipeline()
        for n in names:
            pipe.hgetall(keys.engine(n))
            pipe.pttl(keys.engine_alive(n))
        raw = pipe.execute()
        now = time.time()
        out = []
        for i, name in enumerate(names):
            rec = {_text(k): _text(v) for k, v in raw[2 * i].items()}
            if not rec:
                continue
            out.append({
                "name": name, "host": rec.get("host", ""), "kind": rec.get("kind", ""),
                "slots": int(rec.get("slots", 0)), "used": int(rec.get("used", 0)),
                "cpu": float(rec.get("cpu", 0)), "mem": int(float(rec.get("mem", 0))),
                "mem_total": int(float(rec.get("mem_total", 0))),
                "heartbeat_age": round(now - float(rec.get("beat", now)), 3),
                "alive": raw[2 * i + 1] > 0,
            })
        return out

    def next_job(self, engine: str, timeout: float) -> tuple[int, int] | None:
        got = self.r.blpop([keys.engine_jobs(engine)], timeout=timeout)
        if not got:
            return None
        try:
            pid, region = _text(got[1]).split()
            return int(pid), int(region)
        except ValueError:
            raise ValueError(f"malformed job entry {got[1]!r} for engine {engine}") from None

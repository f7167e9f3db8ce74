"""The control plane: processes, the gang-scheduled queue, engines and their
heartbeats, results and logs, in Redis.  Updates go through the Lua scripts
in scripts.lua; reads are plain commands on the keys of keys.py."""
from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import socket
import time
import uuid
import zlib
from pathlib import Path
from typing import Iterator, NamedTuple
from urllib.parse import urlsplit

import orjson
import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from . import diskfull, keys
from .credentials import redact, redis_password, redis_url
from .diskfull import DiskFull

LOG_CAP = 100_000           # log lines kept per process
TRACE_TTL = 86_400          # seconds a process's event trace is kept after its last chunk
TRACE_CUT = b""             # the last chunk of a trace cut at its region's limit (pd/worker.py)
HEARTBEAT_TTL_MS = 3000     # an engine silent for this long is dead
REGION_TTL_MS = 3000        # a region worker silent for this long is dead
START_TTL_MS = 10_000       # a claimed region's worker must beat within this (a new Python starting up)
# a client-side region (application engine, debugger) silent for this long is
# gone: its beats take two hops (client, scheduler) on machines we do not run
APP_TTL_MS = 10_000
REAP_GRACE_MS = HEARTBEAT_TTL_MS + 2000     # after Redis (re)starts, time to heartbeat again
REQUEST_TIMEOUT = 30.0      # seconds a client waits for the scheduler's answer
SUBMIT_LEASE = 30.0         # seconds a submission's client may go without word before the process fails
RESULT_TTL = 7 * 86_400     # seconds an ended process is kept, unless $PSTACK_RESULT_TTL says otherwise
EXPIRE_BATCH = 20           # processes expired, and silent submissions failed, per reap at most (~1 ms;
                            # reaps run several times a second)
PURGE_PAGE = 200            # processes a purge looks at per script call
PURGE_BUDGET = 1000         # keys a purge deletes per script call, about (~1-3 ms: no one waits on Redis)
LOG_PAGE = 1000             # log lines appended per script call
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
BUSY_PATIENCE = 60.0        # seconds a command waits out BUSY answers (Redis held by a long script)
CONNECT_SECONDS = 2.0       # to open a connection: a reachable Redis accepts in milliseconds, even far away
APP = "@app"                # rcon's value for a region run by its owner's application engine (pcli.Engine)
APP_OPS = ("app_claim", "app_beat", "app_finish", "app_log")     # its requests


class Job(NamedTuple):
    """One region of one process, as assigned to an engine; `token` is the
    process's incarnation (made at submission), which every write from the
    region's worker carries."""
    pid: int
    region: int
    token: str
    engine: str

    def __str__(self) -> str:
        return f"{self.pid} {self.region} {self.token} {self.engine}"

    @classmethod
    def parse(cls, text: str) -> "Job":
        pid, region, token, engine = text.split()
        return cls(int(pid), int(region), token, engine)


def connect(url: str | None = None, password: str | None = None, patience: float = 0.0,
            timeout: float = 5.0) -> redis.Redis:
    """A client for the pstack Redis: `url`, else $PSTACK_REDIS, else localhost;
    the password from the URL, `password`, $PSTACK_PASSWORD or the
    configuration file (broker/credentials.py).  With
    `patience` (seconds), a command retries while Redis is unreachable,
    loading (a restart) or refusing writes (its disk full), for about that
    long, before it raises.  A full disk raises DiskFull (broker/diskfull.py).
    Every command waits out BUSY answers (Patient).  `timeout`:
    seconds to wait for a reply (and to connect, up to CONNECT_SECONDS)."""
    extra = {}
    url = url or redis_url()
    password = password or (None if urlsplit(url).password else redis_password())    # the URL's wins
    if password:
        extra["password"] = password
    if patience:                              # a refused write did nothing: retried too
        extra["retry"] = Patient(ExponentialBackoff(cap=0.5, base=0.05), retries=int(patience / 0.5) + 4,
                                 supported_errors=(redis.ConnectionError, redis.TimeoutError, DiskFull))
    else:                                       # redis-py's own default, and BUSY waited out
        extra["retry"] = Patient(NoBackoff(), 0)
    return redis.Redis.from_url(url, socket_connect_timeout=min(timeout, CONNECT_SECONDS),
                                socket_timeout=timeout, health_check_interval=10,
                                parser_class=diskfull.parser(url, password), **extra)


BUSY = re.compile(r"(^|: )BUSY ")


def busy(e: BaseException) -> bool:
    """Redis answered BUSY: a script (or module command) holds it.  redis-py
    raises a plain ResponseError for it, worded "Command # N (...) of
    pipeline caused error: BUSY ..." in a pipeline and as an ExecAbortError
    "Transaction discarded because of: BUSY ..." in a transaction, which ran
    nothing (LOADING, after a restart, is BusyLoadingError, a ConnectionError)."""
    return isinstance(e, redis.ResponseError) and BUSY.search(str(e)) is not None


class Patient(Retry):
    """redis-py's Retry, which also waits out BUSY answers for up to
    BUSY_PATIENCE seconds: Redis refused the command whole, so it is sent
    again as it was.  A stall is nobody's fault here: a daemon, worker,
    scheduler or client rides it out instead of failing what it serves."""

    def call_with_retry(self, do, fail, *args, **kwargs):
        return super().call_with_retry(lambda: _through_busy(do), fail, *args, **kwargs)


def _through_busy(do):
    deadline = time.monotonic() + BUSY_PATIENCE
    while True:
        try:
            return do()
        except redis.ResponseError as e:
            if not busy(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def unreachable(url: str, e: redis.ConnectionError | redis.TimeoutError) -> str:
    """What went wrong reaching the Redis at URL, in one line (its secret hidden)."""
    cause = e.__context__
    if isinstance(e, redis.AuthenticationError):
        return f"Redis at {redact(url)} refused the identity: {e}"
    if isinstance(e, redis.TimeoutError):
        why = "it did not answer in time"
    elif isinstance(cause, socket.gaierror):
        why = f"unknown host ({cause.strerror})"
    elif isinstance(cause, OSError) and cause.strerror:
        why = cause.strerror.lower()                     # connection refused, no route to host, ...
    else:
        why = str(e)
    return f"cannot reach Redis at {redact(url)}: {why}"


def duration(text: str) -> float:
    """Seconds in "3600", "90s", "30m", "12h" or "7d"; ValueError naming the text otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (seconds, or a number with s, m, h or d: 90m, 12h, 7d)")
    return float(m[1]) * UNITS[m[2]]


def result_ttl() -> float:
    """How long an ended process (record, result, log) is kept before it is
    purged: $PSTACK_RESULT_TTL (a duration), else RESULT_TTL; 0 keeps it
    for ever.  ValueError for a value that is not a duration."""
    text = os.environ.get("PSTACK_RESULT_TTL", "")
    try:
        return duration(text) if text else RESULT_TTL
    except ValueError as e:
        raise ValueError(f"PSTACK_RESULT_TTL: {e}") from None


def phase(rec: dict) -> str:
    """What a process is doing (keys.py: its phases), from its record as
    Control.process gives it: its end state; while its client submits it,
    the client's phase; queued; then the least advanced phase of its
    regions that run on engines (application engines report none)."""
    if rec["state"] in keys.ENDED:
        return rec["state"]
    if rec["state"] == "waiting":
        return rec.get("phase") or "queued"
    regions = [r for r, eng in rec["regions"].items() if eng != APP]
    phases = [rec.get(f"phase:{r}", "starting") for r in regions]
    return min(phases, key=keys.REGION_PHASES.index, default="running")


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

    # ---- a user's requests (served by pd/scheduler.py) ---------------------------------

    def create(self, user: str, nregions: int, rcon: dict, record: dict, phase: str = "uploading",
               lease: float = SUBMIT_LEASE) -> tuple[int, str]:
        """Ask the scheduler for a new process, before its application is
        uploaded: its pid and incarnation token.  It waits in `phase`
        (keys.CLIENT_PHASES) until submit(); without word from this client
        (prepare(), submit()) for `lease` seconds it fails.  ValueError,
        with the reason, for a process that can never run on this cluster
        (nothing is kept)."""
        answer = self.request(user, {"op": "create", "nregions": nregions, "phase": phase, "lease": lease,
                                     "rcon": json.dumps({str(k): v for k, v in rcon.items()}),
                                     "record": json.dumps(record)})
        return int(answer["pid"]), answer["token"]

    def prepare(self, user: str, pid: int, phase: str, **counts: int) -> None:
        """Tell the scheduler how far the submission of `pid` got (its
        phase; devices, edges when known), which renews its lease."""
        self.request(user, {"op": "prepare", "pid": pid, "phase": phase, "counts": json.dumps(counts)})

    def submit(self, user: str, app: bytes | str, nregions: int, rcon: dict, record: dict,
               partition: bytes | str | None = None, instance: bytes | str | None = None) -> tuple[int, str]:
        """create() and queue() in one go: a new process's pid and incarnation token."""
        pid, token = self.create(user, nregions, rcon, record)
        self.queue(user, pid, app, partition, instance)
        return pid, token

    def queue(self, user: str, pid: int, app: bytes | str, partition: bytes | str | None = None,
              instance: bytes | str | None = None) -> None:
        """Queue a process made by create(), with its application.
        `partition`: the region of every device (uint16 array bytes), when
        regions were computed for the user; `instance`: the application's
        binary instance form (pd/form.py), for the regions to load instead
        of parsing.  Each is bytes, or the key of an upload() made already.
        ValueError with the reason when it cannot be (it ended meanwhile:
        killed, or its lease ran out)."""
        def key(data: bytes | str | None) -> str:
            return "" if data is None else data if isinstance(data, str) else self.upload(user, data)
        self.request(user, {"op": "submit", "pid": pid, "app": key(app), "partition": key(partition),
                            "instance": key(instance)})

    def purge(self, user: str, pids: tuple[int, ...] = (), everyone: bool = False, before: float | None = None,
              force: bool = False) -> dict:
        """Ask the scheduler to purge ended processes: `pids`, else the
        user's (everyone's) ended before `before` (epoch seconds; None: any
        time).  {"purged": [pid, ...], "refused": {pid: nosuch | notyours |
        STATE}}, or {"denied": 1}: everyone's, without the right."""
        answer = self.request(user, {"op": "purge", "pids": " ".join(map(str, pids)), "force": int(force),
                                     "whose": "all" if everyone else "mine",
                                     "before": "" if before is None else repr(before)})
        if answer.get("denied"):
            return {"denied": 1}
        return {"purged": list(answer.get("purged") or []),         # Lua's empty table comes as {}
                "refused": {int(k): v for k, v in (answer.get("refused") or {}).items()}}

    def kill(self, user: str, pid: int, force: bool = False, why: str = "") -> str:
        """Ask the scheduler to kill a process (`why`: for its reason):
        'killed', 'ended' (already), 'nosuch' or 'notyours'."""
        return self.request(user, {"op": "kill", "pid": pid, "force": int(force), "why": why})["outcome"]

    def request(self, user: str, fields: dict, timeout: float = REQUEST_TIMEOUT) -> dict:
        """Put a request in the user's inbox and wait for the scheduler's
        answer; ValueError with the scheduler's reason if it refused."""
        rid = _text(self.r.xadd(keys.requests(user), fields))
        deadline, got = time.monotonic() + timeout, None
        while got is None and time.monotonic() < deadline:     # short waits: the socket has its own timeout
            try:
                got = self.r.blpop([keys.reply(user, rid)], timeout=1)
            except redis.TimeoutError:                # Redis stalled (stopped, a long command): wait on
                pass
        if got is None:
            raise TimeoutError(f"the scheduler did not answer {fields['op']} request {rid} in {timeout:.0f} s "
                               "(is pd.scheduler running next to Redis?)")
        answer = json.loads(got[1])
        if "error" in answer:
            raise ValueError(answer["error"])
        return answer

    def upload(self, user: str, data: bytes) -> str:
        """Put `data` (compressed) in the user's inbox for a submission; its
        key.  zlib and the socket let go of the GIL: uploads overlap other work."""
        key = keys.upload(user, uuid.uuid4().hex)
        self.r.set(key, zlib.compress(data, 1), ex=3600)
        return key

    # the scheduler's side: acting on a request, once (False: served already)

    def accept_create(self, user: str, rid: str, nregions: int, rcon: str, record: dict, phase: str,
                      lease: float) -> bool:
        args = [user, rid, secrets.token_hex(8), nregions, rcon, phase, lease]
        for k, v in record.items():
            args += [k, v if isinstance(v, (str, int, float)) else json.dumps(v)]
        return self.s["create"](args=args) is not None

    def accept_prepare(self, user: str, rid: str, pid: int, phase: str, counts: dict[str, int]) -> bool:
        args: list = [user, rid, pid, phase]
        for k, v in counts.items():
            args += [k, v]
        return self.s["prepare"](args=args) is not None

    def accept_submit(self, user: str, rid: str, pid: int, uploads: dict[str, str]) -> bool:
        """`uploads`: {"app": key, and "partition", "instance" when sent}."""
        return self.s["submit"](keys=list(uploads.values()), args=[user, rid, pid, " ".join(uploads)]) is not None

    def purge_pids(self, user: str, pids: list[int], may_purge_any: bool) -> dict:
        """Purge the first of `pids` a page can (PURGE_PAGE, PURGE_BUDGET):
        {"done": how many of them were dealt with, "purged": [pid, ...],
        "refused": {pid: why}}."""
        return json.loads(self.s["purge"](args=[user, int(may_purge_any), PURGE_BUDGET, *pids[:PURGE_PAGE]]))

    def purge_ended(self, user: str, everyone: bool, before: float | None, skip: int) -> dict:
        """Purge a page of the ended processes of `user` (everyone's) ended
        before `before`, past the first `skip` (others', left in place):
        {"skipped": how many of others' it left, "purged": [pid, ...], "last": whether it was the last page}."""
        args = [user, "all" if everyone else "mine", "" if before is None else before, skip, PURGE_PAGE,
                PURGE_BUDGET]
        return json.loads(self.s["purge_ended"](args=args))

    def respond(self, user: str, rid: str, answer: dict) -> bool:
        """Answer a request served in pages; False if it was answered already."""
        return self.s["respond"](args=[user, rid, json.dumps(answer)]) is not None

    def accept_kill(self, user: str, rid: str, pid: int, may_kill_any: bool, why: str = "") -> bool:
        return self.s["kill"](args=[user, rid, pid, int(may_kill_any), why]) is not None

    def refuse(self, user: str, rid: str, why: str) -> bool:
        return self.s["refuse"](args=[user, rid, why]) is not None

    def accept_app(self, op: str, user: str, rid: str, pid: int, region: int, fields: dict) -> bool:
        """An application engine's request for its region (APP_OPS), checked
        and answered by its script."""
        args: list = [user, rid, pid, region]
        if op == "app_claim":
            args += [fields["curve"], fields["address"], APP_TTL_MS]
        elif op == "app_beat":
            args.append(APP_TTL_MS)
            for k, v in json.loads(fields.get("progress", "{}")).items():
                args += [k, v]
        elif op == "app_finish":
            args += [fields["state"], fields.get("reason", ""), fields.get("result", "")]
        else:                                    # app_log
            args.append(LOG_CAP)
            for device, level, text in json.loads(fields["lines"]):
                args += [APP, region, device, int(level), text]
        return self.s[op](args=args) is not None

    # an application engine's side (pcli.Engine): its region, through the scheduler

    def app_claim(self, user: str, pid: int, region: int, curve: str, address: str) -> str:
        """Claim region `region` (rcon APP) of the user's process `pid`,
        publishing its data-plane record: the process's token."""
        return self.request(user, {"op": "app_claim", "pid": pid, "region": region, "curve": curve,
                                   "address": address})["token"]

    def app_beat(self, user: str, pid: int, region: int, **progress) -> tuple[str, int]:
        answer = self.request(user, {"op": "app_beat", "pid": pid, "region": region,
                                     "progress": json.dumps(progress)})
        return answer["verdict"], int(answer["done"])

    def app_finish(self, user: str, pid: int, region: int, state: str, reason: str = "",
                   result: dict | None = None) -> bool:
        """Record the region's result; False if the process had ended without it (failed, killed)."""
        return bool(self.request(user, {"op": "app_finish", "pid": pid, "region": region, "state": state,
                                        "reason": reason, "result": orjson.dumps(result).decode() if result else ""})
                    ["done"])

    def app_log(self, user: str, pid: int, region: int, lines: list[tuple[str, int, str]]) -> None:
        self.request(user, {"op": "app_log", "pid": pid, "region": region, "lines": json.dumps(lines)})

    # ---- regions -----------------------------------------------------------------------

    def finish_region(self, job: Job, state: str, reason: str = "", result: bytes | dict | None = None,
                      **progress) -> bool:
        """Record a region's end, with its result record (pd/results.py: the
        packed bytes as they are, or a dict recorded as JSON) and its last
        progress fields (as region_beat's); False if the job is stale (refused)."""
        record = result if isinstance(result, bytes) else orjson.dumps(result) if result else b""
        args = [job.pid, job.region, job.engine, job.token, state, reason, record]
        for k, v in progress.items():
            args += [k, v]
        return bool(self.s["finish_region"](args=args))

    def claim(self, job: Job) -> str:
        """A daemon takes a job: 'ok', or why not ('stale', 'ended', 'elsewhere')."""
        return _text(self.s["claim"](args=[job.pid, job.region, job.token, job.engine, START_TTL_MS]))

    def region_beat(self, job: Job, daemon: str, **fields) -> tuple[str, int]:
        """A region worker's heartbeat, with progress fields for the process
        record: the verdict ('ok', 'ended', 'stale', 'orphan') and how many
        regions have recorded their result."""
        args = [job.pid, job.region, job.token, job.engine, daemon, REGION_TTL_MS]
        for k, v in fields.items():
            args += [k, v]
        verdict, done = self.s["region_beat"](args=args)
        return _text(verdict), int(done)

    def proc_set(self, job: Job, **fields) -> bool:
        """Set fields of the process record from one of its workers (fenced)."""
        args = [job.pid, job.token]
        for k, v in fields.items():
            args += [k, v]
        return bool(self.s["proc_set"](args=args))

    # ---- processes ------------------------------------------------------------------

    def process(self, pid: int) -> dict | None:
        """The process record, or None if there is no (whole) record; while
        it waits, "position": its place in the queue (1: first)."""
        with self.r.pipeline(transaction=True) as p:
            p.hgetall(keys.proc(pid))
            p.hgetall(keys.proc_regions(pid))
            p.lpos(keys.QUEUE, pid)
            raw, regions, index = p.execute()
        if b"owner" not in raw:                  # every record is made whole by create
            return None
        rec = {_text(k): _text(v) for k, v in raw.items()}
        rec["regions"] = {int(_text(k)): _text(v) for k, v in regions.items()}
        if index is not None:
            rec["position"] = str(index + 1)
        return rec

    def token(self, pid: int) -> str | None:
        """The process's incarnation token (a private key: its owner, engines
        and admins may read it), or None if there is no such process."""
        owner = self.r.hget(keys.proc(pid), "owner")
        token = self.r.get(keys.proc_token(_text(owner), pid)) if owner is not None else None
        return _text(token) if token is not None else None

    def pids(self) -> list[int]:
        return [int(p) for p in self.r.zrange(keys.PROCS, 0, -1)]

    def states(self, pids: list[int]) -> list[str | None]:
        pipe = self.r.pipeline()
        for pid in pids:
            pipe.hget(keys.proc(pid), "state")
        return [_text(s) if s is not None else None for s in pipe.execute()]

    def owner(self, pid: int) -> str:
        """The owner of a process, whose key prefix holds its private keys."""
        owner = self.r.hget(keys.proc(pid), "owner")
        if owner is None:
            raise ValueError(f"no process {pid}")
        return _text(owner)

    def region_done(self, pid: int, region: int) -> bool:
        return bool(self.r.hexists(keys.proc_results(self.owner(pid), pid), region))

    def app(self, pid: int) -> bytes:
        return zlib.decompress(self.r.get(keys.proc_app(self.owner(pid), pid)))

    def partition(self, pid: int) -> bytes | None:
        data = self.r.get(keys.proc_partition(self.owner(pid), pid))
        return zlib.decompress(data) if data is not None else None

    def instance(self, pid: int) -> bytes | None:
        """The binary instance form the client sent, if any (zlib.error: not compressed as sent)."""
        data = self.r.get(keys.proc_instance(self.owner(pid), pid))
        return zlib.decompress(data) if data is not None else None

    def results(self, pid: int) -> dict[int, bytes]:
        """Each region's result record as recorded (pd/results.py reads them)."""
        raw = self.r.hgetall(keys.proc_results(self.owner(pid), pid))
        return {int(_text(k)): v for k, v in raw.items()}

    def app_head(self, pid: int, until: bytes = b"</GraphType>", chunk: int = 1 << 16) -> bytes:
        """The application's text up to and including `until` (its graph
        type), decompressing no more of it than that."""
        data, z, out = self.r.get(keys.proc_app(self.owner(pid), pid)), zlib.decompressobj(), b""
        for at in range(0, len(data), chunk):
            out += z.decompress(data[at:at + chunk])
            end = out.find(until)
            if end >= 0:
                return out[:end + len(until)]
        return out + z.flush()

    # ---- logs and events -----------------------------------------------------------

    def log(self, job: Job, entries: list[tuple[str, int, str]]) -> None:
        """Log lines (device, level, text) of a region to its process's stream."""
        for at in range(0, len(entries), LOG_PAGE):     # a handler may log without bound: pages
            args: list = [job.pid, job.token, LOG_CAP]
            for device, level, text in entries[at:at + LOG_PAGE]:
                args += [job.engine, job.region, device, level, text]
            self.s["log"](args=args)

    def trace(self, job: Job, data: bytes) -> None:
        """One more chunk of a region's event trace (psim/trace.py)."""
        self.s["trace"](args=[job.pid, job.token, job.region, TRACE_TTL, data])

    def rate(self, job: Job, points: bytes, whole: bool) -> None:
        """More of a region's delivered count over time (psim/series.py's
        packed points), or all of it anew (`whole`)."""
        self.s["rate"](args=[job.pid, job.token, job.region, "set" if whole else "append", points])

    def rates(self, pid: int, nregions: int) -> dict[int, bytes]:
        """Each region's packed points (regions that recorded none left out)."""
        owner = self.owner(pid)
        pipe = self.r.pipeline()
        for region in range(nregions):
            pipe.get(keys.proc_rate(owner, pid, region))
        return {r: data for r, data in enumerate(pipe.execute()) if data}

    def read_trace(self, pid: int, region: int, page: int = 64) -> Iterator[bytes]:
        """The chunks of a region's event trace, a page at a time."""
        key = keys.proc_trace(self.owner(pid), pid, region)
        for start in itertools.count(0, page):
            chunks = self.r.lrange(key, start, start + page - 1)
            yield from chunks
            if len(chunks) < page:
                return

    def read_log(self, pid: int, after: str = "0-0", block_ms: int | None = None, count: int = 10_000):
        """[(id, {field: value})] after `after`; waits up to block_ms for new lines."""
        got = self.r.xread({keys.proc_log(self.owner(pid), pid): after}, count=count, block=block_ms)
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

    def heartbeat(self, name: str, daemon: str, cpu: float, mem: int, mem_total: int,
                  workers_cpu: float = 0.0, workers_mem: int = 0) -> bool:
        return bool(self.s["heartbeat"](args=[name, daemon, HEARTBEAT_TTL_MS, cpu, mem, mem_total,
                                              workers_cpu, workers_mem]))

    def unregister(self, name: str, daemon: str, reason: str) -> None:
        self.s["unregister"](args=[name, daemon, reason])

    def index_ended(self) -> int:
        """Ended processes of an older pstack (not in keys.ENDED_AT) join it: how many."""
        joined = 0
        for first in range(0, self.r.zcard(keys.PROCS), PURGE_PAGE):      # bounded work per call
            joined += int(self.s["index_ended"](args=[first, PURGE_PAGE]))
        return joined

    def reap(self, result_ttl: float = 0) -> int:
        """Fail the processes of engines whose heartbeat expired, of claimed
        regions whose worker stopped heartbeating, and of submissions whose
        client went silent; purge processes that ended more than
        `result_ttl` seconds ago (0: none), EXPIRE_BATCH at most."""
        return int(self.s["reap"](args=[REAP_GRACE_MS, result_ttl, EXPIRE_BATCH]))

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
                "workers_cpu": float(rec.get("workers_cpu", 0)), "workers_mem": int(float(rec.get("workers_mem", 0))),
                "heartbeat_age": round(now - float(rec.get("beat", now)), 3),
                "alive": raw[2 * i + 1] > 0,
            })
        return out

    def next_job(self, engine: str, timeout: float) -> Job | None:
        """The next job for `engine`, moved atomically from its jobs list to
        its taken list, where it stays until claim(): a job is never lost
        between the two, even if Redis or this connection fails there.  A job
        taken and not claimed (the claim failed) comes back first."""
        taken = keys.engine_taken(engine)
        got = self.r.lindex(taken, 0) or self.r.blmove(keys.engine_jobs(engine), taken, timeout, "LEFT", "RIGHT")
        if not got:
            return None
        try:
            return Job.parse(f"{_text(got)} {engine}")
        except ValueError:
            self.r.lrem(taken, 1, got)
            raise ValueError(f"malformed job entry {got!r} for engine {engine}") from None

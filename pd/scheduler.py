"""The scheduler service: the one trusted program that acts on users' requests.

Users cannot write any key of a process (broker/acl.py): they put requests
in their inbox stream (pstack:u:USER:in:requests), which only they can
write.  This service, running next to Redis with the engine identity, reads
every user's inbox, checks each request, and acts on it with the inbox's
user as the requester: a submission becomes a process owned by that user, a
kill is allowed by broker/acl.py's rules.  Each request is served once, in
the Lua script that acts on it (broker/scripts.lua), so several schedulers
may run.  It also reaps dead engines and regions, so processes fail on time
even when no daemon is left.

    python -m pd.scheduler            (the URL: broker/credentials.py)
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import time

import psutil
import redis

from broker import acl, keys
from broker.control import APP, APP_OPS, LOG_PAGE, Control, _text, connect, result_ttl
from broker.credentials import redact, redis_url
from broker.diskfull import DiskFull
from psim.engine import Options

from . import quota

BLOCK_MS = 250              # also how soon a new user's inbox is read
PER_USER = 20               # requests of one user served per pass: a flood of one inbox delays others little
REAP_SECONDS = 0.5
RECORD_FIELDS = ("rmap", "options", "verbose", "app_name", "debugger")   # what a submission may set in its record
MAX_REGIONS = 65_535        # partitions are uint16
UPLOADS = ("partition", "instance")     # what a submission may upload beside the application
LEASES = (1.0, 600.0)       # the shortest and longest lease a submission's client may ask for (s)
COUNTS = ("devices", "edges")           # what a submission's client may say it knows
log = logging.getLogger("pd.scheduler")


class Refusal(ValueError):
    """A request the scheduler turns down, with the reason the user sees."""


class Scheduler:
    def __init__(self, ctl: Control):
        self.ctl = ctl
        self.secured = _text(ctl.r.execute_command("ACL", "WHOAMI")) != acl.OPEN
        self.last_reap = 0.0
        self.result_ttl = result_ttl()
        self.ident = f"{socket.gethostname()}:{os.getpid()}"
        self.caps = quota.Caps.from_env()
        self.sweep = quota.Sweep(ctl.r, self.caps)
        ctl.index_ended()
        self.recover()

    def step(self) -> int:
        """Serve the requests waiting (or arriving within BLOCK_MS); reap when
        due.  Returns how many requests were served."""
        roles = {_text(k): _text(v) for k, v in self.ctl.r.hgetall(keys.USERS).items()}
        owners = {keys.requests(u): u for u in roles}
        got = self.ctl.r.xread(dict.fromkeys(owners, "0-0"), count=PER_USER, block=BLOCK_MS) if owners else \
            time.sleep(BLOCK_MS / 1000)
        served = 0
        for stream, entries in got or []:
            user = owners[_text(stream)]
            for rid, fields in entries:
                served += self.guarded(user, roles.get(user), _text(rid), fields)
        if time.monotonic() - self.last_reap >= REAP_SECONDS:
            self.ctl.reap(self.result_ttl)
            self.last_reap = time.monotonic()
        return served

    def guarded(self, user: str, role: str | None, rid: str, raw: dict) -> bool:
        """Serve one request whatever it holds: anything that goes wrong
        answers it with a reason and removes it.  While it is served, its
        mark in keys.SERVING says so, so that a scheduler killed by it (say,
        out of memory) does not serve it again when it restarts."""
        mark = f"{user} {rid}"
        self.ctl.r.hset(keys.SERVING, mark, self.ident)
        try:
            return self.serve(user, role, rid, raw)
        except (redis.ConnectionError, redis.TimeoutError, DiskFull):
            raise                                   # Redis went, stalled or cannot write: the request waits
        except Exception as e:                      # noqa: BLE001 - a request must never stop the service
            log.exception("request %s of %s failed", rid, user)
            return self._refuse(user, rid, f"the scheduler failed on this request ({_short(e)})")
        finally:
            self.ctl.r.hdel(keys.SERVING, mark)

    def serve(self, user: str, role: str | None, rid: str, raw: dict) -> bool:
        fields: dict[str, str] = {}
        try:
            fields = _decode(raw)
            self.bounded(user, fields)
            op = fields.get("op")
            if op == "create":
                return self.create(user, rid, fields)
            if op == "prepare":
                return self.prepare(user, rid, fields)
            if op == "submit":
                return self.submit(user, rid, fields)
            if op in ("kill", "purge"):
                anyone = acl.may_kill_any(role, self.secured, fields.get("force") == "1")
                if op == "kill":
                    return self.ctl.accept_kill(user, rid, int(fields["pid"]), anyone, fields.get("why", "")[:500])
                return self.purge(user, rid, fields, anyone)
            if op in APP_OPS:                  # the owner's application engine, for its region
                return self.ctl.accept_app(op, user, rid, int(fields["pid"]), int(fields["region"]), fields)
            raise Refusal(f"unknown request {_short(op)}")
        except Refusal as e:
            return self._refuse(user, rid, str(e))
        except (KeyError, ValueError, TypeError, AttributeError, RecursionError, OverflowError) as e:
            return self._refuse(user, rid, f"malformed {_short(fields.get('op'))} request: {_short(e)}")

    def _refuse(self, user: str, rid: str, why: str) -> bool:
        """Answer a request with `why` and remove it; if even that fails, remove it."""
        try:
            return self.ctl.refuse(user, rid, why)
        except (redis.ConnectionError, redis.TimeoutError, DiskFull):
            raise
        except redis.RedisError:
            log.exception("could not answer request %s of %s; removing it", rid, user)
            self.ctl.r.xdel(keys.requests(user), rid)
            return False

    def recover(self) -> int:
        """Refuse the requests a scheduler of this host was serving when it
        died (its mark is left, and its process is gone): serving them again
        could kill this one the same way.  Returns how many."""
        host = socket.gethostname()
        dropped = 0
        for mark, ident in self.ctl.r.hgetall(keys.SERVING).items():
            who, _, pid = _text(ident).rpartition(":")
            if who != host or _scheduler_alive(int(pid)):
                continue                             # another host's scheduler, or one still serving here
            user, _, rid = _text(mark).partition(" ")
            log.warning("request %s of %s was being served when the scheduler stopped: refusing it", rid, user)
            dropped += self._refuse(user, rid, "the scheduler stopped while serving this request; "
                                               "it is not served again")
            self.ctl.r.hdel(keys.SERVING, mark)
        return dropped

    def bounded(self, user: str, fields: dict[str, str]) -> None:
        """Refuse a request too big for its kind, or from an inbox that
        holds too many (pd/quota.py): served or not, each costs bounded work."""
        _check(self.caps.request(fields, self.ctl.r.xlen(keys.requests(user))))
        if fields.get("op") == "app_log" and len(json.loads(fields["lines"])) > LOG_PAGE:
            raise Refusal(f"an application engine's log request carries at most {LOG_PAGE} lines")
        if fields.get("op") == "app_beat" and len(json.loads(fields.get("progress", "{}"))) > quota.PROGRESS_FIELDS:
            raise Refusal(f"an application engine's beat carries at most {quota.PROGRESS_FIELDS} progress fields")

    def create(self, user: str, rid: str, fields: dict[str, str]) -> bool:
        nregions = int(fields["nregions"])
        if not 1 <= nregions <= MAX_REGIONS:
            raise Refusal(f"a process has 1 to {MAX_REGIONS} regions, not {nregions}")
        rcon = json.loads(fields["rcon"])
        if not isinstance(rcon, dict) or not all(k.isdigit() and isinstance(v, str) for k, v in rcon.items()):
            raise Refusal("rcon maps regions to engine names")
        slots = sum(int(s) for s in self.ctl.r.hvals(keys.KNOWN))
        _check(quota.regions(nregions, rcon, APP, slots))
        _check(self.caps.create(int(self.ctl.r.hget(keys.WAITING, user) or 0)))
        record = json.loads(fields["record"])
        if not isinstance(record, dict) or set(record) - set(RECORD_FIELDS):
            raise Refusal(f"a submission sets only {', '.join(RECORD_FIELDS)}")
        Options.from_dict(record.get("options", {}))         # unknown options: refused with psim's reason
        if "debugger" in record and (record["debugger"] != nregions - 1 or rcon.get(str(nregions - 1)) != APP):
            raise Refusal("the debugger's place is the last region, served from the client (rcon: @app)")
        phase, lease = _phase(fields["phase"]), float(fields["lease"])
        if not LEASES[0] <= lease <= LEASES[1]:
            raise Refusal(f"a submission's lease is {LEASES[0]:g} to {LEASES[1]:g} s, not {lease:g}")
        return self.ctl.accept_create(user, rid, nregions, fields["rcon"], record, phase, lease)

    def prepare(self, user: str, rid: str, fields: dict[str, str]) -> bool:
        counts = json.loads(fields["counts"])
        if not isinstance(counts, dict) or set(counts) - set(COUNTS) or \
                not all(isinstance(v, int) and v >= 0 for v in counts.values()):
            raise Refusal(f"a submission's client may tell only {', '.join(COUNTS)} (counts)")
        return self.ctl.accept_prepare(user, rid, int(fields["pid"]), _phase(fields["phase"]), counts)

    def submit(self, user: str, rid: str, fields: dict[str, str]) -> bool:
        uploads = {"app": _upload(user, fields["app"])}
        uploads.update({name: _upload(user, fields[name]) for name in UPLOADS if fields.get(name)})
        pipe = self.ctl.r.pipeline(transaction=False)
        for key in uploads.values():
            pipe.exists(key)
            pipe.strlen(key)
        got = pipe.execute()
        for key, there, size in zip(uploads.values(), got[::2], got[1::2]):
            why = self.caps.upload(key, size if there else None)
            if why:
                self.ctl.r.unlink(*uploads.values())         # nothing of a refused submission is kept
                raise Refusal(why)
        return self.ctl.accept_submit(user, rid, int(fields["pid"]), uploads)

    def purge(self, user: str, rid: str, fields: dict[str, str], anyone: bool) -> bool:
        """Served in pages (each script call bounded work: Redis serves
        everyone else between them), answered once at the end."""
        pids = [int(p) for p in fields["pids"].split()]
        _check(quota.purge_pids(pids))
        before = float(fields["before"]) if fields["before"] else None
        if fields["whose"] not in ("mine", "all"):
            raise Refusal("purge: whose is mine or all")
        if pids:
            answer = self._purge_pids(user, pids, anyone)
        elif fields["whose"] == "all" and not anyone:
            answer = {"denied": 1}
        else:
            answer = self._purge_ended(user, fields["whose"] == "all", before)
        return self.ctl.respond(user, rid, answer)

    def _purge_pids(self, user: str, pids: list[int], anyone: bool) -> dict:
        purged, refused = [], {}
        while pids:
            page = self.ctl.purge_pids(user, pids, anyone)
            purged += page["purged"] or []               # Lua's empty table comes as {}
            refused.update(page["refused"] or {})
            pids = pids[page["done"]:]
        return {"purged": purged, "refused": refused}

    def _purge_ended(self, user: str, everyone: bool, before: float | None) -> dict:
        purged, skip = [], 0
        while True:
            page = self.ctl.purge_ended(user, everyone, before, skip)
            purged += page["purged"] or []
            skip += page["skipped"]
            if page["last"]:
                return {"purged": purged, "refused": {}}


def _check(why: str | None) -> None:
    """Refuse with `why`, the reason a cap gives (None: within it)."""
    if why:
        raise Refusal(why)


def _scheduler_alive(pid: int) -> bool:
    """Whether `pid` is a scheduler other than this one (pids are reused)."""
    try:
        return pid != os.getpid() and any("pd.scheduler" in a for a in psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _decode(raw: dict) -> dict[str, str]:
    """A request's fields as text; a Refusal naming the first that is not UTF-8."""
    fields = {}
    for k, v in raw.items():
        try:
            fields[k.decode() if isinstance(k, bytes) else k] = v.decode() if isinstance(v, bytes) else str(v)
        except UnicodeDecodeError:
            raise Refusal(f"request field {_short(k)} is not UTF-8 text") from None
    return fields


def _short(value: object, most: int = 200) -> str:
    """`value`'s repr, cut to `most` characters: reasons stay readable whatever was sent."""
    text = repr(value)
    return text if len(text) <= most else text[:most] + "..."


def _phase(name: str) -> str:
    if name not in keys.CLIENT_PHASES:
        raise Refusal(f"a submission's phase is one of {', '.join(keys.CLIENT_PHASES)}, not {name!r}")
    return name


def _upload(user: str, key: str) -> str:
    """An upload key of this user's inbox (never another user's: that would
    run, and give back, someone else's application)."""
    if not re.fullmatch(re.escape(keys.upload(user, "")) + "[0-9a-f]{32}", key):
        raise Refusal(f"{key!r} is not an upload of user {user}")
    return key


def serve_forever(ctl: Control) -> None:
    scheduler = None
    while True:
        try:
            scheduler = scheduler or Scheduler(ctl)
            scheduler.step()
            scheduler.sweep()
        except (redis.ConnectionError, redis.TimeoutError) as e:     # Redis restarting or stalled: wait
            log.warning("Redis unreachable (%s); retrying", e)
            time.sleep(0.5)
        except DiskFull as e:                         # writes refused: requests wait in their inbox
            log.warning("%s; retrying", e)
            time.sleep(0.5)
        except redis.RedisError as e:                 # busy, loading, a script of ours failing: serve on
            log.warning("Redis refused the scheduler's pass (%s); retrying", e)
            time.sleep(0.5)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pd.scheduler %(message)s")
    url = redis_url()
    try:
        ttl = result_ttl()
        quota.Caps.from_env()
    except ValueError as e:
        raise SystemExit(f"pd.scheduler: {e}") from None
    log.info("serving requests at %s; ended processes are kept %s", redact(url),
             f"{ttl:g} s" if ttl else "for ever")
    try:
        serve_forever(Control(connect(url)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
import re
import time

import redis

from broker import acl, keys
from broker.control import APP, APP_OPS, Control, _text, connect, result_ttl
from broker.credentials import redact, redis_url
from broker.diskfull import DiskFull
from psim.engine import Options

BLOCK_MS = 250              # also how soon a new user's inbox is read
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
        ctl.index_ended()

    def step(self) -> int:
        """Serve the requests waiting (or arriving within BLOCK_MS); reap when
        due.  Returns how many requests were served."""
        roles = {_text(k): _text(v) for k, v in self.ctl.r.hgetall(keys.USERS).items()}
        owners = {keys.requests(u): u for u in roles}
        got = self.ctl.r.xread(dict.fromkeys(owners, "0-0"), count=100, block=BLOCK_MS) if owners else \
            time.sleep(BLOCK_MS / 1000)
        served = 0
        for stream, entries in got or []:
            user = owners[_text(stream)]
            for rid, fields in entries:
                served += self.serve(user, roles.get(user), _text(rid), {_text(k): _text(v) for k, v in fields.items()})
        if time.monotonic() - self.last_reap >= REAP_SECONDS:
            self.ctl.reap(self.result_ttl)
            self.last_reap = time.monotonic()
        return served

    def serve(self, user: str, role: str | None, rid: str, fields: dict[str, str]) -> bool:
        try:
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
            raise Refusal(f"unknown request {op!r}")
        except (Refusal, KeyError, ValueError, TypeError) as e:
            why = str(e) if isinstance(e, Refusal) else f"malformed {fields.get('op')} request: {e!r}"
            return self.ctl.refuse(user, rid, why)
        except redis.ResponseError as e:           # a fault of ours: answer it, serve on
            log.exception("request %s of %s failed", rid, user)
            return self.ctl.refuse(user, rid, f"the scheduler failed on this request ({e})")

    def create(self, user: str, rid: str, fields: dict[str, str]) -> bool:
        nregions = int(fields["nregions"])
        if not 1 <= nregions <= MAX_REGIONS:
            raise Refusal(f"a process has 1 to {MAX_REGIONS} regions, not {nregions}")
        rcon = json.loads(fields["rcon"])
        if not isinstance(rcon, dict) or not all(k.isdigit() and isinstance(v, str) for k, v in rcon.items()):
            raise Refusal("rcon maps regions to engine names")
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
        return self.ctl.accept_submit(user, rid, int(fields["pid"]), uploads)

    def purge(self, user: str, rid: str, fields: dict[str, str], anyone: bool) -> bool:
        pids = [int(p) for p in fields["pids"].split()]
        before = float(fields["before"]) if fields["before"] else None
        if fields["whose"] not in ("mine", "all"):
            raise Refusal("purge: whose is mine or all")
        return self.ctl.accept_purge(user, rid, pids, anyone, fields["whose"] == "all", before)


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
        except redis.ConnectionError as e:            # Redis restarting: wait for it
            log.warning("Redis unreachable (%s); retrying", e)
            time.sleep(0.5)
        except DiskFull as e:                         # writes refused: requests wait in their inbox
            log.warning("%s; retrying", e)
            time.sleep(0.5)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pd.scheduler %(message)s")
    url = redis_url()
    try:
        ttl = result_ttl()
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

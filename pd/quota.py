"""What one user may send to, and keep in, the shared service: the caps on a
user's inbox (broker/keys.py), which the scheduler (pd/scheduler.py)
enforces, and their settings.

Redis ACLs cannot bound the size of a value or how many keys a user
writes, so the caps are enforced where the scheduler sees the inbox:

- a user has at most `waiting` processes created and not yet started
  (PSTACK_MAX_WAITING, default 500; half of what a scheduling pass looks at,
  schedule.lua's LOOK, so that no one user's processes that cannot run
  hide everyone else's);
- a request (all its fields) is at most `request_mb` (PSTACK_MAX_REQUEST_MB,
  default 16): refused with the reason otherwise;
- while more than `inbox` requests (PSTACK_MAX_INBOX, default 1000) wait in
  a user's inbox, each is refused as it is served ("send fewer at once"),
  so a flood costs its sender, and drains quickly;
- an upload the user names in a submission is at most `upload_mb`
  (PSTACK_MAX_UPLOAD_MB, default 512, Redis's own largest value: a
  real application's XML is hundreds of MB before compression, tens
  after), else the submission is refused and its uploads deleted;
- every few seconds the scheduler sweeps the inboxes: a key without a TTL
  gets one (UPLOAD_TTL), and a user holding more than `uploads` keys
  (PSTACK_MAX_UPLOADS, default 16) or more than `uploads_mb` in all
  (PSTACK_MAX_UPLOADS_MB, default 2048) loses the newest beyond that; a
  submission naming one of them is refused with the reason.

Per request, the scheduler also bounds the work a list asks for: a purge
names at most PURGE_PIDS processes, an application engine's log request
carries at most broker.control.LOG_PAGE lines (its beat at most
PROGRESS_FIELDS fields), a process has at most APP_REGIONS regions run by
application engines, and rcon pins no more regions than the cluster has
slots.  A single Redis write is
bounded by redis-server itself (proto-max-bulk-len, 512 MB by default),
all of them together by its maxmemory (docs/deployment.md).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import redis

from broker import keys
from broker.control import _text

UPLOAD_TTL = 3600           # seconds an inbox key may live (pcli's uploads set this TTL themselves)
SWEEP_SECONDS = 10.0        # how often the inboxes are swept
SCAN_PAGE = 1000            # keys per SCAN call: each call is short, whatever the key space
PURGE_PIDS = 10_000         # pids one purge request may name
APP_REGIONS = 64            # regions of a process its owner's application engines may run
PROGRESS_FIELDS = 16        # fields of an application engine's beat (pcli.Engine sends 2)
MB = 1 << 20
REPLY_TTL = 300             # seconds a reply may live (the scheduler's answers have this TTL)
# every key of an inbox the sweep looks at but the request stream; group 2: one of the scheduler's answers
HELD = re.compile(r"^pstack:u:([^:]+):in:(?!requests$)(reply:)?")


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    try:
        value = int(text) if text else default
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a whole number") from None
    if value <= 0:
        raise ValueError(f"{name}: {value} is not positive")
    return value


@dataclass(frozen=True)
class Caps:
    request_mb: int = 16
    inbox: int = 1000
    upload_mb: int = 512
    uploads: int = 16
    uploads_mb: int = 2048
    waiting: int = 500

    @classmethod
    def from_env(cls) -> "Caps":
        """The caps as the operator set them ($PSTACK_MAX_*); ValueError naming a bad setting."""
        return cls(request_mb=_env_int("PSTACK_MAX_REQUEST_MB", cls.request_mb),
                   inbox=_env_int("PSTACK_MAX_INBOX", cls.inbox),
                   upload_mb=_env_int("PSTACK_MAX_UPLOAD_MB", cls.upload_mb),
                   uploads=_env_int("PSTACK_MAX_UPLOADS", cls.uploads),
                   uploads_mb=_env_int("PSTACK_MAX_UPLOADS_MB", cls.uploads_mb),
                   waiting=_env_int("PSTACK_MAX_WAITING", cls.waiting))

    def request(self, fields: dict[str, str], waiting: int) -> str | None:
        """Why a request is refused whatever it asks (too big; its sender's
        inbox holds `waiting` requests, too many), or None."""
        size = sum(len(k) + len(v) for k, v in fields.items())
        if size > self.request_mb * MB:
            return (f"a request is at most {self.request_mb} MB (PSTACK_MAX_REQUEST_MB), this one is "
                    f"{size / MB:.1f} MB")
        if waiting > self.inbox:
            return (f"{waiting} requests wait in your inbox, more than the {self.inbox} the scheduler takes at "
                    "once (PSTACK_MAX_INBOX): refused; send fewer at once")
        return None

    def create(self, waiting: int) -> str | None:
        """Why a user with `waiting` processes not yet started may not create one more, or None."""
        if waiting >= self.waiting:
            return (f"you have {waiting} processes waiting to start, the most a user may have "
                    "(PSTACK_MAX_WAITING): wait for some to start, or kill some")
        return None

    def upload(self, key: str, size: int | None) -> str | None:
        """Why the upload `key` of `size` bytes (None: no such key) cannot be submitted, or None."""
        if size is None:
            return (f"upload {key} is gone: uploads expire after {UPLOAD_TTL // 3600} h, and a user holds at most "
                    f"{self.uploads} ({self.uploads_mb} MB) at once (PSTACK_MAX_UPLOADS, PSTACK_MAX_UPLOADS_MB)")
        if size > self.upload_mb * MB:
            return (f"upload {key} is {size / MB:.0f} MB; an upload is at most {self.upload_mb} MB compressed "
                    "(PSTACK_MAX_UPLOAD_MB)")
        return None


def purge_pids(pids: list[int]) -> str | None:
    if len(pids) > PURGE_PIDS:
        return f"a purge names at most {PURGE_PIDS} processes, not {len(pids)}: purge in parts, or by age"
    return None


def regions(nregions: int, rcon: dict[str, str], app: str, slots: int) -> str | None:
    """Why a process's rcon is refused before the create script reads it
    (the work grows with it), or None: it names regions of the process only,
    at most APP_REGIONS of them run by application engines, and pins no more
    regions on engines than the `slots` of every engine known (the script
    then says where, and whether the process fits)."""
    if not all(int(k) < nregions for k in rcon):
        return f"rcon names regions the process does not have (it has {nregions})"
    apps = sum(1 for v in rcon.values() if v == app)
    if apps > APP_REGIONS:
        return f"at most {APP_REGIONS} regions of a process are run by application engines, not {apps}"
    if len(rcon) - apps > slots:
        return (f"rcon pins {len(rcon) - apps} regions on engines, but the cluster has {slots} "
                f"slot{'s' * (slots != 1)} in all")
    return None


class Sweep:
    """The periodic sweep of users' inboxes (the caps above): a SCAN page
    at a time, so that Redis is never held long."""

    def __init__(self, r: redis.Redis, caps: Caps):
        self.r, self.caps = r, caps
        self.due = 0.0

    def __call__(self) -> dict[str, int]:
        """Sweep when due: how many keys each user lost ({} when not due)."""
        if time.monotonic() < self.due:
            return {}
        self.due = time.monotonic() + SWEEP_SECONDS
        held: dict[str, list[str]] = {}
        replies = []
        for key in map(_text, self.r.scan_iter(match=keys.inbox_prefix("*") + "*", count=SCAN_PAGE)):
            m = HELD.match(key)
            if m and m[2]:
                replies.append(key)
            elif m:
                held.setdefault(m[1], []).append(key)
        pipe = self.r.pipeline(transaction=False)
        for key in replies:
            pipe.pttl(key)
        self._expire(replies, pipe.execute(), REPLY_TTL)
        return {user: n for user, names in held.items() if (n := self._trim(names))}

    def _trim(self, names: list[str]) -> int:
        """Give the keys of one user a TTL, and delete the newest beyond the
        caps (the oldest are the likeliest to be submitted next): how many went."""
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.pttl(name)
            pipe.memory_usage(name)           # sampled: O(1), exact for strings (uploads)
        got = pipe.execute()
        ttls, sizes = got[::2], [s or 0 for s in got[1::2]]
        self._expire(names, ttls, UPLOAD_TTL)
        doomed, kept, total = [], 0, 0
        for i in sorted(range(len(names)), key=lambda i: ttls[i] if ttls[i] >= 0 else UPLOAD_TTL * 1000):
            if kept < self.caps.uploads and total + sizes[i] <= self.caps.uploads_mb * MB:
                kept, total = kept + 1, total + sizes[i]
            else:
                doomed.append(names[i])
        for at in range(0, len(doomed), SCAN_PAGE):
            self.r.unlink(*doomed[at:at + SCAN_PAGE])
        return len(doomed)

    def _expire(self, names: list[str], ttls: list[int], seconds: int) -> None:
        """Those of `names` without a TTL (-1) get one."""
        pipe = self.r.pipeline(transaction=False)
        for name, ttl in zip(names, ttls):
            if ttl == -1:
                pipe.expire(name, seconds)
        pipe.execute()

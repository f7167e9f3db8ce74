"""A full disk under the head's Redis, as every pstack client sees it.

The head's Redis keeps its append-only file in the cluster folder.  When
writing it fails (the disk is full), Redis refuses every write, Lua scripts
included, with "MISCONF Errors writing to the AOF file: No space left on
device", and goes on serving reads; it retries the file every second and
takes writes again by itself once that works.  Refused writes did nothing,
so they may be retried.

Every client made by broker.control.connect parses that refusal into
DiskFull, whose message is the reason users see:

    the cluster's disk is full: Redis cannot write its append-only file in
    /srv/pstack (No space left on device); ...

The folder is the one `pstack-cluster start` records in keys.FOLDER (any
identity may read it, and reads still work): looked up, on a connection of
its own, the first time a client meets the refusal.
"""
from __future__ import annotations

import functools

import redis

from . import keys

CODE = "MISCONF"
AOF = "Errors writing to the AOF file: "


class DiskFull(redis.ResponseError):
    """Redis cannot write its append-only file, so it refuses writes until
    it can again."""


def reason(said: str, folder: str | None) -> str:
    """The reason for Redis's refusal SAID (its text after MISCONF) in FOLDER."""
    cause = said.split(" script: ")[0].strip()     # a script's refusal adds where it stopped
    if not cause.startswith(AOF):
        return f"the cluster's Redis cannot write to its disk: {cause}"
    cause = cause[len(AOF):]
    where = f" in {folder}" if folder else " (in the cluster folder)"
    what = "the cluster's disk is full" if "No space" in cause else "the cluster's disk cannot be written"
    return (f"{what}: Redis cannot write its append-only file{where} ({cause}); "
            "it takes writes again by itself once it can")


@functools.lru_cache(maxsize=8)
def _recorded_folder(url: str, password: str | None) -> str:
    """The folder the cluster at URL recorded ("" if none); raises while
    Redis cannot be asked, so only answers are kept."""
    r = redis.Redis.from_url(url, password=password, socket_timeout=2, socket_connect_timeout=2)
    try:
        return (r.get(keys.FOLDER) or b"").decode(errors="replace")
    finally:
        r.close()


def parser(url: str, password: str | None) -> type:
    """redis-py's parser for clients of URL: Redis's MISCONF refusal is
    raised as DiskFull, with the folder named.  It extends the parser
    redis-py picks for its default protocol (RESP3 since redis-py 6), by
    its table of error codes, which redis-py keeps if it falls back."""
    def refusal(said: str, status_code: str | None = None) -> DiskFull:     # called as an exception class
        try:
            folder = _recorded_folder(url, password) or None
        except redis.RedisError:
            folder = None
        return DiskFull(reason(said, folder))

    base = type(redis.Connection()._parser)
    return type("Parser", (base,), {"EXCEPTION_CLASSES": {**base.EXCEPTION_CLASSES, CODE: refusal}})

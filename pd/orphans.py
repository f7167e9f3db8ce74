"""A cluster's orphans: its programs left running after their supervisord
died (SIGKILL, OOM killer), found and stopped so that `stop DIR` and
`start DIR` recover the host.

Only DIR's own processes are ever touched, known by what DIR gave them:
redis-server works in DIR (its `dir`, where its AOF is); the scheduler, the
pd daemons and their workers run `python -m pd`, `pd.scheduler` or
`pd.worker` in DIR with PSTACK_REDIS_FILE naming DIR/engine.url
(supervisord.conf sets both, workers inherit them).
Another cluster on the same host has another DIR, so none of its
processes matches.  Processes of other users, whose command line or
environment cannot be read, are not this user's cluster's.

They stop in supervisord's order: the daemons and the scheduler first
(SIGTERM: a daemon stops its workers and deregisters while Redis still
answers), Redis last with SIGTERM, on which it flushes its append-only
file before it exits.  Only what ignores SIGTERM for STOP_SECONDS
(Redis: REDIS_STOP_SECONDS) is killed, and that is said on stderr.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

DAEMONS = ("pd", "pd.scheduler")
WORKERS = ("pd.worker",)
STOP_SECONDS = 10.0          # as supervisord's stopwaitsecs
REDIS_STOP_SECONDS = 30.0    # rewriting a large AOF takes a while


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has ended (a zombie has: an orphan's
    reaper may be slow); return those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in procs if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def _is_redis_of(p: psutil.Process, d: Path) -> bool:
    # Redis rewrites its command line (its title), so not the config file:
    # its working folder, which is its `dir` (the AOF's), names the cluster
    try:
        return p.info["name"] == "redis-server" and p.cwd() == str(d)
    except psutil.Error:
        return False


def _pd_module(p: psutil.Process, d: Path) -> str | None:
    """The pd program P runs (pd, pd.scheduler, pd.worker) if supervisord
    of DIR started it (or a daemon of it did), else None."""
    cmd = p.info["cmdline"] or []
    module = next((b for a, b in zip(cmd, cmd[1:]) if a == "-m"), None)
    if module not in DAEMONS + WORKERS:
        return None
    try:
        ours = p.cwd() == str(d) and p.environ().get("PSTACK_REDIS_FILE") == str(d / "engine.url")
    except psutil.Error:
        return None
    return module if ours else None


def find(d: Path) -> dict[str, list[psutil.Process]]:
    """DIR's cluster's processes now running, by kind: "daemons" (pd, the
    scheduler), "workers" (pd's region workers), "redis".  Outside a live
    supervisord of DIR these are orphans."""
    me = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
    found: dict[str, list[psutil.Process]] = {"daemons": [], "workers": [], "redis": []}
    for p in psutil.process_iter(["name", "cmdline", "status"]):
        if p.pid in me or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if _is_redis_of(p, d):
            found["redis"].append(p)
        elif (module := _pd_module(p, d)) in DAEMONS:
            found["daemons"].append(p)
        elif module in WORKERS:
            found["workers"].append(p)
    return found


def stop(d: Path) -> int:
    """Stop DIR's orphans (daemons and scheduler, what workers they leave,
    then Redis); how many there were."""
    found = find(d)
    _end(found["daemons"], STOP_SECONDS)
    _end(found["workers"], STOP_SECONDS)       # a daemon ends its own: these had lost theirs
    _end(found["redis"], REDIS_STOP_SECONDS)
    return sum(map(len, found.values()))


def _end(procs: list[psutil.Process], seconds: float) -> None:
    """SIGTERM PROCS and wait; kill, saying so, what is left after SECONDS."""
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    left = wait_gone(procs, seconds)
    for p in left:
        print(f"orphan {p.pid} ({' '.join(p.info['cmdline'] or [])}) did not stop on SIGTERM "
              f"within {seconds:.0f} s: killing it", file=sys.stderr)
        try:
            p.kill()
        except psutil.Error:
            pass
    wait_gone(left, 5)

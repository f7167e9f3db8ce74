"""pd, the POETS daemon: one per host, kept alive by supervisord.

It registers its engine, heartbeats (with the CPU and memory of the host and
of its workers), claims the regions the scheduler assigns to it and runs
each in a child process (pd/worker.py).  Every loop it checks its
children: a child that ended without recording its result fails its
process with the reason; a process that ended elsewhere (killed, or another
region failed) has its child stopped within a fraction of a second.  On
SIGTERM it stops its children and fails their processes with "daemon
stopped".  When Redis goes away it retries, and registers again when Redis
is back.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import psutil
import redis

from broker import config, keys
from broker.control import HEARTBEAT_TTL_MS, Control, Job, connect
from broker.credentials import CredentialsError, redact, redis_url, refuse_on_command_line
from broker.diskfull import DiskFull

from . import jail
from .limits import FILE_MB, PROCS, Policy, where

LOOP_SECONDS = 0.2
HEARTBEAT_SECONDS = 1.0
log = logging.getLogger("pd")


@dataclass
class Child:
    job: Job
    proc: subprocess.Popen


class WorkerLoad:
    """The CPU and memory of the daemon's workers and their sandboxes, summed:
    CPU in percent of one core since the last look, memory as resident bytes."""

    def __init__(self) -> None:
        # the same objects again: cpu_percent() measures since the last call on each
        self.seen: dict[int, psutil.Process] = {}

    def measure(self) -> tuple[float, int]:
        cpu, rss, seen = 0.0, 0, {}
        for p in psutil.Process().children(recursive=True):
            known = self.seen.get(p.pid)
            p = known if known == p else p           # equal: same pid and start time
            try:
                with p.oneshot():
                    cpu, rss = cpu + p.cpu_percent(), rss + p.memory_info().rss
            except psutil.Error:                      # ended meanwhile, or jailed out of sight
                continue
            seen[p.pid] = p
        self.seen = seen
        return cpu, rss


class Daemon:
    def __init__(self, url: str, name: str, slots: int, policy: Policy = Policy()):
        self.url, self.name, self.slots = url, name, slots
        self.policy = policy              # the limits of its region workers
        self.ctl = Control(connect(url))
        self.daemon_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.host = socket.gethostname()
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.registered = False
        self.spare: subprocess.Popen | None = None

    # ---- life cycle -----------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        beat = threading.Thread(target=self.heartbeats, daemon=True)
        beat.start()
        while not self.stopping.is_set():
            try:
                if not self.registered:
                    self.register()
                self.tend_children()
                self.claim()
            except (redis.ConnectionError, redis.TimeoutError) as e:   # restarting, or stalled
                self.registered = False
                log.warning("redis unreachable (%s); retrying", e)
                self.stopping.wait(1.0)
            except DiskFull as e:         # Redis takes writes again by itself: so do we
                log.warning("%s; retrying", e)
                self.stopping.wait(1.0)
            except Exception:              # a bad job entry, a bug: log it, keep serving
                log.exception("daemon loop")
                self.stopping.wait(1.0)
        self.shutdown()

    def register(self) -> None:
        # a daemon restarted after a crash finds its old heartbeat still
        # holding the name: wait for it to expire before giving up
        deadline = time.monotonic() + HEARTBEAT_TTL_MS / 1000 + 1
        while not self.ctl.register(self.name, self.host, "psim", self.slots, self.daemon_id):
            if time.monotonic() > deadline:
                raise SystemExit(f"pd: engine name '{self.name}' is used by another live daemon")
            self.stopping.wait(0.5)
        self.registered = True
        log.info("engine %s registered (%d slots) at %s", self.name, self.slots, redact(self.url))

    def heartbeats(self) -> None:
        psutil.cpu_percent()
        workers = WorkerLoad()
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                mem = psutil.virtual_memory()
                if self.registered and not self.ctl.heartbeat(self.name, self.daemon_id, psutil.cpu_percent(),
                                                              mem.total - mem.available, mem.total,
                                                              *workers.measure()):
                    self.registered = False          # Redis lost our record: register again
                self.ctl.reap()
            except redis.RedisError:
                self.registered = False
            except Exception:
                log.exception("heartbeat")

    def shutdown(self) -> None:
        for child in list(self.children):
            self.stop_child(child)
        if self.spare is not None:
            self.spare.kill()
            self.end(self.spare)
        try:
            self.ctl.unregister(self.name, self.daemon_id, "daemon stopped")
        except redis.RedisError:
            pass
        log.info("engine %s stopped", self.name)

    # ---- jobs -----------------------------------------------------------------------

    def claim(self) -> None:
        if len(self.children) >= self.slots:
            self.wait_for_a_child(LOOP_SECONDS)
            return
        job = self.ctl.next_job(self.name, LOOP_SECONDS)
        if job is None:
            return
        verdict = self.ctl.claim(job)
        if verdict != "ok":               # fenced: another incarnation, ended, not ours
            log.warning("process %d region %d: job not run (%s)", job.pid, job.region, verdict)
            return
        proc = self.take_spare()
        try:
            proc.stdin.write(f"{job}\n".encode())
            proc.stdin.close()
        except OSError:                   # the spare died: its job fails below, as a dead worker
            pass
        self.children.append(Child(job, proc))
        log.info("process %d region %d started (worker %d)", job.pid, job.region, proc.pid)
        self.spare = self.spawn()

    def wait_for_a_child(self, seconds: float) -> None:
        """Sleep up to `seconds`, less if a worker ends (its slot frees at once)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping.is_set():
            if any(c.proc.poll() is not None for c in self.children):
                return
            self.stopping.wait(0.005)

    # A spare worker waits, its imports done, for the next job on its stdin:
    # a small process starts ~0.1 s sooner.

    def spawn(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "pd.worker"], stdin=subprocess.PIPE,
                                start_new_session=True, env=self.child_env())

    def take_spare(self) -> subprocess.Popen:
        spare, self.spare = self.spare, None
        if spare is None or spare.poll() is not None:
            spare = self.spawn()
        return spare

    def child_env(self) -> dict:
        # not on the command line: the URL may hold a password
        env = dict(os.environ, PSTACK_REDIS=self.url, PSTACK_DAEMON_ID=self.daemon_id, **self.policy.env())
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def tend_children(self) -> None:
        if not self.children:
            return
        states = self.ctl.states([c.job.pid for c in self.children])
        for child, state in zip(list(self.children), states):
            ended = jail.exited(child.proc)
            if not ended and state in keys.ENDED:          # killed, or failed elsewhere
                self.stop_child(child)
            elif ended:
                code = self.end(child.proc)
                self.children.remove(child)
                if state not in keys.ENDED and state is not None and not self.ctl.region_done(child.job.pid,
                                                                                              child.job.region):
                    self.ctl.finish_region(child.job, "failed", self.death_reason(child.job, code))
                log.info("process %d region %d done (%s)", child.job.pid, child.job.region, _describe(code))

    def death_reason(self, job: Job, code: int) -> str:
        """Why a worker that ended without a result failed: a limit it hit
        (SIGXCPU, SIGXFSZ outside a handler), else how it died."""
        limit = self.policy.death(code)
        if limit:
            return f"{where(job.region, self.name)}: {limit}"
        return f"region worker died ({_describe(code)})"

    def stop_child(self, child: Child) -> None:
        try:
            os.killpg(child.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.end(child.proc)
        if child in self.children:
            self.children.remove(child)
        try:
            self.ctl.finish_region(child.job, "failed", "daemon stopped")
        except redis.RedisError:
            pass

    @staticmethod
    def end(worker: subprocess.Popen) -> int:
        """Wait for a worker that ended or was killed, after ending what its
        sandbox left (before the wait: until then no process can reuse its
        pid, hence its sandbox's uid)."""
        jail.reap(worker.pid)
        return worker.wait()


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pd", add_help=False, description="The POETS daemon: runs psim engines for pstack.")
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-w", "--workers", type=int, default=os.cpu_count() or 1, help="regions run at once (slots)")
    p.add_argument("-n", "--name", default=socket.gethostname(), help="engine name (default: host name)")
    p.add_argument("-h", "--host", help="Redis host (default localhost)")
    p.add_argument("-p", "--port", type=int, help="Redis port (default 6379)")
    p.add_argument("--redis", help="Redis URL without password (overrides -h and -p; default: "
                   "$PSTACK_REDIS, else the file named by $PSTACK_REDIS_FILE, else ~/.config/pstack/redis.url)")
    p.add_argument("--advertise", metavar="ADDR", help="address other hosts reach this one's regions at "
                   "(default $PSTACK_DATA_HOST, else the local address of the route to Redis)")
    p.add_argument("--memory-mb", type=int, metavar="N", help="memory of a region whose process "
                   "gives no memory_mb, beyond what its worker needs (default: the host's memory / slots; 0: none)")
    p.add_argument("--max-memory-mb", type=int, metavar="N", help="the most memory_mb a process may ask for; "
                   "more is refused (default: the host's memory; 0: no maximum)")
    p.add_argument("--cpu-seconds", type=int, default=0, metavar="S",
                   help="CPU seconds of a region's sandbox (its handlers) (default 0: no limit)")
    p.add_argument("--file-mb", type=int, default=FILE_MB, metavar="N",
                   help=f"largest file a region's sandbox may write (default {FILE_MB}; 0: no limit)")
    p.add_argument("--max-procs", type=int, default=PROCS, metavar="N",
                   help=f"processes and threads of a region's handlers (default {PROCS}; 0: no limit; "
                   "only when pd runs as root)")
    p.add_argument("-q", "--quiet", action="store_true", help="log only warnings")
    config.describe(p, {"0": "stopped (SIGTERM, SIGINT)", "1": "its engine name is taken by a live daemon",
                        "2": "bad arguments or an unusable Redis URL or configuration file"},
                    ("PSTACK_REDIS", "PSTACK_REDIS_FILE", "PSTACK_PASSWORD", "PSTACK_CONFIG", "PSTACK_DATA_HOST", "PSTACK_CURVE",
                     "PSTACK_TRACE_MB", "PSTACK_CACHE", "PSTACK_INSTANCE_CACHE", "PSTACK_INSTANCE_CACHE_MB"))
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        policy = Policy.for_host(args.workers, args.memory_mb, args.max_memory_mb, args.cpu_seconds, args.file_mb,
                                  args.max_procs)
    except ValueError as e:
        p.error(str(e))
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format=f"%(asctime)s pd[{args.name}] %(message)s")
    if not jail.isolated():
        log.warning("pd is not root: handlers run as its own user, with no credentials in their environment "
                    "but able to read its files, and without a process limit (docs/security.md)")
    trouble = jail.private_tmp_trouble()
    if trouble:
        log.warning("%s (docs/security.md)", trouble)
    try:
        url = _url(args)
    except CredentialsError as e:
        p.exit(2, f"pd: {e}\n")
    if args.advertise:
        os.environ["PSTACK_DATA_HOST"] = args.advertise      # read by the workers' data plane
    Daemon(url, args.name, args.workers, policy).run()
    return 0


def _url(args: argparse.Namespace) -> str:
    """The Redis URL: --redis, else -h/-p, else broker/credentials.py's lookup
    (a secret comes from the environment or a file, never the command line)."""
    if args.redis:
        return refuse_on_command_line(args.redis, "--redis")
    if args.host or args.port:
        return f"redis://{args.host or 'localhost'}:{args.port or 6379}/0"
    return redis_url()

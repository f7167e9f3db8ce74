"""Real components for cluster tests: a redis-server on a free port in a
temporary folder, and pd daemons, all cleaned up however the test ends."""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import redis

import netns
from broker import acl
from pcli.shell import Shell

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, timeout: float = 15.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def kill_tree(proc: subprocess.Popen | psutil.Process, sig=signal.SIGKILL) -> None:
    try:
        p = psutil.Process(proc.pid)
        family = p.children(recursive=True) + [p]
    except psutil.NoSuchProcess:
        return
    for q in family:
        try:
            q.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    # gone or a zombie: those that are not our children are reaped by init when it gets to it
    wait_for(lambda: gone(family), timeout=10)


def gone(procs: list[psutil.Process]) -> bool:
    """None of these processes runs any more."""
    return not any(_running(p) for p in procs)


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:           # it went between the two questions
        return False


class RedisServer:
    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec",            # as the cluster's Redis
             "--dir", str(self.folder), "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: self._ping(client))

    @staticmethod
    def _ping(client) -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Daemons:
    """pd processes started by a test."""

    def __init__(self, url: str, folder: Path):
        self.url, self.folder = url, folder       # the URL the daemons connect with (may hold a secret)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, slots: int = 1, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Daemon `name`; `env` adds to its environment (which its workers inherit)."""
        log = open(self.folder / f"pd-{name}.log", "ab")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PSTACK_REDIS=self.url, **(env or {}))
        proc = subprocess.Popen([sys.executable, "-m", "pd", "-n", name, "-w", str(slots)],
                                stdout=log, stderr=log, env=env, cwd=ROOT)
        self.procs[name] = proc
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: client.exists(f"pstack:engine:{name}:alive"))
        return proc

    def workers(self, name: str) -> list[psutil.Process]:
        """The daemon's workers running a region now (not its idle spare)."""
        client = redis.Redis.from_url(self.url)
        busy = {int(v) for pid in client.zrange("pstack:procs", 0, -1)
                for k, v in client.hgetall(f"pstack:proc:{int(pid)}").items() if k.startswith(b"worker:")}
        return [p for p in psutil.Process(self.procs[name].pid).children(recursive=True)
                if p.pid in busy and p.status() != psutil.STATUS_ZOMBIE]

    def kill_during(self, name: str, future, timeout: float = 20) -> tuple[dict, float]:
        """SIGKILL daemon `name` while `future` runs: its result, and the
        seconds until the process ended."""
        start = time.monotonic()
        self.procs[name].send_signal(signal.SIGKILL)
        res = future.result(timeout=timeout)
        return res, time.monotonic() - start

    def stop_all(self) -> None:
        for proc in self.procs.values():
            kill_tree(proc)


class Scheduler:
    """pd.scheduler, the service acting on users' requests, as the cluster
    runs it next to Redis; it rides out Redis restarts."""

    def __init__(self, url: str, folder: Path):
        log = open(folder / "scheduler.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "pd.scheduler"], stdout=log, stderr=log, cwd=ROOT,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT), PSTACK_REDIS=url))

    def stop(self) -> None:
        kill_tree(self.proc)


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server, and the scheduler serving it."""
    server = RedisServer(tmp_path)
    server.start()
    server.scheduler = Scheduler(server.url, tmp_path)
    yield server
    server.scheduler.stop()
    server.stop()


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A compile cache of the test's own (PSTACK_CACHE; daemons started after
    it inherit it): every graph type compiles, as on a new machine.  Ask for
    it before the cluster's fixtures (pytest.mark.usefixtures does)."""
    monkeypatch.setenv("PSTACK_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def cluster(redis_server, tmp_path, monkeypatch):
    """A Redis server and a way to start daemons; PSTACK_REDIS points at it."""
    monkeypatch.setenv("PSTACK_REDIS", redis_server.url)
    daemons = Daemons(redis_server.url, tmp_path)
    yield daemons
    daemons.stop_all()


@pytest.fixture
def shell(cluster, tmp_path, monkeypatch):
    """A pcli Shell on a cluster with engine e1 (2 slots): shell.do(line)
    runs a command and returns what it printed."""
    monkeypatch.setenv("PCLI_CONTEXT", str(tmp_path / "context.json"))
    cluster.start("e1", slots=2)
    out = io.StringIO()
    sh = Shell(history=False, stdout=out, color=False, quiet=True)

    def do(line: str) -> str:
        out.seek(0)
        out.truncate()
        sh.onecmd_plus_hooks(line)
        return out.getvalue()
    sh.do = do
    return sh


@pytest.fixture
def secured(redis_server, tmp_path, monkeypatch):
    """A secured cluster: admin and engine identities, anonymous access off,
    users alice and bob, the scheduler and one daemon on the engine identity."""
    made = acl.secure(redis.Redis.from_url(redis_server.url))
    url = lambda name, secret: f"redis://{name}:{secret}@127.0.0.1:{redis_server.port}/0"     # noqa: E731
    urls = {name: url(name, secret) for name, secret in made.items()}
    admin = redis.Redis.from_url(urls[acl.ADMIN])
    urls.update({name: url(name, acl.add_user(admin, name)) for name in ("alice", "bob")})
    redis_server.scheduler.stop()
    redis_server.scheduler = Scheduler(urls[acl.ENGINE], tmp_path)
    daemons = Daemons(urls[acl.ENGINE], tmp_path)
    daemons.start("e1", slots=2)
    monkeypatch.setenv("PSTACK_REDIS", urls["alice"])
    yield SimpleNamespace(urls=urls, daemons=daemons, plain=redis_server.url)
    daemons.stop_all()


@pytest.fixture(scope="module")
def network(request):
    """Hosts as network namespaces (tests/netns.py), one Network for the
    whole module: the names in the module's HOSTS, else head, w1 and w2.
    Skips when namespaces cannot be made here (not root, no `ip`, ...)."""
    why = netns.available()
    if why:
        pytest.skip(f"multi-host tests need network namespaces: {why}")
    with netns.Network(getattr(request.module, "HOSTS", ["head", "w1", "w2"])) as net:
        yield net

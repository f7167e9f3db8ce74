"""Local pstack clusters: redis-server, the scheduler and pd daemons kept
alive by supervisord.

    python -m pd.cluster start DIR [--pds N] [--slots S] [--port P]
                               [--bind ADDR] [--advertise ADDR] [--name PREFIX]
    python -m pd.cluster worker DIR [--redis-file FILE] [--advertise ADDR] [--pds N]
                               [--slots S] [--name PREFIX]
    python -m pd.cluster adduser DIR NAME [--admin] [--write FILE]
    python -m pd.cluster deluser DIR NAME
    python -m pd.cluster users DIR
    python -m pd.cluster stop DIR
    python -m pd.cluster status DIR
    python -m pd.cluster url DIR [--engine | --admin]
    python -m pd.cluster check [DIR] [--redis URL] [--timeout S]
    python -m pd.cluster unit start|worker DIR [OPTIONS]

DIR (mode 0700) holds everything a cluster needs: supervisord.conf (filled
in from conf/supervisord-head.conf.in or conf/supervisord-worker.conf.in),
redis.conf, the supervisord socket and pid file, the logs (supervisord.log,
redis.log, scheduler.log, pd-K.log) and the identities (pd/identities.py:
users.acl, admin.url, engine.url; redis.url, the address without secret).
A head's Redis refuses anonymous clients: `adduser` prints a user's
`PSTACK_REDIS=URL` line, so `export $(pstack-cluster adduser DIR NAME)`
points pcli at the cluster as NAME.  No secret is ever on a command line
or printed unless asked for (adduser, `url --engine`, `url --admin`).
The head's Redis keeps an append-only file in DIR, so a restart of Redis or
of the cluster keeps processes, the queue, the pid counter and users.
`check` runs a two-region process on every pair of live engines
(pd/check.py).  `unit` prints a systemd unit that runs the given start or
worker command at boot and again if the host's supervisord dies.  If it
died, `stop` and `start` first stop the programs it left running (its
orphans, pd/orphans.py: only DIR's own; Redis last, with SIGTERM).  The same command is installed as `pstack-cluster`; start()
and stop() are the Python API.  See conf/README.md and docs/deployment.md.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import re
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import redis
from supervisor.xmlrpc import SupervisorTransport, UnixStreamHTTPConnection

from broker import config, credentials, keys
from broker.control import Control, connect
from broker.credentials import CredentialsError, redact, write_private
from broker.dataplane import is_loopback, parse_ip

from . import check, identities, orphans, quota
from .identities import IdentityError, engine_path, public_path
from .orphans import alive, wait_gone

# The supervisord templates: pd/conf in an installed wheel (setup.cfg ships
# conf/ there), else conf/ of the checkout this file is in.
_HERE = Path(__file__).resolve().parent
CONF_DIR = _HERE / "conf" if (_HERE / "conf").is_dir() else _HERE.parent / "conf"
TIMEOUT = 30.0                  # seconds for start and stop
RPC_TIMEOUT = 10.0              # seconds for one call to supervisord


class ClusterError(Exception):
    """Something went wrong; the message says what, with log tails."""


# -- files in DIR ------------------------------------------------------------

def conf_path(d: Path) -> Path:
    return d / "supervisord.conf"


def sock_path(d: Path) -> Path:
    return d / "supervisor.sock"


def pid_path(d: Path) -> Path:
    return d / "supervisord.pid"


def redis_conf_path(d: Path) -> Path:
    return d / "redis.conf"


def cluster_dir(d: str | Path) -> Path:
    return Path(d).expanduser().resolve()


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, indented, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"  ({path} does not exist)"
    return "\n".join("  " + line for line in text) or f"  ({path} is empty)"


# -- supervisord -------------------------------------------------------------

class _UnixConnection(UnixStreamHTTPConnection):
    """supervisor's connection, with a timeout: a hung supervisord is killed."""

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(RPC_TIMEOUT)
        self.sock.connect(self.socketfile)


def rpc(d: Path) -> xmlrpc.client.ServerProxy:
    """An XML-RPC proxy to the supervisord of DIR (supervisor's own API)."""
    transport = SupervisorTransport(None, None, f"unix://{sock_path(d)}")

    def connection() -> _UnixConnection:
        conn = _UnixConnection("localhost")
        conn.socketfile = str(sock_path(d))
        return conn

    transport._get_connection = connection
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def supervisord_process(d: Path) -> psutil.Process | None:
    """The running supervisord of DIR, from its pid file, or None."""
    try:
        pid = int(pid_path(d).read_text().strip())
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if not any("supervisord" in part for part in proc.cmdline()):
            return None  # a stale pid file whose pid was reused
        return proc
    except (OSError, ValueError, psutil.Error):
        return None


def states(d: Path) -> dict[str, dict]:
    """Process name (e.g. "pd-0", "redis") -> supervisor's process info."""
    return {info["name"]: info for info in rpc(d).supervisor.getAllProcessInfo()}


def _supervisord_quote(value: object) -> str:
    """Escape a value for supervisor, which expands %(name)s everywhere."""
    return str(value).replace("%", "%%")


def write_conf(d: Path, template: str, **values: object) -> Path:
    """Fill conf/TEMPLATE with VALUES into DIR/supervisord.conf.

    Every value is %-escaped; for each value X the template may also use X_q,
    the same value quoted for a command line.
    """
    mapping = {}
    for key, value in values.items():
        mapping[key] = _supervisord_quote(value)
        mapping[key + "_q"] = _supervisord_quote(shlex.quote(str(value)))
    text = string.Template((CONF_DIR / template).read_text()).substitute(mapping)
    write_private(conf_path(d), text)
    return conf_path(d)


def _launch(d: Path, template: str, **values: object) -> None:
    """Write DIR/supervisord.conf and start supervisord (it daemonizes)."""
    conf = write_conf(d, template, dir=d, sock=sock_path(d),
                      user=getpass.getuser(), python=sys.executable, **values)
    # Its programs take their identity from DIR's files, never from whoever
    # ran pstack-cluster (whose $PSTACK_REDIS would win over the file).
    env = {k: v for k, v in os.environ.items() if k not in credentials.VARIABLES}
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    if proc.returncode != 0:
        raise ClusterError(
            f"supervisord did not start (exit {proc.returncode}):\n"
            f"{proc.stdout}{proc.stderr}".rstrip() + "\n"
            f"{d / 'supervisord.log'}:\n{tail(d / 'supervisord.log')}")


def _make_dir(d: Path) -> None:
    """DIR, private to its owner: it holds identities and logs."""
    if re.search(r'[%"\n]', str(d)):  # supervisor expands % twice; " and newlines end its values
        raise ClusterError(f"{d}: the cluster folder's path may not contain %, \" or a newline")
    if len(str(sock_path(d))) > 100:
        raise ClusterError(f"{d}: path too long for supervisord's unix socket")
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)


def _not_running(d: Path) -> None:
    running = supervisord_process(d)
    if running is not None:
        raise ClusterError(f"a cluster is already running in {d} "
                           f"(supervisord pid {running.pid}); stop it first")


def stop(d: str | Path, timeout: float = TIMEOUT) -> bool:
    """Stop the cluster of DIR; False if none was running.

    Asks supervisord to shut down (it stops pd, then redis), waits for it to
    end, and kills whatever is left after TIMEOUT seconds.  Without a
    supervisord, the cluster's orphans (pd/orphans.py) are stopped.
    """
    d = cluster_dir(d)
    sup = supervisord_process(d)
    if sup is None:
        return _stop_orphans(d)
    try:
        procs = sup.children(recursive=True)
    except psutil.Error:
        procs = []
    try:
        rpc(d).supervisor.shutdown()
    except (OSError, xmlrpc.client.Error):
        sup.send_signal(signal.SIGTERM)  # same orderly shutdown
    if wait_gone([sup], timeout):
        print(f"supervisord (pid {sup.pid}) did not stop in {timeout:.0f} s: "
              "killing it and its processes", file=sys.stderr)
        try:
            os.killpg(sup.pid, signal.SIGKILL)
        except OSError:
            pass
        for p in [sup] + procs:
            try:
                p.kill()
            except psutil.Error:
                pass
    # Children supervisord already reaped are gone; anything they left
    # behind (a daemon's own workers) is ended too.
    left = [p for p in procs if alive(p)]
    for p in left:
        try:
            p.terminate()
        except psutil.Error:
            pass
    for p in wait_gone(left, 5):
        try:
            p.kill()
        except psutil.Error:
            pass
    return True


def _stop_orphans(d: Path) -> bool:
    """Stop what DIR's dead supervisord left running; False if nothing."""
    count = orphans.stop(d)
    if count:
        print(f"stopped {count} orphaned process{'es' * (count > 1)} of the cluster in {d} "
              "(its supervisord had died)", file=sys.stderr)
    return count > 0


# -- readiness ---------------------------------------------------------------

def _ping(url: str) -> str | None:
    """None when Redis at URL answers PING, else the error."""
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
        return None
    except redis.RedisError as e:
        return str(e) or type(e).__name__


def registered(url: str) -> set[str]:
    """Names of the live engines (registered, heartbeat fresh) at URL."""
    return {e["name"] for e in Control(connect(url)).engines() if e["alive"]}


def _wait_ready(d: Path, url: str, engines: dict[str, str], with_redis: bool) -> None:
    """Wait until Redis answers, every daemon runs and is registered, and
    on a head the scheduler runs.

    ENGINES maps supervisor process names ("pd-0") to engine names.
    """
    programs = list(engines) + ["scheduler"] * with_redis
    deadline = time.monotonic() + TIMEOUT
    while True:
        info = states(d)
        fatal = sorted(n for n, i in info.items() if i["statename"] == "FATAL")
        if fatal:
            problem = "supervisord gave up on " + ", ".join(fatal)
            break
        problem = _ping(url)
        if problem:
            problem = f"Redis at {redact(url)} does not answer: {problem}"
        else:
            down = [p for p in programs if info[p]["statename"] != "RUNNING"]
            unregistered = sorted(set(engines.values()) - registered(url))
            if not down and not unregistered:
                return
            problem = ("not running: " + ", ".join(down) if down else
                       "engines not registered: " + ", ".join(unregistered))
        if time.monotonic() >= deadline:
            problem += f" (after {TIMEOUT:.0f} s)"
            break
        time.sleep(0.2)
    logs = [d / "supervisord.log"] + [d / "redis.log"] * with_redis
    logs += [d / f"{p}.log" for p in programs]
    raise ClusterError(problem + "\n" + "\n".join(
        f"{log}:\n{tail(log, 10)}" for log in logs))


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _redis_pid(url: str) -> int:
    """The process id of the redis-server answering at URL."""
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return int(client.info("server")["process_id"])


def _wait_own_redis(d: Path, url: str) -> None:
    """Wait until the Redis answering at URL is the redis-server DIR's
    supervisord started; fail if supervisord gave up on it or if another
    Redis answers there."""
    deadline = time.monotonic() + TIMEOUT
    foreign = ""
    while True:
        ours = rpc(d).supervisor.getProcessInfo("redis")
        if ours["statename"] == "FATAL":
            problem = "supervisord gave up on redis" + foreign
            break
        try:
            theirs = _redis_pid(url)
        except redis.RedisError as e:
            problem = f"Redis at {redact(url)} does not answer: {e or type(e).__name__}"
        else:
            if theirs == ours["pid"]:
                return
            foreign = (f"; the Redis answering at {redact(url)} is not this cluster's "
                       f"(pid {theirs}, ours {ours['pid'] or 'not running'})")
            problem = foreign[2:]
            if ours["statename"] == "RUNNING":   # ours is up, yet another answers
                break
        if time.monotonic() >= deadline:
            problem += f" (after {TIMEOUT:.0f} s)"
            break
        time.sleep(0.1)
    raise ClusterError(problem + "\n" + "\n".join(
        f"{log}:\n{tail(log, 10)}" for log in (d / "supervisord.log", d / "redis.log")))


def _free_port(host: str) -> int:
    with socket.socket(_family(host)) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_in_use(host: str, port: int) -> str | None:
    """Why PORT on HOST cannot be bound, or None when it is free."""
    with socket.socket(_family(host)) as s:
        # as redis-server does, so a port whose old connections linger in
        # TIME_WAIT counts as free; a listening socket still conflicts
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def _redis_port(d: Path, bind: str, port: int | None) -> int:
    """PORT, checked free; by default the port of DIR's previous start when
    it is free (clients keep their URL across a restart), else a free one.

    Checking first means a Redis already on the port (another cluster's)
    is reported, not joined."""
    if port is None:
        try:
            previous = urlsplit(public_path(d).read_text().strip()).port
        except (OSError, ValueError):
            previous = None
        free = previous is not None and _port_in_use(bind, previous) is None
        return previous if free else _free_port(bind)
    problem = _port_in_use(bind, port)
    if problem:
        raise ClusterError(f"port {port} on {bind} is taken ({problem}): another Redis or "
                           "program listens there; stop it or choose another --port")
    return port


def _default_name(d: Path) -> str:
    """host-DIRNAME: unique per folder on a host, readable in `engines`."""
    raw = f"{socket.gethostname().split('.')[0]}-{d.name}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)


# -- addresses ---------------------------------------------------------------
# Other hosts must reach this one twice: Redis (head only) and each region's
# data-plane socket, which a region binds and publishes at its daemon's
# advertised address.  Host names are avoided: Debian maps the machine's
# own name to 127.0.1.1, so a URL naming it sends the head's daemons
# through loopback, and their regions then advertise 127.0.0.1.

def _local_ips() -> list[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """(interface, address) of every up interface, in the system's order."""
    stats = psutil.net_if_stats()
    return [(nic, ip) for nic, addrs in psutil.net_if_addrs().items()
            if nic in stats and stats[nic].isup
            for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6)
            for ip in [parse_ip(a.address)] if ip is not None]


def interface_address(version: int = 4) -> str:
    """The first non-loopback address (IPv4 or IPv6) of an up interface."""
    for _, ip in _local_ips():
        # a link-local IPv6 address needs its interface named: not for URLs
        if ip.version == version and not ip.is_loopback and not ip.is_link_local:
            return str(ip)
    raise ClusterError(f"no up network interface has a non-loopback IPv{version} address "
                       "for other hosts to reach this one at: give --advertise ADDR")


def check_advertise(advertise: str, redis_remote: bool) -> str:
    """ADDR checked for `--advertise`: an address of this host (regions bind
    it), and never a loopback one when Redis is reached from other hosts."""
    ip = parse_ip(advertise)
    if ip is None:
        raise ClusterError(f"--advertise {advertise}: give an IP address, not a name")
    if not ip.is_loopback and ip not in {local for _, local in _local_ips()}:
        raise ClusterError(f"--advertise {advertise}: not an address of this host "
                           "(its regions listen on the address they advertise)")
    if ip.is_loopback and redis_remote:
        raise ClusterError(f"--advertise {advertise} is a loopback address but Redis is "
                           "reached from other hosts: their regions could not reach these")
    return str(ip)


def redis_host(bind: str, advertise: str | None) -> str:
    """The host of the Redis URL: the bound address; for a wildcard bind,
    the advertised address, else the first address of an up interface."""
    if bind not in ("0.0.0.0", "::"):
        return bind
    return advertise or interface_address(6 if bind == "::" else 4)


# -- commands ----------------------------------------------------------------

def start(d: str | Path, pds: int = 2, slots: int = 1, port: int | None = None,
          bind: str = "127.0.0.1", name: str | None = None, advertise: str | None = None) -> str:
    """Start redis-server, the scheduler and PDS daemons under supervisord;
    return the cluster's address (redis://HOST:PORT/0, no identity).

    Redis refuses anonymous clients: the first start makes the admin and
    engine identities (pd/identities.py), later starts keep them.  The URL
    names Redis by address (see redis_host); ADVERTISE is the address other
    hosts reach this host's regions at (pd --advertise)."""
    d = cluster_dir(d)
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(server, os.X_OK):
        raise ClusterError("redis-server not found; on Debian/Ubuntu: "
                           "apt-get install -y redis-server")
    if advertise:
        advertise = check_advertise(advertise, redis_remote=not is_loopback(bind))
    prefix, engines = _engines(d, name, pds)
    _make_dir(d)
    _not_running(d)
    _stop_orphans(d)
    port = _redis_port(d, bind, port)
    host = redis_host(bind, advertise)
    public = f"redis://[{host}]:{port}/0" if ":" in host else f"redis://{host}:{port}/0"
    identities.prepare(d, public)
    write_private(redis_conf_path(d), _redis_conf(d, bind, port))
    return _bring_up(d, "supervisord-head.conf.in", engines, public=public,
                     redis_server=server, redis_conf=redis_conf_path(d),
                     name=prefix, pds=pds, slots=slots, pd_args=_pd_args(advertise))


def _redis_conf(d: Path, bind: str, port: int) -> str:
    """redis.conf: persistent (an append-only file in DIR, fsynced every
    second; no RDB snapshots: the AOF is the one copy), identities in DIR's
    ACL file; no single value larger than a user's largest upload or
    request (pd/quota.py: Redis itself refuses it, before anyone stores
    it).  A file, so that nothing is on redis-server's command line."""
    def quoted(path: Path) -> str:
        return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        caps = quota.Caps.from_env()
    except ValueError as e:
        raise ClusterError(str(e)) from None
    value_mb = max(caps.upload_mb, caps.request_mb)
    return "\n".join([f"bind {bind}", f"port {port}", 'save ""', "appendonly yes",
                      "appendfsync everysec", f"dir {quoted(d)}", "daemonize no",
                      f"aclfile {quoted(identities.acl_path(d))}", f"proto-max-bulk-len {value_mb}mb",
                      f"client-query-buffer-limit {max(value_mb + 1, 1024)}mb", ""])


def worker(d: str | Path, url: str | None = None, pds: int = 2, slots: int = 1,
           name: str | None = None, advertise: str | None = None) -> str:
    """Start PDS daemons under supervisord that join the Redis at URL, the
    engine identity's (default: $PSTACK_REDIS, else the file named by
    $PSTACK_REDIS_FILE); return the URL without its secret."""
    d = cluster_dir(d)
    url = url or _url_from_environment()
    if advertise:
        advertise = check_advertise(advertise, redis_remote=not is_loopback(urlsplit(url).hostname))
    _check_engine_url(url)
    prefix, engines = _engines(d, name, pds)
    _make_dir(d)
    _not_running(d)
    _stop_orphans(d)
    write_private(engine_path(d), url + "\n")
    return _bring_up(d, "supervisord-worker.conf.in", engines, url=url,
                     name=prefix, pds=pds, slots=slots, pd_args=_pd_args(advertise))


def _url_from_environment() -> str:
    """The URL a worker host was given (never a user's own file)."""
    url = credentials.given_url()
    if not url:
        raise ClusterError("give the head's engine URL (`pstack-cluster url HEADDIR --engine`): "
                           "--redis-file FILE, $PSTACK_REDIS or $PSTACK_REDIS_FILE")
    return url


def _check_engine_url(url: str) -> None:
    """The head answers at URL, and as an identity that may run engines."""
    if re.search(r"[\s\"']", url):
        raise ClusterError(f"bad Redis URL {redact(url)!r}")
    problem = _ping(url)
    if problem:
        raise ClusterError(f"Redis at {redact(url)} does not answer: {problem}")
    identities.require_engine(connect(url))


def _pd_args(advertise: str | None) -> str:
    """Extra pd arguments; without --advertise a pd advertises its route to Redis."""
    return f"--advertise {shlex.quote(advertise)}" if advertise else ""


def _bring_up(d: Path, template: str, engines: dict[str, str], public: str | None = None,
              url: str | None = None, **fields) -> str:
    """Start supervisord on `template` and wait for the cluster; undo on
    failure.  A head (PUBLIC given) sets up its identities once its Redis
    runs; a worker joins URL.  Returns the address without secret.

    On a head the daemons and the scheduler do not start with supervisord:
    only once the Redis answering at URL is known to be the one it started
    (never another's), and the engine identity is set."""
    try:
        _launch(d, template, engine_url=engine_path(d), **fields)
        if public:
            url = credentials.read_url_file(identities.admin_path(d))
            _wait_own_redis(d, url)
            identities.establish(d, public)
            connect(url).set(keys.FOLDER, str(d))      # a full disk's reason names it (broker/diskfull.py)
            rpc(d).supervisor.startProcessGroup("pd", False)
            rpc(d).supervisor.startProcess("scheduler", False)
        _wait_ready(d, url, engines, with_redis=public is not None)
    except BaseException:
        stop(d)
        raise
    return public or redact(url)


def _engines(d: Path, name: str | None, pds: int) -> tuple[str, dict[str, str]]:
    """The engine name prefix, and supervisor process name -> engine name."""
    prefix = name or _default_name(d)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
        raise ClusterError(f"engine name prefix {prefix!r}: use letters, digits, _ . -")
    if pds < 1:
        raise ClusterError("--pds must be at least 1")
    return prefix, {f"pd-{k}": f"{prefix}-{k}" for k in range(pds)}


def status(d: str | Path) -> int:
    """Print each program's state; 0 when all are running."""
    d = cluster_dir(d)
    if supervisord_process(d) is None:
        print(f"no cluster is running in {d}")
        return 1
    info = states(d)
    for n in sorted(info, key=lambda n: (n != "redis", n == "scheduler", len(n), n)):
        print(f"{n:<12} {info[n]['statename']:<9} {info[n]['description']}")
    return 0 if all(i["statename"] == "RUNNING" for i in info.values()) else 1


def read_url(d: Path, identity: str | None = None) -> str:
    """DIR's address (no secret), or with IDENTITY ("admin", "engine") that
    identity's full URL."""
    if identity is None:
        return identities.public_url(d)
    path = identities.admin_path(d) if identity == "admin" else engine_path(d)
    if not path.exists():
        raise ClusterError(f"{d} has no {identity} identity ({path} is missing)")
    return credentials.read_url_file(path)


def _check_url(d: Path | None, url: str | None) -> str:
    """The URL `check` uses: --redis (without a password), else DIR's admin
    identity, else the usual lookup (broker/credentials.py)."""
    if url:
        return credentials.refuse_on_command_line(url, "--redis")
    return read_url(d, "admin") if d else credentials.redis_url()


def adduser(d: Path, name: str, role: str, write: Path | None) -> None:
    """Add user NAME; print its PSTACK_REDIS line (the last, alone on stdout)
    or write it to the private file WRITE."""
    url = identities.add_user(d, name, role)
    if write:
        write_private(write, url + "\n")
        print(f"user {name} ({role}): its URL is in {write} (mode 0600)", file=sys.stderr)
        return
    print(f"user {name} ({role}) added; give them this line, and no one else "
          "(its secret is not kept here: adduser again makes a new one):", file=sys.stderr)
    print(f"{credentials.ENV_URL}={url}")


def print_users(d: Path) -> None:
    rows = sorted(identities.users(d).items())
    width = max([4] + [len(n) for n, _ in rows])
    for n, role in [("NAME", "ROLE")] + rows:
        print(f"{n:<{width}}  {role}")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a pstack cluster (redis-server, the scheduler and pd daemons) "
                    "under supervisord, everything kept in DIR.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, allow_abbrev=False)
        p.add_argument("dir", metavar="DIR", type=Path, help="the cluster folder")
        return p

    def daemons(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pds", type=int, default=2, metavar="N",
                       help="pd daemons to run (default 2)")
        p.add_argument("--slots", type=int, default=1, metavar="S",
                       help="slots per daemon (default 1)")
        p.add_argument("--name", metavar="PREFIX", help="engine names are "
                       "PREFIX-0, PREFIX-1, ... (default HOST-DIRNAME)")

    def advertise(p: argparse.ArgumentParser) -> None:
        p.add_argument("--advertise", metavar="ADDR",
                       help="the IP address other hosts reach this host at, passed to each "
                            "pd (default: the address of the route to Redis); never loopback "
                            "when Redis is reached from other hosts")

    p = command("start", "start a head host: redis-server (persistent, its files in DIR; "
                         "anonymous access refused), the scheduler and pd daemons")
    daemons(p)
    p.add_argument("--port", type=int, metavar="P", help="Redis port, which must be free "
                   "(default: the previous start's if free, else a free one)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="Redis address (default 127.0.0.1); with 0.0.0.0 or :: the URL "
                        "names --advertise, else the first address of an up interface")
    advertise(p)
    p = command("worker", "start a worker host: pd daemons joining a head's Redis as its "
                          "engine identity")
    daemons(p)
    p.add_argument("--redis-file", type=Path, metavar="FILE",
                   help="file (mode 0600) holding the head's engine URL (default "
                        "$PSTACK_REDIS, else the file named by $PSTACK_REDIS_FILE)")
    advertise(p)
    p = command("adduser", "add a user (or give one a new secret); prints, last, the "
                           "user's PSTACK_REDIS=URL line")
    p.add_argument("name", metavar="NAME", help="the user's name")
    p.add_argument("--admin", action="store_true", help="an administrator: may do anything")
    p.add_argument("--write", type=Path, metavar="FILE",
                   help="write the URL to FILE (mode 0600) instead of printing it")
    command("deluser", "remove a user; its connections are closed").add_argument("name", metavar="NAME")
    command("users", "list the users and their roles")
    command("stop", "stop the cluster (not an error if none is running)")
    command("status", "print the state of each program")
    p = command("url", "print the cluster's Redis address (without any secret)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--engine", action="store_const", dest="identity", const="engine",
                       help="the engine identity's full URL, secret included (for workers)")
    which.add_argument("--admin", action="store_const", dest="identity", const="admin",
                       help="the admin identity's full URL, secret included")
    p = sub.add_parser("check", help=check.HELP, description=check.HELP)
    p.add_argument("dir", metavar="DIR", type=Path, nargs="?",
                   help="a head's cluster folder (check acts as its admin)")
    p.add_argument("--redis", metavar="URL", help="a Redis URL without password (default: "
                   "DIR's, else $PSTACK_REDIS, $PSTACK_REDIS_FILE, ~/.config/pstack/redis.url)")
    p.add_argument("--timeout", type=float, default=check.TIMEOUT, metavar="S",
                   help=f"seconds each pair may run (default {check.TIMEOUT:.0f})")
    p = sub.add_parser("unit", help="print a systemd unit that keeps this host up: it runs the start or "
                                     "worker command given after `unit`, at boot and whenever supervisord dies",
                       description="print a systemd unit that keeps this host up, e.g. "
                                   f"`{prog} unit start /srv/pstack --pds 4 > /etc/systemd/system/pstack.service`")
    p.add_argument("host", nargs=argparse.REMAINDER, metavar="start|worker DIR ...",
                   help="the command the unit runs, with its options")
    config.describe(parser, {"0": "done", "1": "the command failed (status: a program is not running; "
                                               "check: a pair of engines failed)", "2": "bad arguments"},
                    ("PSTACK_REDIS", "PSTACK_REDIS_FILE", "PSTACK_CONFIG", "PSTACK_DATA_HOST", "PSTACK_CURVE"))
    return parser


def host_unit(command: argparse.Namespace) -> str:
    """The systemd unit (conf/pstack-host.service.in) of a parsed `start` or
    `worker` command: systemd runs the command, watches supervisord by its
    pid file, and stops the host with `stop DIR`."""
    d = cluster_dir(command.dir)
    start = [sys.executable, "-m", "pd.cluster", command.command, str(d)]
    for flag in ("pds", "slots", "name", "advertise", "port", "bind", "redis_file"):
        value = getattr(command, flag, None)
        if value is not None:
            start += [f"--{flag.replace('_', '-')}", str(cluster_dir(value) if flag == "redis_file" else value)]
    stop = [sys.executable, "-m", "pd.cluster", "stop", str(d)]

    def unit_value(value: object) -> str:       # systemd expands %specifiers and $VARIABLES itself
        return str(value).replace("%", "%%").replace("$", "$$")
    values = {"what": "head" if command.command == "start" else "worker", "dir": d,
              "user": d.owner() if d.exists() else getpass.getuser(),
              "start": shlex.join(start), "stop": shlex.join(stop)}
    template = string.Template((CONF_DIR / "pstack-host.service.in").read_text())
    return template.substitute({k: unit_value(v) for k, v in values.items()})


def _started(what: str, d: Path, url: str, prefix: str | None, pds: int) -> None:
    names = ", ".join(f"{prefix or _default_name(d)}-{k}" for k in range(pds))
    print(f"pstack {what} started in {d}: Redis at {url}, engines {names}")


def _run(args: argparse.Namespace, d: Path | None, prog: str) -> int:
    """Carry out one parsed command; its exit status."""
    if args.command == "start":
        url = start(d, args.pds, args.slots, args.port, args.bind, args.name, args.advertise)
        _started("head", d, url, args.name, args.pds)
        print(f"add a user: {prog} adduser {d} NAME   (prints the PSTACK_REDIS=... line for NAME)")
    elif args.command == "worker":
        url = credentials.read_url_file(args.redis_file) if args.redis_file else None
        url = worker(d, url, args.pds, args.slots, args.name, args.advertise)
        _started("worker", d, url, args.name, args.pds)
    elif args.command == "adduser":
        adduser(d, args.name, "admin" if args.admin else "user", args.write)
    elif args.command == "deluser":
        identities.del_user(d, args.name)
        print(f"user {args.name} removed; its connections are closed")
    elif args.command == "users":
        print_users(d)
    elif args.command == "check":
        return 0 if check.check(_check_url(d, args.redis), args.timeout) else 1
    elif args.command == "stop":
        if not stop(d):
            print(f"no cluster is running in {d}", file=sys.stderr)
    elif args.command == "status":
        return status(d)
    elif args.command == "url":
        print(read_url(d, args.identity))
    elif args.command == "unit":
        host = _parser(prog).parse_args(args.host)
        if host.command not in ("start", "worker"):
            raise ValueError("a unit runs a host: give `start DIR ...` or `worker DIR ...` after `unit`")
        print(host_unit(host), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `python -m pd.cluster` command; returns the exit status."""
    prog = Path(sys.argv[0]).name
    prog = prog if prog == "pstack-cluster" else "python -m pd.cluster"
    args = _parser(prog).parse_args(argv)
    d = cluster_dir(args.dir) if getattr(args, "dir", None) else None
    try:
        return _run(args, d, prog)
    except (ClusterError, IdentityError, CredentialsError, ValueError) as e:
        print(f"{prog} {args.command}: {e}", file=sys.stderr)
    except (OSError, xmlrpc.client.Error, redis.RedisError, subprocess.SubprocessError) as e:
        print(f"{prog} {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""pstack-deploy: install pstack on many hosts over SSH, start a worker on
each, and check from here that its engines registered.

    pstack-deploy [--redis-file FILE] [--prefix /opt/pstack] [--pds 1] [--slots 1]
                  [--name FORMAT] [--python python3] [--identity KEY] [--port 22]
                  [--known-hosts FILE] [--strict-host-keys] [--systemd]
                  [--advertise-from-host] [--source DIR] [--cache DIR] [--timeout S]
                  [USER@]HOST ...

The wheelhouse (the pstack wheel built from a source tree, plus wheels of
every dependency) is built once here and cached; each host, in parallel,
gets it uploaded to PREFIX/wheelhouse and installs from it alone (`pip
install --no-index`), so hosts need no internet access.  The Redis URL, the
head's engine identity's (`pstack-cluster url HEADDIR --engine`, or the file
HEADDIR/engine.url), comes from --redis-file, $PSTACK_REDIS or
$PSTACK_REDIS_FILE and is only ever written to PREFIX/redis.url (mode 0600)
on each host: never on a command line, here or there.  Re-running upgrades in place.  See
docs/deployment.md, "Deploying to many hosts".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import redis

from broker import config, credentials
from broker.control import Control, connect
from broker.credentials import CredentialsError, redact, scrub

from . import identities
from .identities import IdentityError
from .wheelhouse import BuildError, Wheelhouse, build_wheelhouse, default_cache

CHECKOUT = Path(__file__).resolve().parent.parent
CONNECT_TIMEOUT = 10.0          # seconds for the SSH connection and handshake
REGISTER_TIMEOUT = 20.0         # seconds for a started worker's engines to be seen alive
PREFIX_RE = re.compile(r"(/[A-Za-z0-9_.-]+)+")    # no quoting trouble in sh, systemd or supervisor
NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")      # outside pd.cluster's rule for engine names


class DeployError(Exception):
    """A step failed; the message is one line, DETAIL the remote output."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


# -- known hosts -------------------------------------------------------------

class KnownHosts:
    """A known_hosts file of pstack's own, in OpenSSH format.

    accept-new (default): a host never seen is trusted on first connection
    and its key recorded; a host recorded with another key is refused.
    strict: only recorded keys are accepted (add them with ssh-keyscan).
    """

    def __init__(self, path: Path, strict: bool):
        self.path, self.strict = path, strict
        text = path.read_text() if path.exists() else ""
        self.known = asyncssh.import_known_hosts(text)

    @staticmethod
    def pattern(host: str, port: int) -> str:
        return host if port == 22 else f"[{host}]:{port}"

    def recorded(self, host: str, addr: str, port: int) -> bool:
        """True when HOST has any key recorded (whether or not it matches)."""
        return bool(self.known.match(host, addr, None if port == 22 else port)[0])

    def add(self, host: str, port: int, key: asyncssh.SSHKey) -> None:
        kind, blob = key.export_public_key("openssh").decode().split()[:2]
        line = f"{self.pattern(host, port)} {kind} {blob}\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(line)
        self.known = asyncssh.import_known_hosts(self.path.read_text())


class _Client(asyncssh.SSHClient):
    """Decides on host keys the known_hosts file does not hold."""

    def __init__(self, store: KnownHosts, port: int):
        self.store, self.port = store, port
        self.refused = ""

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        if self.store.recorded(host, addr, self.port):
            self.refused = (f"its host key is not the one recorded in {self.store.path} "
                            "(if the host was reinstalled, delete its line there)")
            return False
        if self.store.strict:
            self.refused = (f"its host key is not in {self.store.path} and --strict-host-keys "
                            f"is set (add it: ssh-keyscan -p {self.port} HOST >> {self.store.path})")
            return False
        self.store.add(host, self.port, key)
        return True


# -- one host ----------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    spec: str                   # as given: [user@]host
    user: str | None
    host: str

    @classmethod
    def parse(cls, spec: str) -> Target:
        user, _, host = spec.rpartition("@")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not host:
            raise ValueError(f"{spec!r}: expected [USER@]HOST")
        return cls(spec, user or None, host)


@dataclass
class Options:
    url: str
    prefix: str
    pds: int
    slots: int
    name: str                   # format with {host} and {hostname}
    python: str
    port: int
    identity: Path | None
    known_hosts: KnownHosts
    systemd: bool
    advertise_from_host: bool
    timeout: float


@dataclass
class Outcome:
    target: Target
    version: str = ""
    engines: list[str] = field(default_factory=list)
    error: str = ""
    detail: str = ""


# Run by the remote Python: what deploying there needs, as JSON.
PROBE = r"""
import importlib.util, json, os, platform, shutil, socket, sys, sysconfig
has = lambda m: importlib.util.find_spec(m) is not None
v = sys.version_info
print(json.dumps({
    "python": f"{sys.implementation.name}-{v.major}.{v.minor}-{platform.machine()}",
    "hostname": socket.gethostname().split(".")[0],
    "root": os.geteuid() == 0,
    "venv": has("venv") and has("ensurepip"),
    "headers": os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")),
    "compiler": shutil.which("g++") is not None,
    "libxml2": os.path.exists("/usr/include/libxml2/libxml/parser.h"),
    "systemd": os.path.isdir("/run/systemd/system"),
}))
"""

UNIT = """\
[Unit]
Description=pstack worker {name} (pd daemons under supervisord in {prefix}/cluster)
Wants=network-online.target
After=network-online.target

[Service]
Type=forking
PIDFile={prefix}/cluster/supervisord.pid
ExecStart={prefix}/worker.sh
ExecStop={prefix}/venv/bin/pstack-cluster stop {prefix}/cluster
Restart=on-failure
RestartSec=5
TimeoutStartSec=90

[Install]
WantedBy=multi-user.target
"""

WORKER_SH = """\
#!/bin/sh
# Written by pstack-deploy: starts this host's pstack worker, engines
# {name}-0 ... under supervisord in {prefix}/cluster.  The head's engine
# URL, with its secret, is in {prefix}/redis.url (mode 0600): pstack-cluster
# reads it there, so that it never appears on a command line.
exec {prefix}/venv/bin/pstack-cluster worker {prefix}/cluster --redis-file {prefix}/redis.url \\
    --pds {pds} --slots {slots} --name {name}{advertise} >/dev/null
"""


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Host:
    """One SSH connection to a target and the steps run over it."""

    def __init__(self, target: Target, opts: Options):
        self.target, self.opts = target, opts
        self.conn: asyncssh.SSHClientConnection | None = None
        self.facts: dict = {}
        self.name = ""

    def redact(self, text: str) -> str:
        """TEXT with the Redis password masked (remote errors may quote the URL)."""
        return scrub(text, self.opts.url)

    async def connect(self) -> None:
        client = _Client(self.opts.known_hosts, self.opts.port)
        keys = {"client_keys": [str(self.opts.identity)]} if self.opts.identity else {}
        try:
            self.conn = await asyncssh.connect(
                self.target.host, port=self.opts.port, username=self.target.user,
                known_hosts=self.opts.known_hosts.known, client_factory=lambda: client,
                connect_timeout=CONNECT_TIMEOUT, **keys)
        except asyncssh.HostKeyNotVerifiable as e:
            raise DeployError(f"connect: host key refused: {client.refused or e}") from None
        except asyncssh.PermissionDenied:
            raise DeployError("connect: key authentication refused"
                              + (f" (key {self.opts.identity})" if self.opts.identity else "")) from None
        except asyncio.TimeoutError:        # an OSError too, from Python 3.11
            raise DeployError(f"connect to port {self.opts.port}: no answer "
                              f"in {CONNECT_TIMEOUT:.0f} s") from None
        except OSError as e:
            # asyncio's text repeats the address; the reason is in errno
            reason = os.strerror(e.errno) if e.errno else str(e) or type(e).__name__
            raise DeployError(f"connect to port {self.opts.port}: {reason}") from None
        except asyncssh.Error as e:
            raise DeployError(f"connect: {e or type(e).__name__}") from None

    async def sh(self, command: str, what: str, input: str | None = None) -> str:
        """Run COMMAND in the remote shell; its stdout, or DeployError naming WHAT."""
        res = await self.conn.run(command, input=input, check=False)
        if res.exit_status != 0:
            status = f"exit {res.exit_status}" if res.exit_status is not None else \
                f"signal {res.exit_signal[0] if res.exit_signal else '?'}"
            out = self.redact(_tail(str(res.stderr or res.stdout or "")))
            last = out.splitlines()[-1] if out else ""
            raise DeployError(f"{what} failed ({status})" + (f": {last}" if last else ""), out)
        return str(res.stdout)

    async def probe(self, house: Wheelhouse) -> None:
        """Check the remote Python and what pstack needs there."""
        py = self.opts.python
        out = await self.sh(f"{shlex.quote(py)} -c {shlex.quote(PROBE)}", f"running {py}")
        self.facts = facts = json.loads(out)
        problems = []
        if facts["python"] != house.python:
            problems.append(f"{py} is {facts['python']} but the wheelhouse is for {house.python} "
                            "(run pstack-deploy with a matching Python, or pick one with --python)")
        if not facts["venv"]:
            problems.append(f"{py} lacks the venv/ensurepip modules (Debian: apt-get install python3-venv)")
        if not facts["headers"]:
            problems.append(f"{py} lacks Python.h, needed to compile handlers (Debian: python3-dev)")
        if not facts["compiler"]:
            problems.append("g++ is missing, needed to compile handlers (Debian: apt-get install g++)")
        if not facts.get("libxml2"):
            problems.append("libxml2's headers are missing, needed to build psim's instance reader "
                            "(Debian: apt-get install libxml2-dev)")
        if self.opts.systemd and not facts["systemd"]:
            problems.append("--systemd: systemd is not running on this host")
        if self.opts.systemd and not facts["root"]:
            problems.append("--systemd: installing a system unit needs root")
        if problems:
            raise DeployError("; ".join(problems))

    async def install(self, house: Wheelhouse) -> str:
        """Upload the wheelhouse, stop the old worker, install, start; the
        installed version."""
        o, p = self.opts, shlex.quote(self.opts.prefix)
        unit = f"pstack-{self.name}.service"
        unit_file = f"/etc/systemd/system/{unit}"
        await self.sh(f"mkdir -p {p}/wheelhouse {p}/cluster", f"creating {o.prefix}")
        async with self.conn.start_sftp_client() as sftp:
            await self.upload(sftp, house)
            await _write(sftp, f"{o.prefix}/redis.url", o.url + "\n", 0o600)
            advertise = ""
            if o.advertise_from_host:
                # the address this connection reached: the one other hosts use too
                addr = self.conn.get_extra_info("peername")[0]
                advertise = f" --advertise {shlex.quote(addr)}"
            await _write(sftp, f"{o.prefix}/worker.sh", WORKER_SH.format(
                prefix=p, pds=o.pds, slots=o.slots, name=self.name, advertise=advertise), 0o755)
            if o.systemd:
                await _write(sftp, unit_file, UNIT.format(name=self.name, prefix=o.prefix), 0o644)
        # Stop before installing, so no region worker starts from half-installed files.
        await self.sh(f"if [ -f {unit_file} ]; then systemctl stop {unit}; fi; "
                      f"if [ -x {p}/venv/bin/pstack-cluster ]; then "
                      f"{p}/venv/bin/pstack-cluster stop {p}/cluster; fi", "stopping the old worker")
        major_minor = self.facts["python"].split("-")[1].replace(".", ", ")
        await self.sh(
            f"{p}/venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != ({major_minor}))' "
            f"2>/dev/null || {shlex.quote(o.python)} -m venv --clear {p}/venv", "creating the venv")
        # Only the uploaded wheels: no index, and no pip configuration of the host's.
        await self.sh(f"PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 "
                      f"{p}/venv/bin/python -m pip install --quiet --no-index "
                      f"--find-links {p}/wheelhouse {p}/wheelhouse/{house.pstack.name}",
                      "pip install")
        if o.systemd:
            await self.sh(f"systemctl daemon-reload && systemctl enable --quiet {unit} && "
                          f"systemctl start {unit}",
                          f"starting {unit} (see journalctl -u {unit}, {o.prefix}/cluster/*.log)")
        else:
            # A unit left by an earlier --systemd deploy would fight this worker.
            await self.sh(f"if [ -f {unit_file} ]; then systemctl disable --quiet {unit} && "
                          f"rm {unit_file} && systemctl daemon-reload; fi; {p}/worker.sh",
                          f"starting the worker (logs in {o.prefix}/cluster)")
        return (await self.sh(f"{p}/venv/bin/python -c 'import importlib.metadata as m; "
                              f"print(m.version(\"pstack\"))'", "reading the version")).strip()

    async def upload(self, sftp: asyncssh.SFTPClient, house: Wheelhouse) -> None:
        """Put the wheels the host lacks; remove those no longer wanted."""
        remote = f"{self.opts.prefix}/wheelhouse"
        have = {n.filename: n.attrs.size for n in await sftp.readdir(remote)}
        missing = [w for w in house.wheels if have.get(w.name) != w.stat().st_size]
        if missing:
            await sftp.put([str(w) for w in missing], remote)
        wanted = {w.name for w in house.wheels}
        for name in have.keys() - wanted - {".", ".."}:
            await sftp.remove(f"{remote}/{name}")


async def _write(sftp: asyncssh.SFTPClient, path: str, text: str, mode: int) -> None:
    """Replace PATH with TEXT; the mode is set before any content is written."""
    tmp = path + ".new"
    async with sftp.open(tmp, "w", asyncssh.SFTPAttrs(permissions=mode)) as f:
        await sftp.chmod(tmp, mode)     # the attrs apply only to a file created now
        await f.write(text)
    await sftp.posix_rename(tmp, path)


def wait_registered(url: str, names: list[str], timeout: float = REGISTER_TIMEOUT) -> list[str]:
    """Wait until the engines NAMES are registered and alive at URL; the
    names that are not, after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {e["name"] for e in Control(connect(url)).engines() if e["alive"]}
        missing = [n for n in names if n not in alive]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.2)


# -- all hosts ---------------------------------------------------------------

async def _step(host: Host, outcome: Outcome, coro) -> bool:
    """Await CORO for HOST; on failure record it in OUTCOME and return False."""
    try:
        await asyncio.wait_for(coro, host.opts.timeout)
        return True
    except DeployError as e:
        outcome.error, outcome.detail = str(e), e.detail
    except asyncio.TimeoutError:
        outcome.error = f"timed out after {host.opts.timeout:.0f} s"
    except (OSError, asyncssh.Error) as e:
        outcome.error = f"ssh: {host.redact(str(e)) or type(e).__name__}"
    except redis.RedisError as e:
        outcome.error = f"the head's Redis: {host.redact(str(e)) or type(e).__name__}"
    return False


async def deploy(targets: list[Target], opts: Options, house: Wheelhouse) -> list[Outcome]:
    """Deploy to every target in parallel; one outcome per target, in order.

    First every host is connected and checked; then engine names are fixed
    (they must differ across hosts); then each host installs and starts.
    """
    hosts = [Host(t, opts) for t in targets]
    outcomes = [Outcome(t) for t in targets]

    async def check(h: Host) -> None:
        await h.connect()
        await h.probe(house)

    try:
        ok = await asyncio.gather(*(_step(h, out, check(h)) for h, out in zip(hosts, outcomes)))
        for h, out, good in zip(hosts, outcomes, ok):
            if good:
                raw = opts.name.format(host=h.target.host, hostname=h.facts["hostname"])
                h.name = NOT_NAME.sub("_", raw)
        names = [h.name for h, good in zip(hosts, ok) if good]
        for h, out, good in zip(hosts, outcomes, ok):
            if good and names.count(h.name) > 1:
                out.error = (f"engine name {h.name} would be used by several hosts: "
                             "give --name a format with {host}")
        ready = [(h, out) for h, out in zip(hosts, outcomes) if not out.error]

        async def bring_up(h: Host, out: Outcome) -> None:
            version = await h.install(house)
            names = [f"{h.name}-{k}" for k in range(opts.pds)]
            missing = await asyncio.to_thread(wait_registered, opts.url, names)
            if missing:
                raise DeployError(f"engines {', '.join(missing)} did not register at the head's "
                                  f"Redis (see {opts.prefix}/cluster/*.log on the host)")
            out.version, out.engines = version, names

        await asyncio.gather(*(_step(h, out, bring_up(h, out)) for h, out in ready))
    finally:
        for h in hosts:
            if h.conn is not None:
                h.conn.close()
    return outcomes


def report(outcomes: list[Outcome]) -> None:
    """One line per host on stdout; remote output of failures on stderr."""
    width = max(len(o.target.spec) for o in outcomes)
    for o in outcomes:
        if o.error:
            print(f"{o.target.spec:<{width}}  FAILED  {o.error}")
            if o.detail:
                print(f"{o.target.spec}:\n" + "\n".join("  " + line for line in o.detail.splitlines()),
                      file=sys.stderr)
        else:
            print(f"{o.target.spec:<{width}}  ok      pstack {o.version}, "
                  f"engines {', '.join(o.engines)} alive")


def main(argv: list[str] | None = None) -> int:
    """The `pstack-deploy` command; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="pstack-deploy",
        description="Install pstack on hosts over SSH (in parallel), start a worker on each "
                    "joining the head's Redis, and check its engines registered. Re-running "
                    "upgrades in place. Exit status 1 if any host failed.")
    p.add_argument("targets", nargs="+", metavar="[USER@]HOST", help="hosts to deploy to")
    p.add_argument("--redis-file", type=Path, metavar="FILE",
                   help="file (mode 0600) holding the head's engine URL, e.g. HEADDIR/engine.url "
                        "(default $PSTACK_REDIS, else the file named by $PSTACK_REDIS_FILE)")
    p.add_argument("--prefix", default="/opt/pstack", help="install folder on each host "
                   "(default /opt/pstack)")
    p.add_argument("--pds", type=int, default=1, metavar="N", help="pd daemons per host (default 1)")
    p.add_argument("--slots", type=int, default=1, metavar="S", help="slots per daemon (default 1)")
    p.add_argument("--name", default="{host}", metavar="FORMAT",
                   help="engine name prefix per host; {host} is the address given, {hostname} "
                        "the host's name (default {host}: engines HOST-0, HOST-1, ...)")
    p.add_argument("--python", default="python3", help="Python on the hosts (default python3)")
    p.add_argument("--identity", type=Path, metavar="KEY", help="SSH private key "
                   "(default: ssh-agent and ~/.ssh keys)")
    p.add_argument("--port", type=int, default=22, help="SSH port (default 22)")
    p.add_argument("--known-hosts", type=Path, metavar="FILE",
                   default=Path("~/.config/pstack/known_hosts").expanduser(),
                   help="pstack's known_hosts (default ~/.config/pstack/known_hosts); new hosts' "
                        "keys are added to it, changed keys refused")
    p.add_argument("--strict-host-keys", action="store_true",
                   help="refuse hosts whose key is not already in --known-hosts")
    p.add_argument("--systemd", action="store_true",
                   help="install a systemd unit that keeps the worker up across reboots "
                        "(hosts must run systemd; needs root)")
    p.add_argument("--advertise-from-host", action="store_true",
                   help="each pd advertises the address SSH reached its host at (default: "
                        "the host's address on its route to Redis)")
    p.add_argument("--source", type=Path, metavar="DIR",
                   help="pstack source tree to build the wheel from (default: this checkout)")
    p.add_argument("--cache", type=Path, metavar="DIR", default=default_cache(),
                   help="wheelhouse cache (default ~/.cache/pstack/wheelhouse)")
    p.add_argument("--timeout", type=float, default=600, metavar="S",
                   help="seconds per host for each phase (default 600)")
    config.describe(p, {"0": "every host deployed, its engines alive", "1": "a host failed (each host's line "
                                                                           "says why)", "2": "bad arguments"},
                    ("PSTACK_REDIS", "PSTACK_REDIS_FILE", "PSTACK_CONFIG"))
    args = p.parse_args(argv)

    def fail(message: str) -> int:
        print(f"pstack-deploy: {message}", file=sys.stderr)
        return 1

    try:
        url = credentials.read_url_file(args.redis_file) if args.redis_file else credentials.given_url()
    except CredentialsError as e:
        return fail(str(e))
    if not url:
        return fail("give the head's engine URL (`pstack-cluster url HEADDIR --engine`): "
                    "--redis-file FILE, $PSTACK_REDIS or $PSTACK_REDIS_FILE")
    if not PREFIX_RE.fullmatch(args.prefix) or len(args.prefix) > 60:
        return fail(f"--prefix {args.prefix!r}: an absolute path of letters, digits, _ . - / "
                    "(at most 60 characters: supervisord's socket lives below it)")
    if args.pds < 1 or args.slots < 1:
        return fail("--pds and --slots must be at least 1")
    try:
        args.name.format(host="h", hostname="h")
    except (KeyError, IndexError, ValueError):
        return fail(f"--name {args.name!r}: the only fields are {{host}} and {{hostname}}")
    try:
        targets = [Target.parse(s) for s in args.targets]
    except ValueError as e:
        return fail(str(e))
    if len({t.host for t in targets}) < len(targets):
        return fail("a host is given twice")
    source = args.source or (CHECKOUT if (CHECKOUT / "setup.cfg").is_file() else None)
    if source is None:
        return fail("pstack is not running from a checkout: give --source DIR")
    try:
        identities.require_engine(connect(url))     # the engines' registration is checked from here
    except redis.RedisError as e:
        return fail(f"the head's Redis at {redact(url)} does not answer from here: {e}")
    except IdentityError as e:
        return fail(str(e))
    try:
        house = build_wheelhouse(source, args.cache)
    except BuildError as e:
        return fail(f"{e}\n{e.detail}".rstrip())
    opts = Options(url=url, prefix=args.prefix, pds=args.pds, slots=args.slots,
                   name=args.name, python=args.python, port=args.port, identity=args.identity,
                   known_hosts=KnownHosts(args.known_hosts, args.strict_host_keys),
                   systemd=args.systemd, advertise_from_host=args.advertise_from_host,
                   timeout=args.timeout)
    outcomes = asyncio.run(deploy(targets, opts, house))
    report(outcomes)
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Hosts on one machine, for tests: each host is a Linux network namespace.

    with Network(["head", "w1", "w2"]) as net:
        head = net.hosts["head"]
        head.run(["hostname", "-I"]).stdout     # runs inside head's namespace
        net.hosts["w1"].link(False)             # w1 is cut off the network

Topology: a "switch" namespace holds a Linux bridge; each host has one veth
pair, `eth0` in the host's namespace and `portK` on the bridge. Every
namespace has `lo` up. Host K gets 198.18.N.(K+1)/24, in the RFC 2544
benchmarking range, with N picked per run. The addresses and routes exist
only inside these namespaces: the root namespace gets none, so no test
traffic can leave the machine (and the root namespace cannot reach the
hosts either: run clients inside a host).

Each host also gets its own /etc/hosts (`ip netns exec` bind-mounts
/etc/netns/NS/hosts over /etc/hosts), as on a Debian host: `localhost`, the
machine's host name on 127.0.1.1, and every host's name on its address.

Needs root and iproute2; available() says why not otherwise. close() (also
on leaving the `with` block, however it is left) kills every process in the
namespaces and deletes them, which removes the veths and the bridge. A new
Network also removes namespaces of earlier runs that died before closing.
"""
from __future__ import annotations

import functools
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

NETNS_ETC = Path("/etc/netns")
RANGE = ipaddress.ip_network("198.18.0.0/15")       # RFC 2544: for benchmarking, never routed
KILL_SECONDS = 10.0
OURS = re.compile(r"pst(\d+)\D")                  # default prefix: pst<pid of the run>


def _ip(*args: str) -> subprocess.CompletedProcess:
    """Run `ip ARGS`; raise with ip's message when it fails."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc


def _subnet(seed: int) -> ipaddress.IPv4Network:
    """One /24 of the test range; different seeds (pids) spread over its 512."""
    return list(RANGE.subnets(new_prefix=24))[seed % 512]


def _pids(ns: str) -> list[int]:
    """Processes in namespace NS (zombies are not listed: they have none)."""
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split()]


def _kill_all(ns: str) -> None:
    """SIGKILL every process in NS and the process groups they lead or share.

    Repeats until none is left, since a process may fork while we list.
    Never signals our own process group (a child started without a session
    of its own shares it).
    """
    ours = os.getpgrp()
    deadline = time.monotonic() + KILL_SECONDS
    while pids := _pids(ns):
        for pid in pids:
            try:
                group = os.getpgid(pid)
                if group not in (ours, 0, 1):
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in namespace {ns} survive SIGKILL")
        time.sleep(0.02)


def _remove(ns: str) -> list[str]:
    """Kill NS's processes, delete it and its /etc/netns folder; the problems."""
    problems = []
    try:
        _kill_all(ns)
    except RuntimeError as e:
        problems.append(str(e))
    try:
        _ip("netns", "delete", ns)
    except RuntimeError as e:
        problems.append(str(e))
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
    return problems


def _remove_stale() -> None:
    """Remove namespaces left by runs that were killed before they could
    clean up (their pid is gone), so they never pile up."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for ns in (line.split()[0] for line in listed.splitlines() if line.strip()):
        m = OURS.match(ns)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _remove(ns)


class Host:
    """One host: a network namespace with an address on the test network."""

    def __init__(self, network: Network, name: str, index: int, addr: str):
        self.name = name
        self.ns = f"{network.prefix}-{name}"
        self.addr = addr
        self._network = network
        self._port = f"port{index}"          # its end on the switch's bridge

    def _argv(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *map(str, cmd)]

    def run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        """Run CMD in this host and wait; text output captured unless told otherwise."""
        kw.setdefault("text", True)
        if not any(k in kw for k in ("stdout", "stderr", "capture_output")):
            kw["capture_output"] = True
        return subprocess.run(self._argv(cmd), **kw)

    def popen(self, cmd: list[str], **kw) -> subprocess.Popen:
        """Start CMD in this host, in a session of its own (close() kills its group)."""
        kw.setdefault("start_new_session", True)
        return subprocess.Popen(self._argv(cmd), **kw)

    def link(self, up: bool) -> None:
        """Plug this host's cable into the switch, or pull it out.

        The host's own interface stays up with its address and routes, as
        when a cable or switch fails further away: packets simply stop.
        """
        _ip("-n", self._network.switch, "link", "set", self._port, "up" if up else "down")

    def kill_all(self) -> None:
        """SIGKILL every process running in this host."""
        _kill_all(self.ns)

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.addr} ns={self.ns}>"


class Network:
    """Hosts on one bridge; a context manager that removes everything on exit."""

    def __init__(self, hosts: list[str], prefix: str | None = None):
        if len(set(hosts)) != len(hosts) or not 0 < len(hosts) < 254:
            raise ValueError(f"hosts must be 1 to 253 distinct names: {hosts}")
        self.prefix = prefix or f"pst{os.getpid()}"
        self.switch = f"{self.prefix}-switch"
        self.subnet = _subnet(os.getpid())
        addrs = list(self.subnet.hosts())
        self.hosts = {name: Host(self, name, k, str(addrs[k])) for k, name in enumerate(hosts)}
        self._made: list[str] = []           # namespaces to delete, in creation order
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def _build(self) -> None:
        _remove_stale()
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        etc_hosts = "127.0.0.1 localhost\n" f"127.0.1.1 {socket.gethostname()}\n" + "".join(
            f"{h.addr} {h.name}\n" for h in self.hosts.values())
        for h in self.hosts.values():
            self._add_ns(h.ns)
            (NETNS_ETC / h.ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / h.ns / "hosts").write_text(etc_hosts)
            # made directly in the two namespaces: no name ever appears in the root one
            _ip("link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", h._port,
                "netns", self.switch)
            _ip("-n", self.switch, "link", "set", h._port, "master", "br0")
            _ip("-n", self.switch, "link", "set", h._port, "up")
            _ip("-n", h.ns, "addr", "add", f"{h.addr}/{self.subnet.prefixlen}", "dev", "eth0")
            _ip("-n", h.ns, "link", "set", "eth0", "up")

    def close(self) -> None:
        """Kill every process in the namespaces and delete them; safe to repeat."""
        problems = [problem for ns in reversed(self._made) for problem in _remove(ns)]
        self._made.clear()
        if problems:
            raise RuntimeError("; ".join(problems))

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.cache
def available() -> str | None:
    """None when this process can make network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "`ip` is missing (apt-get install -y iproute2)"
    try:
        with Network(["probe"], prefix=f"pst{os.getpid()}probe") as net:
            if net.hosts["probe"].run(["true"]).returncode != 0:
                return "`ip netns exec` fails here"
    except (RuntimeError, OSError) as e:
        return f"cannot make network namespaces here: {e}"
    return None

"""Resource limits for a process that runs handlers (a region's sandbox,
the psim command): memory, CPU seconds, file size and processes, as POSIX
rlimits.

Memory is RLIMIT_DATA, set to what the process uses at the moment the limit
is applied, plus STACK_MB for what psim and the data plane add while running
(the compiler thread, the compiled module, ZeroMQ's threads), plus
`memory_mb`: so `memory_mb` is the memory the application itself may have
(its instance arrays and whatever its handlers allocate).  RLIMIT_DATA
(Linux >= 4.7) counts private writable mappings: the heap, anonymous
mmaps, thread stacks.  RLIMIT_AS would also count shared libraries and the
64 MB address ranges glibc reserves per thread arena, so at rest a worker
"uses" ~270 MB of address space but ~35 MB of data (measured): with
RLIMIT_AS a limit would mostly measure the runtime, not the application.
Both count allocations, touched or not.

A `new` past the limit throws std::bad_alloc, which the engine's guard
reports as out of memory with the device and handler; a `malloc` returns
NULL, which a handler that uses it turns into a segfault; Python raises
MemoryError.

RLIMIT_NPROC (`procs`) counts every process and thread of the real user
on the host, so it is set only where the process runs as a user of its
own: a region's sandbox when pd is root (pd/jail.py).  As pd's or a psim
user's, it would limit their other processes, not one handler.
"""
from __future__ import annotations

import contextlib
import resource
import signal
from dataclasses import dataclass
from typing import Iterator

MB = 1 << 20
STACK_MB = 64           # what psim and the data plane add to a worker at rest while running (measured 17-25 MB)
NEAR_LIMIT = 0.9        # data in use above this share of the limit: an allocation was probably refused


@dataclass(frozen=True)
class Limits:
    """Per-process limits; 0 means none."""
    memory_mb: int = 0
    cpu_seconds: int = 0
    file_mb: int = 0
    procs: int = 0          # processes and threads of the process's user

    def signal_text(self, sig: int) -> str | None:
        """What a death by `sig` means under these limits, if it is theirs."""
        if sig == signal.SIGXCPU and self.cpu_seconds:
            return f"CPU limit of {self.cpu_seconds} s exceeded"
        if sig == signal.SIGXFSZ and self.file_mb:
            return f"file size limit of {self.file_mb} MB exceeded"
        return None


def data_mb() -> float:
    """Private writable memory of this process now (what RLIMIT_DATA counts)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _memory_bytes(memory_mb: int) -> int:
    return int((data_mb() + STACK_MB + memory_mb) * MB)


def apply(limits: Limits) -> None:
    """Limit this process (and the compiler it starts) for good: soft and
    hard limits alike, so handlers cannot raise them."""
    if limits.memory_mb:
        size = _memory_bytes(limits.memory_mb)
        resource.setrlimit(resource.RLIMIT_DATA, (size, size))
    if limits.cpu_seconds:
        # SIGXCPU at the soft limit; the hard one, a second later, is SIGKILL
        # for a handler that catches or ignores SIGXCPU
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    if limits.file_mb:
        size = limits.file_mb * MB
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        # Python ignores SIGXFSZ (writes just fail with EFBIG); a write past
        # the limit outside a handler (whose guard reports it) ends the process
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    if limits.procs:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.procs, limits.procs))


@contextlib.contextmanager
def memory_limited(memory_mb: int) -> Iterator[None]:
    """The memory limit for a while, in a process that carries on after
    (psim()): only the soft limit, restored on the way out."""
    if not memory_mb:
        yield
        return
    old = resource.getrlimit(resource.RLIMIT_DATA)
    size = _memory_bytes(memory_mb)
    if old[1] != resource.RLIM_INFINITY:
        size = min(size, old[1])
    resource.setrlimit(resource.RLIMIT_DATA, (size, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, old)


def near_memory_limit() -> bool:
    """Whether this process is close to its memory limit (a crash then is
    most likely a handler using the NULL of an allocation the limit refused)."""
    soft = resource.getrlimit(resource.RLIMIT_DATA)[0]
    return soft != resource.RLIM_INFINITY and data_mb() * MB >= NEAR_LIMIT * soft


def file_size_text() -> str:
    """"file size limit of N MB", from this process's RLIMIT_FSIZE."""
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft == resource.RLIM_INFINITY:
        return "file size limit"
    return f"file size limit of {soft / MB:g} MB"

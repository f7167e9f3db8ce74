"""The limits a daemon puts on its region workers (psim/limits.py applies them).

- Memory: the process's `memory_mb` option, else the daemon's default
  (`pd --memory-mb`; by default the host's memory shared out among its
  slots).  A process asking more than the daemon's maximum (`pd
  --max-memory-mb`; by default the host's memory) is refused, not capped:
  a capped process would fail later, less clearly, or run with less than
  its owner planned for.
- CPU seconds: `pd --cpu-seconds` (default none; `timeout` is the
  per-process limit on wall time).
- File size: `pd --file-mb` (default 1024): any one file a worker or its
  handlers write.
- Processes: `pd --max-procs` (default 64): processes and threads of one
  region's sandbox, counted by its uid (only when pd is root: pd/jail.py).

The daemon hands its policy to its workers in $PSTACK_LIMITS (JSON); a
worker started by hand without it runs unlimited.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import psutil

from psim.limits import Limits

ENV = "PSTACK_LIMITS"
FILE_MB = 1024
PROCS = 64             # the sandbox itself uses ~6 (Python, ZeroMQ's and the authenticator's threads)


class Refused(ValueError):
    """The process asks for more than this daemon allows."""


@dataclass(frozen=True)
class Policy:
    """A daemon's limits for its regions; 0 means none."""
    memory_mb: int = 0          # a region's memory when its process does not say
    max_memory_mb: int = 0      # the most a process may ask for
    cpu_seconds: int = 0
    file_mb: int = 0
    max_procs: int = 0

    @classmethod
    def for_host(cls, slots: int, memory_mb: int | None = None, max_memory_mb: int | None = None,
                 cpu_seconds: int = 0, file_mb: int = FILE_MB, max_procs: int = PROCS) -> "Policy":
        """The daemon's policy; memory figures not given come from the host's memory."""
        total = psutil.virtual_memory().total >> 20
        policy = cls(total // max(slots, 1) if memory_mb is None else memory_mb,
                     total if max_memory_mb is None else max_memory_mb, cpu_seconds, file_mb, max_procs)
        if min(asdict(policy).values()) < 0:
            raise ValueError("limits must be 0 (none) or more")
        if policy.max_memory_mb and not 0 < policy.memory_mb <= policy.max_memory_mb:
            raise ValueError(f"the default memory ({policy.memory_mb} MB) must be set and at most "
                             f"the maximum ({policy.max_memory_mb} MB)")
        return policy

    def env(self) -> dict[str, str]:
        return {ENV: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls) -> "Policy":
        return cls(**json.loads(os.environ.get(ENV, "{}")))

    def limits(self, memory_mb: int, engine: str) -> Limits:
        """The limits of a region whose process asked for `memory_mb` (0: the default)."""
        if self.max_memory_mb and memory_mb > self.max_memory_mb:
            raise Refused(f"memory_mb={memory_mb} is more than engine {engine} allows "
                          f"({self.max_memory_mb} MB at most)")
        return Limits(memory_mb or self.memory_mb, self.cpu_seconds, self.file_mb, self.max_procs)

    def death(self, code: int) -> str | None:
        """The limit a worker that ended with `code` (a Popen returncode) hit, if any."""
        return Limits(0, self.cpu_seconds, self.file_mb).signal_text(-code) if code < 0 else None


def where(region: int, engine: str) -> str:
    """How limit reasons name the place: "region 0 (engine e1)"."""
    return f"region {region} (engine {engine})"

"""The liveness of a client-side region (an application engine's region, a
debugger's place): a small child process that beats for it through the
scheduler (app_beat) every BEAT_SECONDS, from before the region claims its
place until it ends.

A process of its own, not a thread: the client's own work cannot starve
it.  A receive function that holds the GIL (a long C call, a NumPy
operation that keeps it, a slow pure-Python loop), a busy machine, or the
other regions compiling for a long while, none of it delays a beat.  The
child beats while its client lives: it stops when the client closes its
end of the pipe (done, or dead: the kernel closes it), so a client that is
killed fails its process within the beat TTL (broker/control.py APP_TTL_MS).

    python -m pcli.keepalive       stdin: one JSON line {url, user, pid, region},
                                   then progress lines (JSON objects); stdout: "ended"

The client (Keepalive) reads "ended" when the scheduler says the process
ended elsewhere (failed, killed), or no longer knows the region as this
user's, or finds the child gone: it then stops serving and says why.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

BEAT_SECONDS = 0.5
STOP_SECONDS = 5.0          # how long close() waits for the child before killing it


class Keepalive:
    """The client's side: starts the child, passes progress, tells whether the process ended."""

    def __init__(self, url: str, user: str, pid: int, region: int):
        self.child = subprocess.Popen([sys.executable, "-m", "pcli.keepalive"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, close_fds=True,     # its stderr: the client's
                                      start_new_session=True)    # Ctrl-C is the client's to handle: it closes the pipe
        # the URL may hold a password: on its stdin, never its command line
        self.child.stdin.write(json.dumps({"url": url, "user": user, "pid": pid, "region": region}).encode() + b"\n")
        self.child.stdin.flush()
        os.set_blocking(self.child.stdin.fileno(), False)     # progress never blocks the region
        os.set_blocking(self.child.stdout.fileno(), False)
        self._problem: str | None = None
        self._next_progress = 0.0

    def progress(self, fields: dict[str, int]) -> None:
        """Progress for the next beat; at most every BEAT_SECONDS, dropped if the pipe is full."""
        now = time.monotonic()
        if now < self._next_progress:
            return
        self._next_progress = now + BEAT_SECONDS
        try:             # a line below PIPE_BUF is written whole or not at all
            os.write(self.child.stdin.fileno(), json.dumps(fields).encode() + b"\n")
        except (BlockingIOError, BrokenPipeError):
            pass

    def problem(self) -> str | None:
        """Why the region cannot go on, or None while it beats: the scheduler
        said the process ended elsewhere (failed, killed), or the child is
        gone (it said why on stderr)."""
        if self._problem is None and not self.child.stdout.closed:
            try:
                said = os.read(self.child.stdout.fileno(), 64)
            except BlockingIOError:
                return None
            self._problem = ("the process ended elsewhere" if b"ended" in said
                             else "its keepalive (pcli/keepalive.py) stopped")
        return self._problem

    def close(self) -> None:
        """Stop beating (the region has its result, or is gone)."""
        try:
            self.child.stdin.close()
        except OSError:
            pass
        try:
            self.child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        self.child.stdout.close()


def beat_until_closed(ctl, user: str, pid: int, region: int) -> None:
    """The child's loop: a beat every BEAT_SECONDS with the latest progress,
    until stdin closes (the client is done or gone) or the process ended."""
    progress: dict[str, int] = {}
    fd, pending, next_beat = sys.stdin.fileno(), b"", time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], max(next_beat - time.monotonic(), 0.0))
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return                                # the client closed it, or died
            *lines, pending = (pending + chunk).split(b"\n")
            if lines:
                progress = json.loads(lines[-1])      # only the latest counts
            continue
        next_beat = time.monotonic() + BEAT_SECONDS
        if _beat(ctl, user, pid, region, progress) == "ended":
            sys.stdout.write("ended\n")
            sys.stdout.flush()
            return


def _beat(ctl, user: str, pid: int, region: int, progress: dict[str, int]) -> str:
    import redis
    try:
        verdict, _ = ctl.app_beat(user, pid, region, **progress)
        return verdict
    except (redis.RedisError, TimeoutError):
        return "ok"                 # Redis restarting, the scheduler slow: the next beat may pass
    except ValueError:
        return "ended"              # refused: the process (or the region) is no longer this user's to run


def main() -> int:
    from broker.control import Control, connect
    setup = json.loads(_first_line(sys.stdin.fileno()))
    ctl = Control(connect(setup["url"], timeout=5.0))
    beat_until_closed(ctl, setup["user"], int(setup["pid"]), int(setup["region"]))
    return 0


def _first_line(fd: int) -> bytes:
    """The setup line, read byte by byte: what follows it stays in the pipe for select()."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            raise SystemExit(0)                       # the client went before saying anything
        line += byte
    return line


if __name__ == "__main__":
    raise SystemExit(main())

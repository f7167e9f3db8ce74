"""What psim is doing, shown on a terminal while it does it: reading the
instance (bytes, devices and edges so far), compiling the handlers, the
run (deliveries, their rate, steps).

`Quiet` is the reporter of every mode that must print nothing (-q, -r,
stderr not a terminal, the psim() API): its phases do nothing (a quiet
run pays one empty call per batch of events).  `Live`
draws the phases on stderr with rich; the drawing is transient: it is gone
when psim prints its result.  The reporter is the only thing here that
knows how a phase looks; run.py and reader.py only say what happened.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

EVERY = 0.1          # seconds between redraws of a phase's figures (rich redraws the screen itself)


class Phase:
    """A phase of the quiet reporter: nothing to show."""

    def block(self, done: int, devices: int, edges: int) -> None:
        """Reading: `done` bytes of the file fed, with the devices and edges read so far."""

    def end(self, detail: str = "") -> None:
        """The phase is over; `detail` says how it went."""


class Running(Phase):
    """The run phase of the quiet reporter."""

    def __call__(self, engine) -> None:
        """The on_batch hook: `engine` has run a batch of events."""


class Quiet:
    """The reporter that says nothing."""

    def phase(self, name: str, size: int | None = None) -> Phase:
        """A phase starts (`size`: the bytes it reads, when known)."""
        return Phase()

    @contextmanager
    def during(self, name: str) -> Iterator[None]:
        """A phase for the time of a `with` block."""
        phase = self.phase(name)
        yield
        phase.end()

    def running(self) -> Running:
        """The run starts: its phase, also the on_batch hook of every engine."""
        return Running()

    def close(self) -> None:
        """Take the display away (before psim prints its result)."""


QUIET = Quiet()


def reporter(on: bool) -> Quiet:
    """A Live reporter on stderr, or QUIET."""
    return Live() if on else QUIET


def wanted(flag: bool | None, quiet_mode: bool) -> bool:
    """Does psim show its progress?  As --progress/--no-progress says
    (`flag`), else when stderr is a terminal and not in a quiet mode (-q,
    -r): stdout stays the result's either way."""
    if flag is not None:
        return flag
    return sys.stderr.isatty() and not quiet_mode


class Live(Quiet):
    """Phases drawn with rich on stderr, one line each, gone when closed."""

    def __init__(self):
        from rich.console import Console          # rich only when shown: a quiet run does not import it
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        console = Console(stderr=True, force_terminal=True)      # --progress asks for it even into a pipe
        # lines printed meanwhile go above the phases when both are the terminal; else stdout keeps them
        one_screen = sys.stdout.isatty() and sys.stderr.isatty()
        self.bar = Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"),
                            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console,
                            transient=True, refresh_per_second=8, redirect_stdout=one_screen,
                            redirect_stderr=one_screen)
        self.bar.start()

    def phase(self, name: str, size: int | None = None) -> Phase:
        return LivePhase(self.bar, name, size)

    def running(self) -> Running:
        return LiveRunning(self.bar)

    def close(self) -> None:
        self.bar.stop()


class LivePhase(Phase):
    def __init__(self, bar, name: str, size: int | None):
        self.bar, self.size = bar, size
        self.task = bar.add_task(name, total=None, detail="")
        self.t0 = self.shown = time.monotonic()

    def block(self, done: int, devices: int, edges: int) -> None:
        now = time.monotonic()
        if now - self.shown < EVERY:
            return
        self.shown = now
        share = f"{100 * done // self.size}%  " if self.size else ""
        self.bar.update(self.task, detail=f"{share}{counted(devices, edges)}  {rate((devices + edges) / (now - self.t0))}")

    def end(self, detail: str = "") -> None:
        self.bar.update(self.task, total=1, completed=1, detail=detail)
        self.bar.stop_task(self.task)


class LiveRunning(LivePhase, Running):
    """The run's line: deliveries, their rate and steps, summed over the
    engines that call it (one, or one per thread: each keeps its own last
    figures, so threads need no lock)."""

    def __init__(self, bar):
        super().__init__(bar, "running", None)
        self.figures: dict[int, tuple[int, int]] = {}

    def __call__(self, engine) -> None:
        o = engine.outcome()
        self.figures[id(engine)] = (o.delivered, o.steps)
        now = time.monotonic()
        if now - self.shown >= EVERY:
            self.shown = now
            self.bar.update(self.task, detail=self.text(now))

    def end(self, detail: str = "") -> None:
        super().end(f"{self.text(time.monotonic())}  ({detail})")

    def text(self, now: float) -> str:
        delivered = sum(d for d, _ in self.figures.values())
        steps = sum(s for _, s in self.figures.values())
        return f"{delivered:,} deliveries  {rate(delivered / max(now - self.t0, 1e-6))}  {steps:,} steps"


def counted(devices: int, edges: int) -> str:
    return f"{plural(devices, 'device')}, {plural(edges, 'edge')}"


def plural(n: int, thing: str) -> str:
    return f"{n:,} {thing}{'' if n == 1 else 's'}"


def count(n: float) -> str:
    """12, 3.4k, 5.6M, 7.8G (pcli's tables too)"""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def rate(per_second: float) -> str:
    return f"{count(per_second)}/s"

"""A run's counters over time, kept small however long the run: the data of
a rate plot (psim --plot, pcli plot; docs/pictures.md).

Points are (seconds, count, ...) tuples, sampled between the engine's
batches (never per message).  While there is room every point is kept;
when `cap` are held, every other one goes and new ones are taken half as
often, so the points stay spread over the whole run, its first among them.
The run's last point is always kept (`last=True`)."""
from __future__ import annotations

import threading
import time

import numpy as np

CAP = 1000                 # points kept at most (one over it for the run's last)
FORMAT = "<f8"             # on Redis: (seconds, count) pairs of little-endian doubles


class Series:
    def __init__(self, cap: int = CAP):
        self.cap = cap
        self.points: list[tuple[float, ...]] = []
        self.spacing = 0.0                     # seconds between kept points, once thinned
        self.sent = 0                          # points handed out by unsent()
        self.thinned = False                   # since the last unsent()

    def add(self, t: float, *counts: float, last: bool = False) -> bool:
        """Record a point at `t` seconds; False when it came too soon after
        the one before to be kept."""
        if self.points and not last and t - self.points[-1][0] < self.spacing:
            return False
        if len(self.points) >= self.cap and not last:
            self.points = self.points[::2]
            self.spacing = (self.points[-1][0] - self.points[0][0]) / len(self.points)
            self.thinned = True
        self.points.append((t, *counts))
        return True

    def unsent(self) -> tuple[bytes, bool]:
        """The points not handed out yet, packed (FORMAT), and whether they
        replace all those handed out before (after a thinning)."""
        whole, self.thinned = self.thinned, False
        start = 0 if whole else self.sent
        self.sent = len(self.points)
        return np.asarray(self.points[start:], dtype=FORMAT).tobytes(), whole

    def columns(self) -> list[list[float]]:
        """The points as columns: [seconds], [first count], ..."""
        return [list(c) for c in zip(*self.points)]


def unpack(data: bytes, width: int = 2) -> np.ndarray:
    """Packed points (Series.unsent) as an (n, width) array."""
    return np.frombuffer(data, FORMAT).reshape(-1, width)


class EngineSampler:
    """psim's on_batch observer: the engine's delivered and sent counts
    after each batch, in seconds since the sampler was made."""

    def __init__(self, cap: int = CAP):
        self.series = Series(cap)
        self.t0 = time.perf_counter()
        self.series.add(0.0, 0, 0)
        self.counts: dict[int, tuple[int, int]] = {}     # by engine: with --threads each thread's calls
        self.lock = threading.Lock()

    def __call__(self, engine) -> None:
        o = engine.outcome()
        with self.lock:
            self.counts[id(engine)] = (o.delivered, o.sends)
            delivered, sends = (sum(c) for c in zip(*self.counts.values()))
            self.series.add(time.perf_counter() - self.t0, delivered, sends)

    def end(self, delivered: int, sends: int, seconds: float) -> None:
        """The run's final counts and its length (from its result: what
        came after the run, such as shaping the result, is not in it)."""
        t, *counts = self.series.points[-1]
        if counts != [delivered, sends]:
            self.series.add(max(t, seconds), delivered, sends, last=True)

    def result(self) -> dict:
        """The series as psim -r carries it."""
        t, delivered, sends = self.series.columns()
        return {"seconds": t, "delivered": [int(d) for d in delivered], "sends": [int(s) for s in sends]}

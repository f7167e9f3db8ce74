"""Smoothed message rates of processes, for top.

A process's delivery counter reaches Redis in steps: its workers write it
every heartbeat (0.5 s, pd/worker.py).  Two looks closer than that often
see the same value, so a rate between consecutive looks drops to 0 and
jumps back.  Here a rate is measured only between looks that saw the
counter move, over the time since it last moved, and smoothed with an
exponential moving average; a counter that stays still for STALL_SECONDS
(several heartbeats) pulls the rate towards 0.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SMOOTHING = 0.4          # the weight of the newest measurement
STALL_SECONDS = 2.0      # four heartbeats without a delivery: none are being made
HISTORY = 240            # rates kept for the sparkline: two minutes at two looks a second


@dataclass
class Meter:
    delivered: int
    changed: float                       # when `delivered` last moved
    rate: float | None = None            # None until there is a measurement
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))

    def look(self, delivered: int, now: float) -> None:
        measured = None
        if delivered < self.delivered:        # counted again from the start: a new baseline
            self.delivered, self.changed = delivered, now
        elif delivered > self.delivered:
            if now > self.changed:
                measured = (delivered - self.delivered) / (now - self.changed)
            self.delivered, self.changed = delivered, now
        elif now - self.changed >= STALL_SECONDS:
            measured = 0.0
        if measured is not None:
            self.rate = measured if self.rate is None else self.rate + SMOOTHING * (measured - self.rate)
        if self.rate is not None:
            self.history.append(self.rate)


class Rates:
    """The meters of the processes in the last look; ended ones are forgotten."""

    def __init__(self) -> None:
        self.meters: dict[int, Meter] = {}

    def look(self, infos: list[dict], now: float) -> None:
        meters = {}
        for info in infos:
            meter = self.meters.get(info["pid"]) or Meter(info["delivered"], now)
            meter.look(info["delivered"], now)
            meters[info["pid"]] = meter
        self.meters = meters

    def rate(self, pid: int) -> float | None:
        meter = self.meters.get(pid)
        return meter.rate if meter else None

    def history(self, pid: int) -> list[float]:
        meter = self.meters.get(pid)
        return list(meter.history) if meter else []

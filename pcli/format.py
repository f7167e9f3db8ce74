"""How processes and engines read: the shell's tables (ps, engines), and the
cells and marks top shares with them (pcli/topscreen.py)."""
from __future__ import annotations

import math
import time

from psim.progress import count

PROCESS_COLUMNS = ("PID", "USER", "PHASE", "REG", "ELAPSED", "GRAPH", "DEVICES", "EDGES", "DELIVERED")
ENGINE_COLUMNS = ("ENGINE", "HOST", "KIND", "SLOTS", "CPU%", "MEM", "BEAT")


def memory(nbytes: float) -> str:
    for unit, size in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f}{unit}"
    return f"{nbytes:.0f}B"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def elapsed(info: dict) -> float | None:
    if not info.get("started"):
        return None
    return (info.get("ended") or time.time()) - info["started"]


def application(info: dict) -> str:
    """A process's graph type once loaded, else the file it came from."""
    return info.get("graph_type") or info.get("app") or "-"


def sized(n: int) -> str:
    """A count of devices or edges: "-" until the application is loaded."""
    return count(n) if n else "-"


def process_row(info: dict) -> tuple[str, ...]:
    return (str(info["pid"]), info["owner"], shown_state(info), str(info["regions"]), duration(elapsed(info)),
            application(info), sized(info["devices"]), sized(info["edges"]), count(info["delivered"]))


def queue_note(info: dict) -> str:
    """Where a waiting process stands: "#2 waiting for engine e2 (not running)";
    "" for a process that is not waiting."""
    if info["state"] != "waiting":
        return ""
    note = f"#{info['position']} {info['reason']}" if info.get("position") else info["reason"]
    if info.get("expected_start"):
        note += time.strftime(", expected by %H:%M:%S", time.localtime(info["expected_start"]))
    return note


def host_memory(e: dict) -> str:
    """An engine's host's memory, used/total."""
    return f"{memory(e['mem'])}/{memory(e['mem_total'])}" if e["mem_total"] else "-"


def beat(e: dict) -> str:
    """The age of an engine's last heartbeat, or "dead"."""
    return f"{e['heartbeat_age']:.1f}s" if e["alive"] else "dead"


def engine_row(e: dict) -> tuple[str, ...]:
    return (e["name"], e["host"], e["kind"], f"{e['used']}/{e['slots']}", f"{e['cpu']:.0f}", host_memory(e), beat(e))


def shown_state(info: dict) -> str:
    """A process's phase where its record has one (loading, running, ...), else its state."""
    return info.get("phase") or info["state"]


def engine_names(regions: dict[int, str], width: int) -> str:
    """The engines running a process's regions, in region order, cut to
    `width` with a count of the rest: "e1,e2", "e1,e2+5"; "-" when unplaced."""
    names = list(dict.fromkeys(n for _, n in sorted(regions.items()) if n))
    shown = ",".join(names)
    if len(shown) <= width:
        return shown or "-"
    for k in range(len(names) - 1, 0, -1):
        shown = f"{','.join(names[:k])}+{len(names) - k}"
        if len(shown) <= width:
            return shown
    return f"{len(names)} engines"[:width]


EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar `width` cells wide, filled to `fraction` (0..1) in eighths of a cell."""
    filled = round(max(0.0, min(1.0, fraction)) * width * 8)
    whole, part = divmod(filled, 8)
    return ("█" * whole + (EIGHTHS[part] if part else "")).ljust(width, "░")


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int) -> str:
    """The last `width` values as block heights scaled to their maximum
    (a zero is a blank), newest on the right."""
    values = values[-width:] if width > 0 else []
    top = max(values, default=0)
    if top <= 0:
        return " " * width
    cells = (" " if v <= 0 else SPARKS[math.ceil(v / top * len(SPARKS)) - 1] for v in values)
    return "".join(cells).rjust(width)

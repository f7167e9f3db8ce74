"""What top shows, as lines of text: engines, processes, a status line and
the keys, from the data of the last look and the view (sort, filter,
selection).  Pure: pcli/top.py draws these lines with curses, --snapshot
renders them to an image, and tests can read them directly.

Columns give way on a narrow screen, those of the highest rank first; the
last process column (the rate history) takes what width is left.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

from .format import (application, bar, beat, count, duration, elapsed, engine_names, host_memory, memory,
                     queue_note, shown_state, sized, sparkline)
from .rates import Rates

Line = tuple[str, str]       # text, style: title, heading, row, selected, note, status, keys
NOTE_INDENT = " " * 6        # a waiting process's note, under its USER column
KEYS = "q quit  ↑↓ select  s/</> sort  r reverse  / filter  u mine  k kill  h help"
HELP = """\
Keys
  ↑ ↓ PgUp PgDn Home End  select a process
  s or >, <               sort by the next / previous column (marked ▲ or ▼)
  r                       reverse the sort
  /                       filter: show the processes whose user, application
                          or phase holds the text typed (Enter applies it,
                          Esc cancels, an empty filter shows all)
  u                       my processes only / everyone's
  k                       kill the selected process (asks first: y or n)
  h or ?                  this help; any key returns
  q                       quit

Engines: SLOTS, the regions it runs of those it may run at once; CPU% and
RSS, its workers' (100 is one core busy); HOST CPU and HOST MEM, its
host's.  Processes: ENGINES run their regions; MSG/S, the messages
delivered per second, smoothed over the last few seconds; HISTORY, MSG/S
over the last minute or two, newest on the right.""".splitlines()


@dataclass
class Proc:
    """A process row: its record (pcli.info) and its measured rates."""
    info: dict
    rate: float | None
    history: list[float]


@dataclass(frozen=True)
class Column:
    name: str
    width: int
    cell: Callable[[object, int], str]      # (row, width) -> text
    rank: int = 0                           # the highest give way first
    right: bool = False
    key: Callable | None = None             # the sort key; None: not sortable
    grows: bool = False                     # takes the width left over


def _info(name: str) -> Callable[[Proc, int], str]:
    return lambda p, w: str(p.info[name])


def _rate(p: Proc) -> str:
    """A running process's messages per second ("-" until measured)."""
    return count(p.rate) if p.rate is not None and p.info["state"] == "running" else "-"


PROCESS_COLUMNS = (
    Column("PID", 5, _info("pid"), key=lambda p: p.info["pid"]),
    Column("USER", 8, _info("owner"), key=lambda p: p.info["owner"]),
    Column("PHASE", 9, lambda p, w: shown_state(p.info), key=lambda p: shown_state(p.info)),
    Column("ENGINES", 10, lambda p, w: engine_names(p.info["engines"], w), rank=1,
           key=lambda p: engine_names(p.info["engines"], 1000)),
    Column("REG", 3, _info("regions"), rank=2, right=True, key=lambda p: p.info["regions"]),
    Column("ELAPSED", 7, lambda p, w: duration(elapsed(p.info)), rank=1, right=True,
           key=lambda p: elapsed(p.info) or -1.0),
    Column("APP", 12, lambda p, w: application(p.info), rank=4, key=lambda p: application(p.info)),
    Column("DEVICES", 7, lambda p, w: sized(p.info["devices"]), rank=5, right=True, key=lambda p: p.info["devices"]),
    Column("EDGES", 7, lambda p, w: sized(p.info["edges"]), rank=5, right=True, key=lambda p: p.info["edges"]),
    Column("DELIVERED", 10, lambda p, w: count(p.info["delivered"]), rank=2, right=True,
           key=lambda p: p.info["delivered"]),
    Column("MSG/S", 7, lambda p, w: _rate(p), right=True, key=lambda p: -1.0 if p.rate is None else p.rate),
    Column("HISTORY", 10, lambda p, w: sparkline(p.history, w), rank=3, grows=True),
)
SORTABLE = [c.name for c in PROCESS_COLUMNS if c.key]


def _slots(e: dict, w: int) -> str:
    used = f"{e['used']}/{e['slots']}"
    return f"{bar(e['used'] / e['slots'] if e['slots'] else 0, w - len(used) - 1)} {used}"


ENGINE_COLUMNS = (
    Column("ENGINE", 10, lambda e, w: e["name"]),
    Column("HOST", 10, lambda e, w: e["host"], rank=2),
    Column("KIND", 4, lambda e, w: e["kind"], rank=4),
    Column("SLOTS", 12, _slots),
    Column("CPU%", 6, lambda e, w: f"{e['workers_cpu']:.0f}", right=True),
    Column("RSS", 7, lambda e, w: memory(e["workers_mem"]), rank=1, right=True),
    Column("HOST CPU", 8, lambda e, w: f"{e['cpu']:.0f}%", rank=3, right=True),
    Column("HOST MEM", 13, lambda e, w: host_memory(e), rank=3, right=True),
    Column("BEAT", 5, lambda e, w: beat(e), rank=1, right=True),
)


@dataclass
class View:
    """How the user looks at the processes; pcli/top.py changes it on keys."""
    sort: str = "PID"
    reverse: bool = False
    filter: str = ""
    mine: str | None = None          # a user: only their processes
    selected: int | None = None      # a pid; None or gone: the first row
    help: bool = False
    typing: str | None = None        # the filter being typed
    confirm: int | None = None       # the pid a kill waits on y/n for
    status: str = ""                 # the outcome of the last action


@dataclass
class Data:
    """What top saw in its last look."""
    engines: list[dict] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)
    rates: Rates = field(default_factory=Rates)
    at: float | None = None          # time.time() of the look; None: none yet
    error: str = ""                  # why the latest look failed


def rows(data: Data, view: View) -> list[Proc]:
    """The processes shown, filtered and sorted as the view says."""
    wanted = view.filter.lower()
    shown = [Proc(i, data.rates.rate(i["pid"]), data.rates.history(i["pid"])) for i in data.infos
             if (view.mine is None or i["owner"] == view.mine)
             and (not wanted or any(wanted in str(v).lower()
                                    for v in (i["owner"], i.get("app"), i.get("graph_type"), shown_state(i))))]
    column = next(c for c in PROCESS_COLUMNS if c.name == view.sort)
    return sorted(shown, key=column.key, reverse=view.reverse)


def selected(shown: list[Proc], view: View) -> int | None:
    pids = [p.info["pid"] for p in shown]
    return view.selected if view.selected in pids else (pids[0] if pids else None)


def fit(columns: tuple[Column, ...], width: int) -> list[Column]:
    """The columns that fit in `width`, the growing one widened to fill it."""
    shown = list(columns)
    while len(shown) > 1 and _width(shown) > width:
        shown.remove(max(reversed(shown), key=lambda c: c.rank))       # of equal ranks, the rightmost
    spare = width - _width(shown)
    return [replace(c, width=c.width + spare) if c.grows and spare > 0 else c for c in shown]


def _width(columns: list[Column]) -> int:
    return sum(c.width for c in columns) + len(columns) - 1


def line(cells: list[str], columns: list[Column]) -> str:
    return " ".join(t[:c.width].rjust(c.width) if c.right else t[:c.width].ljust(c.width)
                    for t, c in zip(cells, columns)).rstrip()


def heading(columns: list[Column], view: View | None = None) -> str:
    """The column names; the sort column's marked ▲ (ascending) or ▼, its name cut to keep the mark."""
    def name(c: Column) -> str:
        if view is None or c.name != view.sort:
            return c.name
        return c.name[:c.width - 1] + ("▼" if view.reverse else "▲")
    return line([name(c) for c in columns], columns)


def title(data: Data, view: View) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(data.at)) if data.at else "--:--:--"
    busy = sum(e["used"] for e in data.engines)
    slots = sum(e["slots"] for e in data.engines)
    running = sum(1 for i in data.infos if i["state"] == "running")
    parts = [f"pstack top {when}", f"engines {len(data.engines)}", f"slots {busy}/{slots}",
             f"running {running}", f"waiting {len(data.infos) - running}"]
    if view.filter:
        parts.append(f"filter '{view.filter}'")
    if view.mine:
        parts.append(f"user {view.mine}")
    return "  ".join(parts)


def status(data: Data, view: View) -> str:
    if view.typing is not None:
        return f"filter: {view.typing}_   (Enter applies, Esc cancels)"
    if view.confirm is not None:
        info = next((i for i in data.infos if i["pid"] == view.confirm), None)     # it may have ended since
        whose = f" ({info['owner']}, {application(info)})" if info else ""
        return f"kill process {view.confirm}{whose}? y/n"
    if data.error:
        seen = time.strftime(" (shown: as of %H:%M:%S)", time.localtime(data.at)) if data.at else ""
        return f"Redis unreachable, retrying: {data.error}{seen}"
    return view.status


def engine_lines(data: Data, width: int, most: int) -> list[Line]:
    columns = fit(ENGINE_COLUMNS, width)
    out = [(heading(columns), "heading")]
    for n, e in enumerate(data.engines):
        if n == most - 1 and len(data.engines) > most:
            out.append((f"... {len(data.engines) - n} more engines", "note"))
            break
        out.append((line([c.cell(e, c.width) for c in columns], columns), "row"))
    return out


def process_lines(data: Data, view: View, width: int, room: int) -> list[Line]:
    """The process heading and as many rows as `room` lines hold, scrolled
    to keep the selected one in sight; a waiting process has a note line."""
    columns = fit(PROCESS_COLUMNS, width)
    shown = rows(data, view)
    chosen = selected(shown, view)
    body: list[Line] = []
    last = 0                                   # the line after the selected row's block
    for p in shown:
        body.append((line([c.cell(p, c.width) for c in columns], columns),
                     "selected" if p.info["pid"] == chosen else "row"))
        if queue_note(p.info):
            body.append((NOTE_INDENT + queue_note(p.info), "note"))
        if p.info["pid"] == chosen:
            last = len(body)
    start = max(0, last - room)
    return [(heading(columns, view), "heading")] + body[start:start + room]


def screen(data: Data, view: View, width: int, height: int) -> list[Line]:
    """Exactly `height` lines, none longer than `width` - 1 (the last cell of
    a terminal is left alone); the status and key lines are always the last."""
    width = max(0, width - 1)
    bottom = [(status(data, view), "status"), (KEYS, "keys")][-height:] if height > 0 else []
    top = [(title(data, view), "title"), ("", "row")]
    if view.help:
        body = [(text, "row") for text in HELP]
    else:
        body = engine_lines(data, width, max(2, (height - 10) // 2)) + [("", "row")]
        body += process_lines(data, view, width, max(0, height - len(top) - len(body) - len(bottom) - 1))
    room = max(0, height - len(bottom))
    out = (top + body)[:room]
    out += [("", "row")] * (room - len(out)) + bottom
    return [(text[:width], style) for text, style in out]

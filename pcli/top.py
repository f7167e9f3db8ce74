"""`top`: a full-screen live view of engines and processes (curses).

Refreshes every 0.5 s; `q` quits.  Fits 80x24: columns are cut to the width,
rows to the height.
"""
from __future__ import annotations

import curses
import time

import redis

from . import api
from .format import ENGINE_COLUMNS, PROCESS_COLUMNS, engine_row, process_row, queue_note, rates

REFRESH_SECONDS = 0.5
ENGINE_WIDTHS = (16, 12, 5, 6, 5, 13, 6)
PROCESS_WIDTHS = (5, 8, 8, 3, 7, 10, 7, 7, 9, 6)     # 79 columns with spaces
NOTE_INDENT = " " * 6                                # a waiting process's note, under its USER column


def line(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    return " ".join(c[:w].ljust(w) if i < len(widths) - 1 else c[:w].rjust(w)
                    for i, (c, w) in enumerate(zip(cells, widths)))


def screen_lines(engines: list[dict], infos: list[dict], speeds: dict[int, float]) -> list[tuple[str, bool]]:
    """The screen as (text, is_heading) lines."""
    busy = sum(e["used"] for e in engines)
    slots = sum(e["slots"] for e in engines)
    running = sum(1 for i in infos if i["state"] == "running")
    out = [(f"pstack top {time.strftime('%H:%M:%S')} | engines {len(engines)}, slots {busy}/{slots} | "
            f"{running} running, {len(infos) - running} waiting | q quits", False), ("", False)]
    out.append((line(ENGINE_COLUMNS, ENGINE_WIDTHS), True))
    out += [(line(engine_row(e), ENGINE_WIDTHS), False) for e in engines]
    out += [("", False), (line(PROCESS_COLUMNS, PROCESS_WIDTHS), True)]
    for i in infos:
        out.append((line(process_row(i, speeds.get(i["pid"])), PROCESS_WIDTHS), False))
        if queue_note(i):
            out.append(((NOTE_INDENT + queue_note(i))[:79], False))
    return out


def draw(win, lines: list[tuple[str, bool]]) -> None:
    height, width = win.getmaxyx()
    win.erase()
    for y, (text, heading) in enumerate(lines[:height]):
        win.addnstr(y, 0, text, width - 1, curses.A_REVERSE if heading else curses.A_NORMAL)
    win.refresh()


def loop(win) -> None:
    curses.curs_set(0)
    win.timeout(int(REFRESH_SECONDS * 1000))
    seen: dict[int, tuple[float, int]] = {}
    while True:
        try:
            engines, infos = api.engines(), api.processes()
            draw(win, screen_lines(engines, infos, rates(seen, infos, time.monotonic())))
        except redis.RedisError as e:
            draw(win, [(f"pstack top - Redis unreachable: {e}", False)])
        key = win.getch()
        if key in (ord("q"), ord("Q")):
            return


def top() -> None:
    curses.wrapper(loop)

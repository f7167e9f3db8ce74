"""Every Redis key pstack uses, in one place.

    pstack:pid                      counter of process ids
    pstack:procs                    zset  pid -> submit time (all processes)
    pstack:queue                    list  waiting pids, first come first served
    pstack:events                   stream of {pid, state, reason} (capped)
    pstack:stats                    hash  counters: stale_jobs, stale_writes (refused by fencing)
    pstack:proc:<pid>               hash  the process record: pid, owner, token (incarnation),
                                          state, reason, nregions, rcon, times, ... (made whole by submit)
    pstack:proc:<pid>:app           the application XML, zlib-compressed
    pstack:proc:<pid>:partition     region of every device (uint16 array, zlib), for regions=N
    pstack:proc:<pid>:regions       hash  region -> engine running it
    pstack:proc:<pid>:results       hash  region -> result JSON
    pstack:proc:<pid>:log           stream of log lines (capped)
    pstack:proc:<pid>:endpoints     hash  region -> ZeroMQ address of its PULL socket
    pstack:proc:<pid>:curve         hash  region -> "curve KEY" or "plain KEY": whether its PULL socket
                                          is a CURVE server, and the region's public key (Z85, 40
                                          characters: its server key, and its client key towards
                                          CURVE peers); written with the endpoint in one MULTI
    pstack:proc:<pid>:claims        hash  region -> engine whose daemon claimed it
    pstack:proc:<pid>:beat:<region> string with a TTL: the region worker's heartbeat
    pstack:engines                  set   registered engine names
    pstack:known                    hash  engine name -> slots, of every engine ever registered
                                          (what a submitted process may ask for)
    pstack:engine:<name>            hash  the engine record
    pstack:engine:<name>:alive      string with a TTL: the heartbeat
    pstack:engine:<name>:jobs       list  "pid region token" assigned, not yet claimed
    pstack:engine:<name>:taken      list  jobs its daemon took (BLMOVE), until it claims them
    pstack:engine:<name>:procs      set   "pid:region" assigned to it (claimed or not)

Lua scripts (broker/scripts.lua) build the same names from the prefix; keep
the two in step.
"""
from __future__ import annotations

PREFIX = "pstack"

PID = f"{PREFIX}:pid"
PROCS = f"{PREFIX}:procs"
QUEUE = f"{PREFIX}:queue"
EVENTS = f"{PREFIX}:events"
STATS = f"{PREFIX}:stats"
ENGINES = f"{PREFIX}:engines"
KNOWN = f"{PREFIX}:known"

STATES = ("waiting", "running", "finished", "failed", "killed")
ENDED = ("finished", "failed", "killed")


def proc(pid: int) -> str:
    return f"{PREFIX}:proc:{pid}"


def proc_app(pid: int) -> str:
    return f"{proc(pid)}:app"


def proc_partition(pid: int) -> str:
    return f"{proc(pid)}:partition"


def proc_regions(pid: int) -> str:
    return f"{proc(pid)}:regions"


def proc_results(pid: int) -> str:
    return f"{proc(pid)}:results"


def proc_log(pid: int) -> str:
    return f"{proc(pid)}:log"


def proc_endpoints(pid: int) -> str:
    return f"{proc(pid)}:endpoints"


def proc_curve(pid: int) -> str:
    return f"{proc(pid)}:curve"


def engine(name: str) -> str:
    return f"{PREFIX}:engine:{name}"


def engine_alive(name: str) -> str:
    return f"{engine(name)}:alive"


def engine_jobs(name: str) -> str:
    return f"{engine(name)}:jobs"


def engine_taken(name: str) -> str:
    return f"{engine(name)}:taken"

"""Every Redis key pstack uses, in one place.

    pstack:pid                      counter of process ids
    pstack:procs                    zset  pid -> pid (all processes, until purged)
    pstack:submitting               zset  pid -> deadline (epoch s): processes their client is still
                                          submitting (partitioning, uploading); failed when it passes
    pstack:ended                    zset  pid -> end time (epoch s) of ended processes: what purge and
                                          the results' expiry (PSTACK_RESULT_TTL) go through
    pstack:queue                    list  waiting pids, first come first served
    pstack:events                   stream of {pid, state, reason} (capped)
    pstack:stats                    hash  counters: stale_jobs, stale_writes (refused by fencing)
    pstack:folder                   str   the head's cluster folder (pstack-cluster start), which
                                          a full disk's reason names (broker/diskfull.py)
    pstack:refusals                 hash  count, at: Redis's refused writes (MISCONF) as the last
                                          reap saw them, and when they last changed (no reaping soon
                                          after a full disk)
    pstack:proc:<pid>               hash  the process record: pid, owner, state, reason, nregions,
                                          rcon, times, ... (made whole by create: a hash without
                                          owner is no process); while submitting: phase
                                          (partitioning | uploading) and lease (s); per region R: phase:R (REGION_PHASES),
                                          delivered:R, dropped:R, worker:R
    pstack:proc:<pid>:regions       hash  region -> engine running it
    pstack:proc:<pid>:claims        hash  region -> engine whose daemon claimed it
    pstack:proc:<pid>:beat:<region> string with a TTL: the region worker's heartbeat
    pstack:users                    hash  user name -> role (user | admin)
    pstack:serving                  hash  "user request-id" -> "host:pid" of the scheduler serving it
                                          now; a mark left by a scheduler that died is refused, not
                                          served again (pd/scheduler.py recover)
    pstack:reaped                   string: when the last reap ran (epoch ms)
    pstack:waiting                  hash  user -> how many of the user's processes wait (created,
                                          not started nor ended): pd/quota.py caps it
    pstack:reap_grace               string with a TTL: no reaping while it lives (after a stall)

(Every key of a process, its record's and these, goes when it is purged or expires:
scripts.lua's purge_process lists them; a new one must be added there.)

A process's private keys, readable by its owner (and engines, admins) only:
    pstack:u:<owner>:p:<pid>:token      string: the process's incarnation token (written by create):
                                        fences workers' writes, marks its data-plane frames
    pstack:u:<owner>:p:<pid>:endpoints  hash  region -> ZeroMQ address of its PULL socket
    pstack:u:<owner>:p:<pid>:curve      hash  region -> "curve KEY" or "plain KEY": whether its PULL
                                        socket is a CURVE server, and the region's public key (Z85, 40
                                        characters: its server key, and its client key towards CURVE
                                        peers); written with the endpoint in one MULTI
    pstack:u:<owner>:p:<pid>:app        the application XML, zlib-compressed
    pstack:u:<owner>:p:<pid>:partition  region of every device (uint16 array, zlib), for regions=N
    pstack:u:<owner>:p:<pid>:instance   the binary instance form (pd/form.py, zlib), for regions=N
    pstack:u:<owner>:p:<pid>:results    hash  region -> result record (pd/results.py)
    pstack:u:<owner>:p:<pid>:log        stream of log lines (capped)
    pstack:u:<owner>:p:<pid>:trace:<region>  list of the region's event trace chunks (psim/trace.py),
                                        for processes run with trace=True; expire after TRACE_TTL
    pstack:u:<owner>:p:<pid>:rate:<region>   string: the region's delivered count over time, (seconds
                                        since the epoch, count) pairs of little-endian doubles, at
                                        most ~1000 (psim/series.py), for pcli plot

A user's inbox, the only keys a user writes (broker/acl.py):
    pstack:u:<user>:in:requests         stream of requests (create, prepare, submit, kill, purge, ...)
                                        for the scheduler
    pstack:u:<user>:in:upload:<id>      an application, partition or instance form being submitted (zlib, 1 h TTL)
    pstack:u:<user>:in:reply:<req id>   list: the scheduler's answer to a request (JSON)

Engines:
    pstack:engines                  set   registered engine names
    pstack:known                    hash  engine name -> slots, of every engine ever registered
                                          (what a submitted process may ask for)
    pstack:engine:<name>            hash  the engine record
    pstack:engine:<name>:alive      string with a TTL: the heartbeat
    pstack:engine:<name>:jobs       list  "pid region token" assigned, not yet claimed (engines' lists
                                          carry tokens: users may not read them, broker/acl.py)
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
FOLDER = f"{PREFIX}:folder"
REFUSALS = f"{PREFIX}:refusals"
ENGINES = f"{PREFIX}:engines"
KNOWN = f"{PREFIX}:known"
USERS = f"{PREFIX}:users"
SERVING = f"{PREFIX}:serving"

SUBMITTING = f"{PREFIX}:submitting"
ENDED_AT = f"{PREFIX}:ended"
REAPED = f"{PREFIX}:reaped"
REAP_GRACE = f"{PREFIX}:reap_grace"
WAITING = f"{PREFIX}:waiting"

STATES = ("waiting", "running", "finished", "failed", "killed")
ENDED = ("finished", "failed", "killed")
# What a process is doing (api.info's "phase"), in order: the client's phases (the record's
# "phase" field), queued, then its regions' (each region's "phase:R", the least advanced
# one's is the process's), then its end state.
CLIENT_PHASES = ("partitioning", "uploading")
REGION_PHASES = ("starting", "loading", "compiling", "running", "collecting", "done")


def proc(pid: int) -> str:
    return f"{PREFIX}:proc:{pid}"


def proc_regions(pid: int) -> str:
    return f"{proc(pid)}:regions"


def user_prefix(user: str) -> str:
    return f"{PREFIX}:u:{user}:"


def private(owner: str, pid: int) -> str:
    """The prefix of a process's private keys."""
    return f"{user_prefix(owner)}p:{pid}"


def proc_app(owner: str, pid: int) -> str:
    return f"{private(owner, pid)}:app"


def proc_partition(owner: str, pid: int) -> str:
    return f"{private(owner, pid)}:partition"


def proc_instance(owner: str, pid: int) -> str:
    """The binary instance form the client sent (pd/form.py), if any."""
    return f"{private(owner, pid)}:instance"


def proc_results(owner: str, pid: int) -> str:
    return f"{private(owner, pid)}:results"


def proc_log(owner: str, pid: int) -> str:
    return f"{private(owner, pid)}:log"


def proc_trace(owner: str, pid: int, region: int) -> str:
    return f"{private(owner, pid)}:trace:{region}"


def proc_rate(owner: str, pid: int, region: int) -> str:
    return f"{private(owner, pid)}:rate:{region}"


def inbox_prefix(user: str) -> str:
    return f"{user_prefix(user)}in:"


def requests(user: str) -> str:
    return f"{inbox_prefix(user)}requests"


def upload(user: str, ident: str) -> str:
    return f"{inbox_prefix(user)}upload:{ident}"


def reply(user: str, request: str) -> str:
    return f"{inbox_prefix(user)}reply:{request}"


def proc_token(owner: str, pid: int) -> str:
    return f"{private(owner, pid)}:token"


def proc_endpoints(owner: str, pid: int) -> str:
    return f"{private(owner, pid)}:endpoints"


def proc_curve(owner: str, pid: int) -> str:
    return f"{private(owner, pid)}:curve"


def engine(name: str) -> str:
    return f"{PREFIX}:engine:{name}"


def engine_alive(name: str) -> str:
    return f"{engine(name)}:alive"


def engine_jobs(name: str) -> str:
    return f"{engine(name)}:jobs"


def engine_taken(name: str) -> str:
    return f"{engine(name)}:taken"

"""Who may do what: pstack's identities and their Redis ACL rules, in one place.

Identities are Redis ACL users (Redis checks every command, and every
command a Lua script makes, against the caller's rules):

    admin           every key and command: manages users, kills any process
    pstack-engine   the daemons (pd) and the scheduler: every pstack key, no
                    server administration
    NAME            a user: reads what everyone may read (the process table,
                    engines, events, the queue), reads its own processes'
                    private keys (application, partition, results, log, and
                    the token, endpoints and keys of its data plane) and
                    writes only its inbox (pstack:u:NAME:in:*): uploads and
                    requests, which the scheduler (pd/scheduler.py) acts on
                    with NAME as the owner

A user never writes a key of a process, its own included: submissions and
kills are requests in its inbox; the scheduler is the only one that turns a
request into a change, and it takes the owner from the inbox the request
came from, which only that user can write.

Without ACLs (a Redis with no users but `default`, e.g. a loopback-only
development cluster), identities are claimed, not proven: the user name is
$PSTACK_USER or the login name, and anyone may act as anyone.  This is the
"open" mode; `pstack-cluster start` makes a secured cluster.
"""
from __future__ import annotations

import getpass
import os
import re
import secrets

import redis

from . import keys

ADMIN = "admin"
ENGINE = "pstack-engine"
OPEN = "default"            # Redis's own user: a server without pstack identities
RESERVED = (ADMIN, ENGINE, OPEN)
ROLES = ("user", "admin")
NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")

# what everyone may read (never a process's private keys: those are under pstack:u:OWNER:)
PUBLIC_KEYS = (keys.PROCS, keys.QUEUE, keys.EVENTS, keys.STATS, keys.ENGINES, keys.KNOWN, keys.FOLDER,
               f"{keys.PREFIX}:proc:*")
USER_READS = ("hgetall", "hget", "hmget", "hexists", "hlen", "hkeys", "zrange", "zcard", "smembers",
              "scard", "sismember", "lrange", "llen", "lindex", "lpos", "get", "exists", "type", "ttl", "pttl",
              "xread", "xrange", "xrevrange", "xlen")
# Engines' keys: everyone may read them but their lists, the jobs assigned and taken, whose
# entries carry processes' tokens (keys.engine_jobs).  A Redis 7 selector: these commands on
# these keys only.
ENGINE_KEYS = f"{keys.PREFIX}:engine:*"
LIST_READS = ("lrange", "llen", "lindex")
USER_WRITES = ("xadd", "set", "del", "unlink", "expire", "blpop", "lpop")
CONNECTION = ("ping", "echo", "hello", "auth", "select", "quit", "reset", "multi", "exec", "discard",
              "watch", "unwatch", "acl|whoami", "client|setname", "client|getname", "client|id")   # redis-py's CLIENT SETINFO may fail: it ignores that


def check_name(name: str) -> str:
    """`name` if it can be a pstack user; ValueError saying why not."""
    if not NAME.match(name or ""):
        raise ValueError(f"bad user name {name!r}: lower-case letters, digits, '_', '.', '-' "
                         "(up to 32, starting with a letter or '_')")
    return name


def user_rules(name: str) -> list[str]:
    """The ACL rules of user `name` (without its password)."""
    own = keys.user_prefix(check_name(name))
    rules = ["resetkeys", "resetchannels", "-@all", f"%R~{own}*", f"~{keys.inbox_prefix(name)}*"]
    rules += [f"%R~{k}" for k in PUBLIC_KEYS]
    rules += [f"+{c}" for c in USER_READS + USER_WRITES]
    engines = " ".join(f"+{c}" for c in USER_READS if c not in LIST_READS)
    return rules + [f"+{c}" for c in CONNECTION] + [f"(%R~{ENGINE_KEYS} -@all {engines})"]


def engine_rules() -> list[str]:
    """The daemons' and scheduler's rules: every pstack key, no server administration."""
    return ["resetkeys", "resetchannels", f"~{keys.PREFIX}:*", "+@all", "-@admin", "-@dangerous", "+info",
            "+acl|whoami"]


def admin_rules() -> list[str]:
    return ["resetkeys", "resetchannels", "~*", "&*", "+@all"]


def set_identity(r: redis.Redis, name: str, rules: list[str], secret: str | None = None) -> str:
    """Create or reset ACL user `name` with `rules` and a new (or the given)
    secret; returns the secret.  The ACL file is saved when the server has one."""
    secret = secret or secrets.token_urlsafe(24)
    r.execute_command("ACL", "SETUSER", name, "reset", "on", f">{secret}", *rules)
    save(r)
    return secret


# Redis's own `default` user: off, so no one can be it (a new connection is
# not authenticated: NOAUTH until AUTH), and it has no password.  Redis 7.0
# replays the append-only file as `default`, so it keeps every right:
# without them a restart drops every MULTI/EXEC in the file (the effects of
# pstack's Lua scripts) with NOPERM.
DEFAULT_RULES = ("off", "resetpass", "~*", "&*", "+@all")


def secure(r: redis.Redis, admin: str | None = None, engine: str | None = None) -> dict[str, str]:
    """Make a Redis a secured pstack cluster: the admin and engine
    identities with these secrets (new ones if None), admin recorded as an
    admin (its requests are served too), anonymous access off.  Returns
    the secrets by name.  `r` must be allowed to manage ACLs."""
    made = {ADMIN: set_identity(r, ADMIN, admin_rules(), admin),
            ENGINE: set_identity(r, ENGINE, engine_rules(), engine)}
    r.execute_command("ACL", "SETUSER", OPEN, "reset", *DEFAULT_RULES)
    renew_user_rules(r)
    save(r)
    r.hset(keys.USERS, ADMIN, "admin")
    return made


def renew_user_rules(r: redis.Redis) -> None:
    """Every existing user's rules as user_rules() says now, its secret
    kept: users added by an older pstack lose what it let them read."""
    for name, role in users(r).items():
        if role == "user" and name not in RESERVED and r.execute_command("ACL", "GETUSER", name) is not None:
            r.execute_command("ACL", "SETUSER", name, "clearselectors", *user_rules(name))


def save(r: redis.Redis) -> None:
    try:
        r.execute_command("ACL", "SAVE")
    except redis.ResponseError as e:
        if "ACL file" not in str(e):              # no aclfile configured: the rules live in memory only
            raise


def add_user(r: redis.Redis, name: str, role: str = "user") -> str:
    """A new user (or a new secret for an existing one); its secret.  Needs
    the admin identity."""
    check_name(name)
    if name in RESERVED:
        raise ValueError(f"{name!r} is reserved for pstack itself")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    rules = admin_rules() if role == "admin" else user_rules(name)
    secret = set_identity(r, name, rules)
    r.hset(keys.USERS, name, role)
    return secret


def del_user(r: redis.Redis, name: str) -> bool:
    """Remove a user (its connections are closed by Redis); False if unknown."""
    if name in RESERVED:
        raise ValueError(f"{name!r} is reserved for pstack itself")
    gone = bool(r.execute_command("ACL", "DELUSER", name))
    save(r)
    return bool(r.hdel(keys.USERS, name)) or gone


def users(r: redis.Redis) -> dict[str, str]:
    """name -> role of every pstack user."""
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.USERS).items()}


def whoami(r: redis.Redis) -> str:
    """The identity this connection acts as: its ACL user, or in open mode
    the claimed name ($PSTACK_USER, else the login name), registered as a
    user on first use."""
    name = r.execute_command("ACL", "WHOAMI")
    name = name.decode() if isinstance(name, bytes) else name
    if name != OPEN:
        return name
    name = check_name(os.environ.get("PSTACK_USER") or getpass.getuser())
    r.hsetnx(keys.USERS, name, "user")
    return name


def may_kill_any(role: str | None, secured: bool, force: bool) -> bool:
    """Whether a user may kill, or purge, processes it does not own
    (everyone may its own): an admin may; in open mode anyone may with
    force, since nothing is proven there anyway."""
    return role == "admin" or (force and not secured)

"""A head cluster's identities (broker/acl.py), as `pstack-cluster` keeps them in DIR.

    users.acl    Redis's ACL file (aclfile in redis.conf): every identity,
                 its rules and a hash of its secret; Redis rewrites it
    admin.url    the admin identity's URL, with its secret (mode 0600)
    engine.url   the engine identity's URL, which the daemons and the
                 scheduler read ($PSTACK_REDIS_FILE; mode 0600)
    redis.url    the cluster's address without any secret: redis://HOST:PORT/0

A user's URL is printed once, by `adduser`, and kept nowhere in DIR: Redis
holds only its hash.
"""
from __future__ import annotations

import hashlib
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import redis

from broker import acl
from broker.credentials import read_url_file, write_private


class IdentityError(Exception):
    """DIR's identities cannot be used; the message says why."""


def acl_path(d: Path) -> Path:
    return d / "users.acl"


def admin_path(d: Path) -> Path:
    return d / "admin.url"


def engine_path(d: Path) -> Path:
    return d / "engine.url"


def public_path(d: Path) -> Path:
    return d / "redis.url"


def with_identity(public: str, name: str, secret: str) -> str:
    """The URL that reaches PUBLIC (redis://HOST:PORT/0) as NAME."""
    parts = urlsplit(public)
    return urlunsplit(parts._replace(netloc=f"{quote(name, safe='')}:{quote(secret, safe='')}@{parts.netloc}"))


def _secret(path: Path) -> str | None:
    """The secret in the URL file PATH, or None if there is no such file."""
    if not path.exists():
        return None
    return urlsplit(read_url_file(path)).password


def prepare(d: Path, public: str) -> None:
    """Before Redis first starts in DIR: an ACL file in which only the admin
    exists and anonymous access is off, so Redis is never open, not even
    for a moment.  Later starts keep the file (and every identity in it)."""
    if acl_path(d).exists():
        if not admin_path(d).exists():
            raise IdentityError(f"{admin_path(d)} is missing, so the identities in {acl_path(d)} cannot be "
                                "managed: restore it, or remove users.acl to make new identities")
        return
    secret = secrets.token_urlsafe(24)
    write_private(admin_path(d), with_identity(public, acl.ADMIN, secret) + "\n")
    digest = hashlib.sha256(secret.encode()).hexdigest()      # the file holds hashes, never secrets
    write_private(acl_path(d), f"user default {' '.join(acl.DEFAULT_RULES)}\n"
                               f"user {acl.ADMIN} on #{digest} {' '.join(acl.admin_rules())}\n")


def establish(d: Path, public: str) -> str:
    """Once Redis runs: the admin's and engine's rules set from broker/acl.py
    (their secrets kept), `default` off, their URL files (re)written for
    PUBLIC's address.  Returns the admin URL."""
    admin = with_identity(public, acl.ADMIN, _secret(admin_path(d)) or "")
    r = redis.Redis.from_url(admin, socket_timeout=5, socket_connect_timeout=5)
    try:
        engine = acl.secure(r, _secret(admin_path(d)), _secret(engine_path(d)))[acl.ENGINE]
    finally:
        r.close()
    write_private(admin_path(d), admin + "\n")
    write_private(engine_path(d), with_identity(public, acl.ENGINE, engine) + "\n")
    public_path(d).write_text(public + "\n")
    return admin


@contextmanager
def as_admin(d: Path) -> Iterator[redis.Redis]:
    """A client acting as DIR's admin, closed after use."""
    if not admin_path(d).exists():
        raise IdentityError(f"{d} has no admin identity ({admin_path(d)} is missing): "
                            "give the folder of a head started with `pstack-cluster start`")
    r = redis.Redis.from_url(read_url_file(admin_path(d)), socket_timeout=5, socket_connect_timeout=5)
    try:
        yield r
    except redis.ConnectionError as e:
        raise IdentityError(f"the cluster's Redis does not answer ({e}): is it running? "
                            f"(pstack-cluster status {d})") from None
    finally:
        r.close()


def public_url(d: Path) -> str:
    """The address DIR's cluster advertises, without any secret."""
    try:
        return public_path(d).read_text().strip()
    except OSError:
        raise IdentityError(f"no cluster was started in {d} ({public_path(d)} is missing)") from None


def add_user(d: Path, name: str, role: str) -> str:
    """A new user (or a new secret for an existing one) of DIR's cluster: its URL."""
    public = public_url(d)
    with as_admin(d) as r:
        return with_identity(public, name, acl.add_user(r, name, role))


def del_user(d: Path, name: str) -> None:
    """Remove user NAME; Redis closes its connections."""
    with as_admin(d) as r:
        if not acl.del_user(r, name):
            raise IdentityError(f"no user {name!r}")


def users(d: Path) -> dict[str, str]:
    with as_admin(d) as r:
        return acl.users(r)


def require_engine(r: redis.Redis) -> None:
    """Refuse a user's URL where engines run: they need the engine identity
    (or admin's, or an open Redis's)."""
    who = r.execute_command("ACL", "WHOAMI")
    who = who.decode() if isinstance(who, bytes) else who
    if who not in (acl.ENGINE, acl.ADMIN, acl.OPEN):
        raise IdentityError(f"this URL is user {who}'s: workers need the engine identity "
                            "(`pstack-cluster url HEADDIR --engine` on the head)")

"""Where a client finds its Redis URL (which holds its identity and secret),
and how a URL is shown without its secret.

The URL is looked up, first found wins, in

    $PSTACK_REDIS            the URL itself
    $PSTACK_REDIS_FILE       a file holding it (the daemons: DIR/engine.url)
    [redis] url              of the configuration file (broker/config.py)
    ~/.config/pstack/redis.url   a user's own file
    redis://localhost:6379/0 a local development Redis

and the password, when the URL holds none, in $PSTACK_PASSWORD, else the
configuration file's [redis] password.

A file may hold the bare URL or the `PSTACK_REDIS=URL` line `pstack-cluster
adduser` prints.  A file that others may read or write is refused: its
secret would be theirs too.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from . import config
from .config import ConfigError as CredentialsError      # one error for every file settings come from

DEFAULT = "redis://localhost:6379/0"
ENV_URL, ENV_FILE = "PSTACK_REDIS", "PSTACK_REDIS_FILE"
USER_FILE = Path("~/.config/pstack/redis.url")
ENV_PASSWORD = "PSTACK_PASSWORD"
VARIABLES = (ENV_URL, ENV_FILE, ENV_PASSWORD, config.ENV_CONFIG)   # where a process may inherit someone's secret from


def redis_url() -> str:
    """The URL to use (see the module's docstring)."""
    return url_and_source()[0]


def url_and_source() -> tuple[str, str]:
    """The URL to use, and where it was found."""
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL], f"${ENV_URL}"
    if os.environ.get(ENV_FILE):
        return read_url_file(Path(os.environ[ENV_FILE])), f"${ENV_FILE}: {os.environ[ENV_FILE]}"
    configured = config.redis_setting("url")
    if configured:
        return configured, f"{config.path()} [redis] url"
    own = USER_FILE.expanduser()
    if own.exists():
        return read_url_file(own), str(own)
    return DEFAULT, "the default"


def redis_password() -> str | None:
    """The password for a URL that holds none (see the module's docstring)."""
    return password_and_source()[0]


def password_and_source() -> tuple[str | None, str]:
    """That password, and where it was found."""
    if os.environ.get(ENV_PASSWORD):
        return os.environ[ENV_PASSWORD], f"${ENV_PASSWORD}"
    configured = config.redis_setting("password")
    return configured, f"{config.path()} [redis] password" if configured else "none"


def given_url() -> str | None:
    """The URL the environment names ($PSTACK_REDIS, $PSTACK_REDIS_FILE), or
    None: for programs that must not fall back on a user's own file or the
    local default (a worker host needs the engine identity)."""
    if os.environ.get(ENV_URL) or os.environ.get(ENV_FILE):
        return redis_url()
    return None


def read_url_file(path: Path) -> str:
    """The URL in PATH, which must be private to its owner."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text()
    except OSError as e:
        raise CredentialsError(f"cannot read the Redis URL from {path}: {e.strerror or e}") from None
    config.refuse_if_shared(path, mode)
    url = text.strip().removeprefix(f"{ENV_URL}=")
    if not url:
        raise CredentialsError(f"{path} is empty: it should hold a redis:// URL")
    return url


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a secret); its mode is
    0600 before any byte is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)            # O_CREAT's mode applies only to a new file
    with os.fdopen(fd, "w") as f:
        f.write(text)


def redact(url: str) -> str:
    """`url` with its password, if any, shown as ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scrub(text: str, url: str) -> str:
    """TEXT with the password of URL masked (an error may quote the URL)."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def refuse_on_command_line(url: str, option: str) -> str:
    """URL, unless it holds a password: a command line is visible to every
    user of the host (ps), so a secret must come from the environment or a
    file instead."""
    if urlsplit(url).password is not None:
        raise CredentialsError(f"{option}: this URL holds a password, which every user of this host could "
                               f"read in the process list; set ${ENV_URL} or put it in a file "
                               f"(${ENV_FILE}, mode 0600) instead")
    return url

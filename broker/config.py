"""pstack's configuration file, and the environment variables and exit
statuses every program's --help lists.

The file is ~/.config/pstack/config.toml, or $PSTACK_CONFIG:

    [redis]
    url = "redis://alice@head:6379/0"    # $PSTACK_REDIS and $PSTACK_REDIS_FILE come first
    password = "..."                     # when the URL holds none; $PSTACK_PASSWORD comes first

    [run]                                # defaults of `pcli run` and pcli.run(); their flags and arguments win
    level = 1
    order = "random"
    seed = 7
    timeout = 60.0
    max_steps = 1000000
    memory_mb = 512
    regions = 2
    trace = false

A file holding a password (here or in the URL) is refused unless only its
owner may read it (mode 0600), as broker/credentials.py refuses URL files.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:                                         # the same parser, before it joined the standard library
    import tomli as tomllib

DEFAULT_PATH = Path("~/.config/pstack/config.toml")
ENV_CONFIG = "PSTACK_CONFIG"
# the keys of each table, and what their values must be
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "redis": {"url": (str,), "password": (str,)},
    "run": {"level": (int,), "order": (str,), "seed": (int,), "timeout": (int, float), "max_steps": (int,),
            "memory_mb": (int,), "regions": (int,), "trace": (bool,)},
}
KINDS = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}

# every variable a user or operator may set (docs/deployment.md's table says more)
ENVIRONMENT = {
    "PSTACK_REDIS": "the Redis URL (with the identity and its secret)",
    "PSTACK_REDIS_FILE": "a file (mode 0600) holding the Redis URL",
    "PSTACK_PASSWORD": "the Redis password, when the URL holds none",
    "PSTACK_CONFIG": f"the configuration file (default {DEFAULT_PATH})",
    "PSTACK_USER": "your user name on an open cluster (default: the login name)",
    "PCLI_HISTORY": "pcli's command history (default ~/.pcli_history)",
    "PCLI_CONTEXT": "where py's variables are kept (default ~/.pcli_context.json)",
    "PSTACK_CACHE": "compiled handlers and instances (default ~/.cache/pstack)",
    "PSTACK_INSTANCE_CACHE": "0: read applications from their XML, not the instance cache",
    "PSTACK_INSTANCE_CACHE_MB": "the instance cache's size (default 4096)",
    "PSTACK_DATA_HOST": "the address other hosts reach this one's regions at",
    "PSTACK_CURVE": "authenticate and encrypt the data plane: on (default) or off (one-user clusters only)",
    "PSTACK_TRACE_MB": "event trace kept per region, in MB (default 256)",
    "PSTACK_RESULT_TTL": "how long the scheduler keeps ended processes (a duration: 7d, 168h; 0: for ever)",
}


class ConfigError(PermissionError):
    """A file settings or credentials come from that cannot be used (this
    one, or broker/credentials.py's URL files: it is their CredentialsError
    too); the message names the file, the line or key, and the fix."""


def path() -> Path:
    return Path(os.environ.get(ENV_CONFIG) or DEFAULT_PATH).expanduser()


def load() -> dict[str, dict]:
    """The configuration file's tables, checked ({} when there is no file)."""
    file = path()
    try:
        text = file.read_text()
        mode = stat.S_IMODE(file.stat().st_mode)
    except FileNotFoundError:
        if os.environ.get(ENV_CONFIG):
            raise ConfigError(f"{file} (${ENV_CONFIG}) does not exist") from None
        return {}
    except OSError as e:
        raise ConfigError(f"cannot read {file}: {e.strerror or e}") from None
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: {e}") from None          # its message ends "(at line L, column C)"
    check(file, tables)
    redis = tables.get("redis", {})
    if "password" in redis or urlsplit(redis.get("url", "")).password is not None:
        refuse_if_shared(file, mode)
    return tables


def check(file: Path, tables: dict) -> None:
    """Every table and key known, every value of its kind."""
    for name, table in tables.items():
        if name not in SCHEMA or not isinstance(table, dict):
            raise ConfigError(f"{file}: unknown table [{name}] (known: {', '.join(SCHEMA)})")
        for key, value in table.items():
            kinds = SCHEMA[name].get(key)
            if kinds is None:
                raise ConfigError(f"{file}: [{name}] {key}: unknown key (known: {', '.join(SCHEMA[name])})")
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ConfigError(f"{file}: [{name}] {key} must be {KINDS[kinds[-1]]}, not {value!r}")


def refuse_if_shared(file: Path, mode: int) -> None:
    """A file holding a secret must be its owner's alone."""
    if mode & 0o077:
        raise ConfigError(f"{file} holds a Redis password but others may read it (mode {mode:04o}): "
                          f"make it private with: chmod 600 {file}")


def redis_setting(key: str) -> str | None:
    """[redis] KEY of the configuration file, or None."""
    return load().get("redis", {}).get(key)


def run_defaults() -> dict:
    """The [run] table: defaults for every run."""
    return dict(load().get("run", {}))


def pstack_version() -> str:
    """The installed pstack's version (a source tree on PYTHONPATH has none)."""
    try:
        return version("pstack")
    except PackageNotFoundError:
        return "(not installed: run from a source tree)"


def describe(parser: argparse.ArgumentParser, exits: dict[str, str], variables: tuple[str, ...]) -> None:
    """Give a program's parser --version and an epilog listing its exit
    statuses and the environment variables it reads."""
    parser.add_argument("--version", action="version", version=f"{parser.prog} {pstack_version()}")
    width = max(len(name) for name in variables)
    lines = ["exit status:", *(f"  {code:<3} {meaning}" for code, meaning in exits.items()), "", "environment:",
             *(f"  {name:<{width}}  {ENVIRONMENT[name]}" for name in variables)]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter      # keeps the lists as they are
    parser.description = textwrap.fill(parser.description or "", 79)    # which it no longer wraps
    parser.epilog = "\n".join(lines)

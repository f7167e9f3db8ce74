"""Where a client finds its Redis URL (which holds its identity and secret),
and how a URL is shown without its secret."""
from __future__ import annotations

import os


def redis_url() -> str:
    """The URL to use: $PSTACK_REDIS, else the local default."""
    return os.environ.get("PSTACK_REDIS", "redis://localhost:6379/0")


def redact(url: str) -> str:
    """`url` without its password."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))

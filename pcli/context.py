"""The py command's persistent context: plain variables (numbers, strings,
lists, dicts of them) kept between sessions in ~/.pcli_context.json.  A
variable whose JSON passes MAX_BYTES is not kept (a whole result with its
states could be hundreds of MB, written after every py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

MAX_BYTES = 1 << 20


def path() -> Path:
    return Path(os.environ.get("PCLI_CONTEXT") or Path.home() / ".pcli_context.json")


def load() -> dict:
    try:
        value = json.loads(path().read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save(variables: dict) -> None:
    kept = {}
    for name, value in variables.items():
        if name.startswith("_"):
            continue
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            continue                 # modules, functions, objects: not kept
        if len(text) <= MAX_BYTES:
            kept[name] = value
    target = path()
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(kept))
    tmp.replace(target)

"""Running a measurement in a fresh process (so that its peak memory and
caches are its own): a bench script calls itself with arguments that make
it print one JSON object."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def run_json(script: str, args: list[str], env: dict | None = None) -> dict:
    """`python script *args` in a fresh process, with `env` added to the
    environment: the JSON it prints.  Its failure ends the benchmark."""
    done = subprocess.run([sys.executable, script, *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)

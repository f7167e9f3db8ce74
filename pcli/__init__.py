"""pcli: the pstack client (Python API; the shell comes later)."""
from .api import Future, block, engines, info, kill, ps, result, run

__all__ = ["run", "block", "ps", "kill", "engines", "info", "result", "Future"]

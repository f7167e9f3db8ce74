"""psim: the standalone graph-schema simulator and pstack's engine core."""
from .errors import BadInput
from .run import psim

__all__ = ["psim", "BadInput"]

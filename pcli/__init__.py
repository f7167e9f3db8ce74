"""pcli: the pstack client: the Python API (pcli.api) and the shell (pcli.shell)."""
from .api import *  # noqa: F401,F403
from .api import __all__  # noqa: F401

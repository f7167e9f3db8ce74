"""pcli: the pstack client: the Python API (pcli.api), push-button tests of
applications (pcli.apptest) and the shell (pcli.shell)."""
from .api import *  # noqa: F401,F403
from .api import __all__ as _api
from .apptest import test
from .debugger import attach as debug

__all__ = [*_api, "test", "debug"]

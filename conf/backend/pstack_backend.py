"""setuptools' build backend, building in a temporary folder: `pip wheel .`
and `pip install .` leave no build/ or *.egg-info in the source tree."""
import os
import tempfile
from contextlib import contextmanager

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F401,F403  (the hooks not wrapped here)


@contextmanager
def _outside():
    with tempfile.TemporaryDirectory(prefix="pstack-build-") as tmp:
        cfg = os.path.join(tmp, "setup.cfg")
        with open(cfg, "w") as f:
            f.write(f"[build]\nbuild_base = {tmp}/build\n[egg_info]\negg_base = {tmp}\n")
        old = os.environ.get("DIST_EXTRA_CONFIG")
        os.environ["DIST_EXTRA_CONFIG"] = cfg
        try:
            yield
        finally:
            os.environ.pop("DIST_EXTRA_CONFIG") if old is None else os.environ.__setitem__("DIST_EXTRA_CONFIG", old)


def _wrapped(hook):
    def outside(*args, **kwargs):
        with _outside():
            return hook(*args, **kwargs)
    outside.__name__ = hook.__name__
    return outside


get_requires_for_build_wheel = _wrapped(build_meta.get_requires_for_build_wheel)
prepare_metadata_for_build_wheel = _wrapped(build_meta.prepare_metadata_for_build_wheel)
build_wheel = _wrapped(build_meta.build_wheel)
get_requires_for_build_sdist = _wrapped(build_meta.get_requires_for_build_sdist)
build_sdist = _wrapped(build_meta.build_sdist)

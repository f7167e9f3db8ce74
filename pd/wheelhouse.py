"""The wheelhouse pstack-deploy installs from: the pstack wheel built from a
source tree, and wheels of every dependency, built here once and cached.

Hosts install from these files alone (`pip install --no-index
--find-links`), so they need no internet access.  See pd/deploy.py.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# What a pstack wheel is built from, relative to a source tree.
SOURCES = ("pyproject.toml", "setup.cfg", "README.md", "conf", "psim", "broker", "pd", "pcli")
KEEP_BUILDS = 3                 # builds of each kind kept in the cache (last used)


class BuildError(Exception):
    """Building a wheel failed; DETAIL holds the end of pip's output."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class Wheelhouse:
    """Wheels to install on each host: pstack's and its dependencies'."""
    wheels: tuple[Path, ...]
    pstack: Path                # the pstack wheel among them
    version: str                # its version: setup.cfg's, plus +src.HASH of the sources
    python: str                 # the interpreter the dependency wheels are for, e.g. cpython-3.11-x86_64


def local_python() -> str:
    v = sys.version_info
    return f"{sys.implementation.name}-{v.major}.{v.minor}-{platform.machine()}"


def _source_files(source: Path) -> list[Path]:
    """The files of SOURCE that go into the wheel, relative, sorted."""
    files = []
    for top in SOURCES:
        path = source / top
        if not path.exists():
            raise BuildError(f"{source} is not a pstack source tree ({top} is missing)")
        for p in ([path] if path.is_file() else path.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc" \
                    and not any(part.endswith(".egg-info") for part in p.parts):
                files.append(p.relative_to(source))
    return sorted(files)


def _digest(chunks: list[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "little") + chunk)
    return h.hexdigest()


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (pip exit {proc.returncode})",
                          "\n".join((proc.stderr or proc.stdout).rstrip().splitlines()[-15:]))


def _cached(dest: Path, build) -> Path:
    """DEST, made by BUILD(tmpdir) unless it exists; published atomically, so
    a concurrent run never sees half a wheelhouse."""
    if not dest.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
        try:
            build(tmp)
            try:
                tmp.rename(dest)
            except OSError:
                if not dest.is_dir():   # else another run published it first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    os.utime(dest)                      # pruning keeps the recently used
    return dest


def _prune(cache: Path, prefix: str, keep: int) -> None:
    builds = sorted(cache.glob(prefix + "*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def build_wheelhouse(source: Path, cache: Path) -> Wheelhouse:
    """The pstack wheel built from SOURCE and wheels of all its dependencies
    for this interpreter, cached in CACHE.

    The wheel is built from a copy of SOURCE, so the tree gains no build/ or
    *.egg-info.  Its version gets a local label from a hash of the sources
    (0.1.0+src.1a2b3c4d5e), so any change is a new version that pip installs
    over the old one, and the installed version says which sources it is.
    The dependency wheels are cached separately, keyed by the requirements
    and the interpreter, so a source change rebuilds only pstack's wheel.
    """
    source = source.resolve()
    files = _source_files(source)
    digest = _digest([str(f).encode() + b"\0" + (source / f).read_bytes() for f in files])
    cfg = configparser.ConfigParser()
    cfg.read(source / "setup.cfg")
    base = cfg["metadata"]["version"]
    version = f"{base}{'.' if '+' in base else '+'}src.{digest[:10]}"
    requires = [r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()]
    cache.mkdir(parents=True, exist_ok=True)

    def build_pstack(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="pstack-src-") as tmp:
            copy = Path(tmp)
            for f in files:
                (copy / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / f, copy / f)
            setup = copy / "setup.cfg"
            setup.write_text(re.sub(r"(?m)^version\s*=.*$", f"version = {version}",
                                    setup.read_text(), count=1))
            _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(copy)],
                 f"building the pstack wheel from {source}")

    def build_deps(out: Path) -> None:
        _pip(["wheel", "--quiet", "--wheel-dir", str(out), *requires],
             "building the dependency wheels")

    pstack_dir = _cached(cache / f"pstack-{digest[:16]}", build_pstack)
    deps_key = _digest([r.encode() for r in requires])[:16]
    deps_dir = _cached(cache / f"deps-{local_python()}-{deps_key}", build_deps)
    _prune(cache, "pstack-", KEEP_BUILDS)
    _prune(cache, "deps-", KEEP_BUILDS)
    (wheel,) = pstack_dir.glob("pstack-*.whl")
    deps = [w for w in deps_dir.glob("*.whl") if not w.name.startswith("pstack-")]
    return Wheelhouse(tuple(sorted([wheel, *deps])), wheel, version, local_python())


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pstack" / "wheelhouse"

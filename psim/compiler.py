"""A graph type to its compiled module, with g++'s errors mapped to the XML."""
from __future__ import annotations

import re

from . import build
from .codegen import LINE_FILE, Block, generate
from .errors import BadInput
from .model import GraphType

API = (build.CORE / "api.h").read_text()
_DIAG = re.compile(rf"^{re.escape(LINE_FILE)}:(\d+):(?:(\d+):)?\s*(error|fatal error|note|warning):\s*(.*)$")
MAX_ERRORS = 8


def compile_graph(g: GraphType, watchers: bool = False):
    """(module, compile seconds); raises BadInput when a handler does not
    compile.  watchers: with the event loop a debugger or a trace watches
    (core/debug.hpp, trace.hpp); without, the module has only the plain
    loop and compiles in half the time."""
    source, blocks = generate(g)
    if not watchers:
        source = "#define PE_NO_WATCHERS\n" + source
    try:
        return build.load("g", source, API)
    except build.CompileError as e:
        raise BadInput(_explain(e.output, g, blocks), g.file) from None


def _explain(output: str, g: GraphType, blocks: list[Block]) -> str:
    errors = []
    for line in output.splitlines():
        m = _DIAG.match(line)
        if not m or m.group(3) not in ("error", "fatal error"):
            continue
        rel = int(m.group(1))
        where = next((b.what for b in blocks if b.first <= rel <= b.last), "generated code")
        errors.append(f"{g.file}:{g.line + rel - 1}: error in {where}: {m.group(4)}")
    if not errors:     # an error outside application code: show g++ as it is
        return "handlers do not compile:\n" + "\n".join(output.splitlines()[:40])
    more = f"\n({len(errors) - MAX_ERRORS} more errors)" if len(errors) > MAX_ERRORS else ""
    return "handlers do not compile:\n" + "\n".join(errors[:MAX_ERRORS]) + more

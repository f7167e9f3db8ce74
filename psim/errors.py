"""Errors a user can cause, reported as one clear line, never a traceback."""
from __future__ import annotations


class BadInput(Exception):
    """The application file is wrong: malformed XML, unknown names, bad values,
    handlers that do not compile.  The message names the file and line."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.file = file
        self.line = line
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}: {self.detail}"
        if self.file:
            return f"{self.file}: {self.detail}"
        return self.detail

    def located(self, file: str | None = None, line: int | None = None) -> "BadInput":
        """Fill in a location known only to a caller higher up."""
        return BadInput(self.detail, self.file or file, self.line or line)


class Unsupported(BadInput):
    """A feature of graph-schema that pstack does not run (yet)."""

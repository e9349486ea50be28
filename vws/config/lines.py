"""Find the line each key of a TOML document stands on.

tomllib gives values but no positions, and msgspec reports a failing key path but no line, so
this scanner walks the text once and records, for every key path it meets (table headers, keys,
dotted keys, keys inside inline tables), the line where it is written. It never validates: the
document has already been parsed by tomllib when this runs.

It also records where each table and each top-level assignment starts and ends
(:func:`entries`), which is what lets ``vws add-event`` and friends change one entry of a
routes.toml and leave every other line exactly as the user wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KeyPath = tuple[str, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


@dataclass(frozen=True, slots=True)
class Entry:
    """A table header or an assignment, with the 1-based lines it spans.

    A table's span runs from its header to the line before the next header (or the end). An
    assignment inside an inline table has ``inline`` set: it cannot be edited on its own.
    """

    kind: Literal["table", "key"]
    path: KeyPath
    start: int
    end: int
    inline: bool = False


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.entries: list[Entry] = []
        self._inline_depth = 0

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.text[j] if j < len(self.text) else ""

    def advance(self, k: int = 1) -> None:
        self.line += self.text.count("\n", self.i, self.i + k)
        self.i += k

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces, tabs and comments, and newlines when ``newlines`` is true."""
        while self.i < len(self.text):
            c = self.text[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            else:
                return

    def string(self) -> str:
        """Read one string of any of TOML's four kinds and return its (unescaped) value."""
        quote = self.peek()
        if self.text.startswith(quote * 3, self.i):
            end = self.i + 3
            while end < len(self.text) and not self.text.startswith(quote * 3, end):
                # in a basic string a backslash escapes the next character, quotes included
                end += 2 if quote == '"' and self.text[end] == "\\" else 1
            while self.text.startswith(quote, end + 3):  # up to two quotes may close the body
                end += 1
            value = self.text[self.i + 3 : end]
            self.advance(end + 3 - self.i)
            return value
        self.advance()
        out: list[str] = []
        while self.i < len(self.text) and self.peek() not in (quote, "\n"):
            c = self.peek()
            if c == "\\" and quote == '"':
                nxt = self.peek(1)
                if nxt in _ESCAPES:
                    out.append(_ESCAPES[nxt])
                    self.advance(2)
                    continue
                width = {"u": 4, "U": 8}.get(nxt)
                if width:
                    out.append(chr(int(self.text[self.i + 2 : self.i + 2 + width], 16)))
                    self.advance(2 + width)
                    continue
            out.append(c)
            self.advance()
        self.advance()
        return "".join(out)

    def key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            c = self.peek()
            if c in ('"', "'"):
                parts.append(self.string())
            else:
                start = self.i
                while self.peek() and self.peek() in _BARE:
                    self.advance()
                parts.append(self.text[start : self.i])
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return tuple(parts)
            self.advance()

    def value(self, path: KeyPath) -> None:
        """Skip one value, recording the keys of any inline table inside it."""
        self.skip_blank(newlines=False)
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.advance()
            index = 0
            while True:
                self.skip_blank(newlines=True)
                if self.peek() in ("]", ""):
                    self.advance()
                    return
                if self.peek() == ",":
                    self.advance()
                    index += 1
                    continue
                self.lines.setdefault((*path, str(index)), self.line)
                self.value((*path, str(index)))
        elif c == "{":
            self.advance()
            self._inline_depth += 1
            while True:
                self.skip_blank(newlines=True)
                if self.peek() in ("}", ""):
                    self.advance()
                    self._inline_depth -= 1
                    return
                if self.peek() == ",":
                    self.advance()
                    continue
                self.assignment(path)
        else:
            while self.peek() and self.peek() not in ",]}\n#":
                self.advance()

    def assignment(self, table: KeyPath) -> None:
        line = self.line
        key = self.key()
        for depth in range(1, len(key) + 1):
            self.lines.setdefault((*table, *key[:depth]), line)
        self.skip_blank(newlines=False)
        if self.peek() == "=":
            self.advance()
        self.value((*table, *key))
        inline = self._inline_depth > 0
        self.entries.append(Entry("key", (*table, *key), line, self.line, inline))

    def document(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        header: Entry | None = None
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(self.text):
                self._close(header, self.text.count("\n") + (0 if self.text.endswith("\n") else 1))
                return self.lines
            if self.peek() == "[":
                double = self.peek(1) == "["
                self.advance(2 if double else 1)
                line = self.line
                self._close(header, line - 1)
                table = self.key()
                self.advance(2 if double else 1)
                header = Entry("table", table, line, line)
                for depth in range(1, len(table) + 1):
                    self.lines.setdefault(table[:depth], line)
            else:
                self.assignment(table)

    def _close(self, header: Entry | None, end: int) -> None:
        if header is not None:
            self.entries.append(Entry("table", header.path, header.start, max(end, header.start)))


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path written in ``text`` to the 1-based line it first appears on."""
    return _Scanner(text).document()


def entries(text: str) -> list[Entry]:
    """Every table and assignment of ``text`` with its span, in no particular order."""
    scanner = _Scanner(text)
    scanner.document()
    return scanner.entries


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """The line of ``path``, or of its longest written prefix (1 when nothing matches)."""
    for depth in range(len(path), 0, -1):
        found = lines.get(path[:depth])
        if found is not None:
            return found
    return 1

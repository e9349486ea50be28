"""Change one route or event of a routes.toml and leave every other line as the user wrote it.

Each function takes the file's text and returns the edited text; it never writes. New entries
are rendered with tomli-w (so keys and strings are quoted correctly) and placed beside the
route they belong to; removed entries take exactly their own lines with them. Comments,
ordering and formatting elsewhere are untouched. The caller validates the result like any
routes.toml before writing it.
"""

from __future__ import annotations

import tomllib
from typing import Any

import tomli_w

from vws.config.lines import Entry, KeyPath, entries


class EditError(Exception):
    """The edit cannot be made; the message says why."""


def _routes(text: str) -> dict[str, Any]:
    try:
        routes = tomllib.loads(text).get("routes", {})
    except tomllib.TOMLDecodeError as exc:
        raise EditError(f"the file is not valid TOML: {exc}") from None
    return routes if isinstance(routes, dict) else {}


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _under(entry: Entry, prefix: KeyPath) -> bool:
    return entry.path[: len(prefix)] == prefix


def _last_content_line(lines: list[str], start: int, end: int) -> int:
    """The last line in ``start..end`` (1-based) that is neither blank nor a comment."""
    for number in range(end, start - 1, -1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return start


def _insert_block(lines: list[str], after: int, block: str) -> list[str]:
    """Insert ``block`` (whole lines) after line ``after``, separated by one blank line."""
    before = lines[:after]
    rest = lines[after:]
    if before and before[-1].strip():
        block = "\n" + block
    if rest and rest[0].strip():
        block += "\n"
    return [*before, block, *rest]


def _route_end(text: str, lines: list[str], path: str) -> int:
    """The last content line of the route's own tables (0 when it has none)."""
    prefix = ("routes", path)
    tables = [e for e in entries(text) if e.kind == "table" and _under(e, prefix)]
    if not tables:
        return 0
    last = max(tables, key=lambda e: e.start)
    return _last_content_line(lines, last.start, last.end)


def add_route(text: str, path: str) -> str:
    """Add an empty ``[routes."PATH"]`` table at the end of the file."""
    if not path.startswith("/"):
        raise EditError("a route path must start with '/'")
    if path in _routes(text):
        raise EditError(f"route {path} exists already")
    lines = _lines(text)
    block = tomli_w.dumps({"routes": {path: {}}})
    return "".join(_insert_block(lines, len(lines), block))


def add_event(text: str, path: str, event: str, handler: str, schema: str | None = None) -> str:
    """Add an event to a route: the short form, or the long form when there is a schema."""
    routes = _routes(text)
    if path not in routes:
        raise EditError(f"no route {path}: add it first with `vws add-route {path}`")
    events = routes[path].get("events", {}) if isinstance(routes[path], dict) else {}
    if event in events:
        raise EditError(f"route {path} already has an event {event!r}")
    lines = _lines(text)
    table_path = ("routes", path, "events")
    if schema is None:
        table = next((e for e in entries(text) if e.kind == "table" and e.path == table_path), None)
        if table is not None:
            after = _last_content_line(lines, table.start, table.end)
            line = tomli_w.dumps({event: handler})
            return "".join([*lines[:after], line, *lines[after:]])
        block = tomli_w.dumps({"routes": {path: {"events": {event: handler}}}})
    else:
        long_form = {"handler": handler, "schema": schema}
        block = tomli_w.dumps({"routes": {path: {"events": {event: long_form}}}})
    after = _route_end(text, lines, path) or len(lines)
    return "".join(_insert_block(lines, after, block))


def _remove_spans(lines: list[str], spans: list[tuple[int, int]]) -> str:
    keep = list(lines)
    for start, end in sorted(spans, reverse=True):
        del keep[start - 1 : end]
        # do not leave two blank lines where the entry stood
        if 1 < start <= len(keep) and not keep[start - 2].strip() and not keep[start - 1].strip():
            del keep[start - 1]
    while keep and not keep[-1].strip():
        keep.pop()
    return "".join(keep)


def _table_span(lines: list[str], table: Entry) -> tuple[int, int]:
    """A table's lines, with the comment lines written right above its header."""
    start = table.start
    while start > 1 and lines[start - 2].lstrip().startswith("#"):
        start -= 1
    return start, _last_content_line(lines, table.start, table.end)


def remove_event(text: str, path: str, event: str) -> str:
    """Remove an event (either form) from a route."""
    routes = _routes(text)
    events = routes.get(path, {}).get("events", {}) if isinstance(routes.get(path), dict) else {}
    if path not in routes:
        raise EditError(f"no route {path}")
    if event not in events:
        raise EditError(f"route {path} has no event {event!r}")
    lines = _lines(text)
    target = ("routes", path, "events", event)
    found = [e for e in entries(text) if e.path == target]
    if any(e.inline for e in found) or not found:
        raise EditError(f"{path} {event} is written inside an inline table: edit it by hand")
    spans = [
        _table_span(lines, e) if e.kind == "table" else (e.start, e.end)
        for e in entries(text)
        if _under(e, target) and not e.inline and (e.kind == "table" or e.path == target)
    ]
    return _remove_spans(lines, spans)


def remove_route(text: str, path: str) -> str:
    """Remove a route: every table of it and every assignment that defines part of it."""
    if path not in _routes(text):
        raise EditError(f"no route {path}")
    lines = _lines(text)
    prefix = ("routes", path)
    spans: list[tuple[int, int]] = []
    for entry in entries(text):
        if not _under(entry, prefix) or entry.inline:
            continue
        if entry.kind == "table":
            spans.append(_table_span(lines, entry))
        elif not any(
            t.kind == "table" and _under(t, prefix) and t.start <= entry.start <= t.end
            for t in entries(text)
        ):
            spans.append((entry.start, entry.end))
    return _remove_spans(lines, spans)

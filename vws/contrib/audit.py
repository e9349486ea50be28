"""An audit trail: one JSON line per connect, disconnect, join, leave and refusal.

Lines go to ``file`` (appended, one write per line) or to stderr. They carry who and what —
time, event, client id, path, room, close or error code, the refusal's reason, and optionally
an identity from ``client.state`` — and never a payload, a header, a query string or a token.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal
from weakref import WeakKeyDictionary

import msgspec

from vws import Client, hookimpl

if TYPE_CHECKING:
    from vws.runtime.node import Server

logger = logging.getLogger("vws.contrib.audit")

Event = Literal["connect", "disconnect", "join", "leave", "refused"]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.settings.audit]``."""

    #: Where lines are appended; empty for stderr. Relative to the folder vws runs in.
    file: str = ""
    #: Which events are written.
    events: tuple[Event, ...] = ("connect", "disconnect", "join", "leave", "refused")
    #: A dotted path into ``client.state`` written as ``user``; empty writes ``client.user``
    #: (what middleware or the auth plugin set), when there is one.
    identity: str = ""


class Sink:
    """One server's audit output."""

    def __init__(self, settings: Settings) -> None:
        self.file = settings.file
        self.stream: IO[str] = (
            open(settings.file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - kept open
            if settings.file
            else sys.stderr
        )

    def write(self, line: dict[str, Any]) -> None:
        self.stream.write(msgspec.json.encode(line).decode() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not sys.stderr:
            self.stream.close()


_sinks: WeakKeyDictionary[Server, Sink] = WeakKeyDictionary()


def _sink(server: Server, settings: Settings) -> Sink:
    sink = _sinks.get(server)
    if sink is None or sink.file != settings.file:
        if sink is not None:
            sink.close()
        sink = _sinks[server] = Sink(settings)
    return sink


def _identity(client: Client, dotted: str) -> Any:
    value: Any = client.state
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value if isinstance(value, str | int | float | bool) else None


def _write(event: Event, client: Client, settings: Settings, **fields: Any) -> None:
    if event not in settings.events:
        return
    line: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": event,
        "client_id": client.client_id,
        "path": client.path,
    }
    if settings.identity:
        line["user"] = _identity(client, settings.identity)
    elif client.user is not None:
        line["user"] = client.user
    line.update(fields)
    _sink(client.server, settings).write(line)


@hookimpl
def vws_startup(server: Server, settings: Settings) -> None:
    _sink(server, settings)  # a file that cannot be opened stops the start, not a later event


@hookimpl
def vws_shutdown(server: Server) -> None:
    sink = _sinks.pop(server, None)
    if sink is not None:
        sink.close()


@hookimpl(trylast=True)
def vws_connect(client: Client, settings: Settings) -> None:
    """Runs after every other plugin's vws_connect, so a connect written here was accepted."""
    try:
        _write("connect", client, settings)
    except OSError:  # an audit sink that fails must not refuse the client, as this hook could
        logger.exception("audit: cannot write the connect of %s", client.client_id)


@hookimpl
def vws_disconnect(client: Client, code: int, settings: Settings) -> None:
    _write("disconnect", client, settings, code=code)


@hookimpl
def vws_joined_room(client: Client, room: str, settings: Settings) -> None:
    _write("join", client, settings, room=room)


@hookimpl
def vws_left_room(client: Client, room: str, reason: str, settings: Settings) -> None:
    _write("leave", client, settings, room=room, reason=reason)


@hookimpl
def vws_refused(
    client: Client, action: str, target: str, code: int | str, reason: str, settings: Settings
) -> None:
    fields: dict[str, Any] = {"action": action, "code": code, "reason": reason}
    if action in ("join", "leave"):
        fields["room"] = target
    elif action == "message":
        fields["frame_event"] = target  # the refused frame's event (the line's event is "refused")
    _write("refused", client, settings, **fields)

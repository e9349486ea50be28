"""The exceptions vws raises and the ones it lets handlers and plugins raise.

They live in one module so a user can find every failure vws speaks of in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

#: What user code (a handler, middleware, a hook, a module being imported) may raise that vws
#: answers, logs or refuses rather than dies of. ``SystemExit`` (``sys.exit("missing env
#: var")``) and ``KeyboardInterrupt`` are not ``Exception``s, and letting them through would
#: take the connection, or the whole server, down with them.
USER_CODE_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit, KeyboardInterrupt)


class Deny(Exception):
    """Refuse what is being attempted, with a reason the client is told.

    Raised by middleware or ``vws_connect`` it refuses the connection: the socket is accepted
    and closed with ``code`` (4401 "not authenticated" by default, 4403 "not allowed").
    Raised by ``vws_join_room`` it refuses the join (``join_denied``); raised by
    ``vws_message`` or a handler it refuses that frame (``denied``). The connection stays open
    except at connect.
    """

    error_code = "denied"

    def __init__(self, reason: str = "denied", code: int = 4401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class RateLimited(Deny):
    """Refuse a frame because its sender is over a rate limit (error code ``rate_limited``)."""

    error_code = "rate_limited"

    def __init__(self, reason: str = "rate limit exceeded") -> None:
        super().__init__(reason, code=1008)


class PluginError(Exception):
    """A plugin's hook raised something other than :class:`Deny`; the original is the cause."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} raised in {hook}: {type(error).__name__}: {error}")
        self.plugin = plugin
        self.hook = hook


class ProtocolError(Exception):
    """A client frame broke the wire protocol; becomes an ``error`` frame, never a close."""

    def __init__(self, code: str, message: str, frame_id: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: The offending frame's ``id``, echoed in the error frame so a client can match it.
        self.frame_id = frame_id


class SettingsError(Exception):
    """Raised by a plugin's ``Settings.__post_init__``: the setting ``key`` is wrong, and why.

    vws reports it at that key's line in ``[plugins.settings.NAME]``
    (``routes.toml:6: plugins.settings.moderation.words: at least one word``), as it does for a
    setting of the wrong type. ``key`` is the setting's name, or a dotted path into a nested
    table (``"limits.burst"``). It is not a ValueError on purpose: msgspec turns a ValueError
    (or TypeError) raised in ``__post_init__`` into an error of the whole table, and lets this
    one through to vws with its key.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class UnresolvedReference(Exception):
    """A ``"module:attribute"`` reference that does not import; the message says why."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One located problem in a routes.toml, printed as ``FILE:LINE: KEY.PATH: message``."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        where = f" {self.key}:" if self.key else ""
        return f"{place}:{where} {self.message}"


class ConfigError(Exception):
    """routes.toml could not be used; ``issues`` holds every located problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = issues


class FanoutLimit(Exception):
    """A handler call sent more frames than ``[server] max_fanout`` allows (counting every
    receiver): the send that went past it is not delivered, and the frame is answered
    ``handler_error``. It guards against one small frame turning into millions."""

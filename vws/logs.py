"""Structured one-line logs: ``vws run --log-format text`` (the default) or ``json``.

vws logs what an operator follows — connects, disconnects with their close code, refusals,
reloads, handler errors with their traceback — as an event name plus fields::

    2026-11-26T23:14:54.120Z INFO vws.runtime.connection connect client=Xy3... path=/ws
    {"time": "2026-11-26T23:14:54.120Z", "level": "info", "logger": "vws.runtime.connection",
     "event": "connect", "client": "Xy3...", "path": "/ws"}

(the JSON is one line). Payloads, headers and tokens are never logged, and query strings in
uvicorn's lines (``GET /ws?token=...``) have their values replaced by ``…``, so a token passed
in the URL does not end up in the logs.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

Format = Literal["text", "json"]
FORMATS: tuple[Format, ...] = ("text", "json")

#: A query parameter's value inside a logged URL.
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"']*)=([^&\s\"']*)")
_encoder = msgspec.json.Encoder()


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log the event ``name`` with ``fields`` (never a payload or a token).

    ``exc_info=True`` among the fields attaches the current exception's traceback.
    """
    if logger.isEnabledFor(level):
        exc_info = fields.pop("exc_info", None)
        logger.log(level, name, exc_info=exc_info, extra={"vws_fields": fields})


def plugin_failed(
    logger: logging.Logger,
    plugin: str,
    hook: str,
    message: str,
    *,
    exc_info: BaseException | bool = True,
    traceback: Literal["always", "debug"] = "always",
    **fields: Any,
) -> None:
    """Log at ERROR that ``plugin`` failed in ``hook``, with both as fields of the line.

    An operator filters JSON logs by field (``plugin == "auth"``), not by parsing the message.
    ``hook`` is the hook's name, or what vws was doing with the plugin (``"import"``).

    Args:
        exc_info: the exception, or True for the one being handled; its traceback is attached.
        traceback: ``"debug"`` attaches the traceback only when ``logger`` logs at debug, for a
            failure whose one line says all an operator needs (``--log-level debug`` shows more).
        fields: more fields of the line (``distribution``, ``version``).
    """
    attach = traceback == "always" or logger.isEnabledFor(logging.DEBUG)
    event(
        logger,
        message,
        logging.ERROR,
        plugin=plugin,
        hook=hook,
        **fields,
        exc_info=exc_info if attach else None,
    )


def debug_traceback(
    logger: logging.Logger, message: str, error: BaseException, **fields: Any
) -> None:
    """Log ``message`` with ``error``'s traceback at DEBUG, and nothing at any other level.

    For a failure already told in one line elsewhere (a config error printed by the CLI,
    uvicorn's "vws cannot start: ..."): ``--log-level debug`` adds where it came from.
    """
    event(logger, message, logging.DEBUG, exc_info=error, **fields)


def redact_query(text: str) -> str:
    """``/ws?token=abc&room=x`` → ``/ws?token=…&room=…``."""
    return _QUERY_VALUE.sub(r"\1=…", text) if "?" in text else text


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _message(record: logging.LogRecord) -> str:
    message = record.getMessage()
    return redact_query(message) if record.name.startswith("uvicorn") else message


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\n``, ``\\xa0``).

    A client chooses much of what is logged (its path, its Origin, its Host); a newline or a
    run of no-break spaces in it must not forge a line of its own in a text log.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER message key=value ...``; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_time(record), record.levelname, record.name, printable(_message(record))]
        for key, value in getattr(record, "vws_fields", {}).items():
            text = str(value)
            plain = text and " " not in text and text.isprintable()
            parts.append(f"{key}={text if plain else repr(text)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the traceback, if any, is the ``traceback`` field."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        structured = getattr(record, "vws_fields", None)
        if structured is not None:
            fields["event"] = record.getMessage()
            for key, value in structured.items():
                fields[f"field_{key}" if key in fields else key] = value
        else:
            fields["message"] = _message(record)
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return _encoder.encode(fields).decode()


def _not_wire_debug(record: logging.LogRecord) -> bool:
    """Drop websockets' debug lines of the wire: ``< GET /ws?token=... HTTP/1.1``, each
    handshake header (``< Authorization: Bearer ...``) and each frame with its payload. uvicorn
    hands websockets its own ``uvicorn.error`` logger, so ``--log-level debug`` under uvicorn's
    WebSocket implementations (an embedded vws, the bench's targets) would print them all."""
    if record.levelno != logging.DEBUG:
        return True
    message = record.msg
    return not (isinstance(message, str) and message.startswith(("< ", "> ")))


def formatter(log_format: Format) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_format: Format = "text", level: str = "info") -> dict[str, Any]:
    """Send vws's, uvicorn's and Litestar's logs to stderr in ``log_format``, at ``level``.

    Returns:
        The ``logging.config.dictConfig`` dictionary to hand uvicorn as ``log_config``, so
        that it keeps this setup instead of installing its own.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(_not_wire_debug)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    # websockets' own loggers print the handshake's headers and every frame at debug
    logging.getLogger("websockets").setLevel(max(logging.INFO, root.level))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"level": level.upper(), "propagate": True},
            "uvicorn.error": {"level": level.upper(), "propagate": True},
            "uvicorn.access": {"level": level.upper(), "propagate": True},
        },
    }

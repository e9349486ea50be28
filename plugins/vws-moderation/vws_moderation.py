"""vws-moderation: protected rooms, masked words and muted clients for a vws app.

Installing the package enables it (entry point ``moderation`` in group ``vws``); configure it
with ``[plugins.settings.moderation]`` and map its two handlers to events of your routes::

    [routes."/ws".events]
    mute = "vws_moderation:mute"
    unmute = "vws_moderation:unmute"

- Rooms matching ``protected_rooms`` refuse clients without an identity (``vws_join_room``).
- ``words`` are masked in the frames of ``events`` (``vws_emit``: once per send).
- A muted client receives nothing until it is unmuted (``vws_deliver``: once per receiver).
- Every leave is logged with its reason (``vws_left_room``).

Mute state is kept by each node for its own clients: see the README's limits.
"""

from __future__ import annotations

import logging
import re
import sys
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Annotated, Any
from weakref import WeakKeyDictionary

import msgspec
from msgspec import Meta

from vws import Client, Deny, Outgoing, Server, SettingsError, hookimpl

__version__ = "0.1.0"

#: A word that can be masked: letters, digits, underscores, apostrophes and hyphens.
Word = Annotated[str, Meta(pattern=r"^[\w'-]+$", max_length=100)]
#: A non-empty name: an event, a room pattern, a user.
Name = Annotated[str, Meta(min_length=1, max_length=200)]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.settings.moderation]``."""

    #: Rooms (shell patterns) that only clients with an identity (``client.user``) may join.
    protected_rooms: tuple[Name, ...] = ("admin-*",)
    #: Words masked in outgoing frames, matched case-insensitively and as whole words.
    words: tuple[Word, ...] = ()
    #: The character a masked word is replaced by, once per character of the word.
    mask: Annotated[str, Meta(min_length=1, max_length=1)] = "*"
    #: The events whose frames are masked (a str payload, or a dict payload's "text").
    events: frozenset[Name] = frozenset({"message"})
    #: The users (``client.user``) allowed to call ``mute`` and ``unmute``.
    moderators: frozenset[Name] = frozenset()

    def __post_init__(self) -> None:
        # Words are matched case-insensitively: "Darn" and "darn" are one word listed twice,
        # which is most likely a copy-paste slip worth pointing at.
        seen: set[str] = set()
        for index, word in enumerate(self.words):
            folded = word.casefold()
            if folded in seen:
                raise SettingsError(f"words.{index}", f"{word!r} is listed twice (case is ignored)")
            seen.add(folded)
        if self.words and not self.events:
            raise SettingsError("events", "is empty, so the listed words would never be masked")


class Target(msgspec.Struct, forbid_unknown_fields=True):
    """The payload of ``mute`` and ``unmute``: ``{"client_id": "..."}``; usable as the events'
    ``schema`` in routes.toml."""

    client_id: Name


# Per node: the ids of its muted clients. Keyed weakly, so a server that is gone (a test's, an
# embedding app's) takes its set with it.
_muted: WeakKeyDictionary[Server, set[str]] = WeakKeyDictionary()


@lru_cache(maxsize=16)
def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so that "darn-it" wins over "darn" where both are listed; the
    # look-arounds keep to whole words ("darn" is not masked inside "darnation").
    ordered = sorted(words, key=len, reverse=True)
    alternatives = "|".join(re.escape(word) for word in ordered)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def masked(text: str, settings: Settings) -> str:
    """``text`` with each of ``settings.words`` replaced by the mask, letter for letter."""
    if not settings.words:
        return text
    return _pattern(settings.words).sub(lambda found: settings.mask * len(found[0]), text)


def is_muted(server: Server, client_id: str) -> bool:
    """Whether ``client_id`` is muted on ``server``."""
    muted = _muted.get(server)
    return muted is not None and client_id in muted


# --- the hooks -------------------------------------------------------------------------------


@hookimpl
def vws_join_room(client: Client, room: str, settings: Settings) -> None:
    """Refuse a protected room to a client nobody has identified (``join_denied``)."""
    if client.user is None and any(fnmatchcase(room, p) for p in settings.protected_rooms):
        raise Deny("sign in to join this room")


@hookimpl
def vws_emit(message: Outgoing, settings: Settings) -> Outgoing | None:
    """Mask the words in a frame of ``events``; None (keep it as it is) for any other frame."""
    if not settings.words or message.event not in settings.events:
        return None
    payload = message.payload
    if isinstance(payload, str):
        text = masked(payload, settings)
        return None if text == payload else message.replace(payload=text)
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        text = masked(payload["text"], settings)
        if text == payload["text"]:
            return None
        # a new dict: the handler's own payload is never changed in place
        return message.replace(payload={**payload, "text": text})
    return None


@hookimpl
def vws_deliver(client: Client, server: Server) -> bool | None:
    """Keep every frame from a muted client: live ones, other nodes', replays alike."""
    return False if is_muted(server, client.client_id) else None


@hookimpl
def vws_disconnect(client: Client, server: Server) -> None:
    """A client id is never reused: forget a muted one when it goes."""
    muted = _muted.get(server)
    if muted is not None:
        muted.discard(client.client_id)


@hookimpl
def vws_left_room(client: Client, room: str, reason: str, logger: logging.Logger) -> None:
    """One line per leave, with why: asked, handler, disconnect or kicked."""
    logger.info(
        "left room %s on %s: %s (client %s, user %s)",
        room,
        client.path,
        reason,
        client.client_id,
        client.user,
    )


# --- the handlers (map them to events in routes.toml) -----------------------------------------


def _target(client: Client, payload: Any) -> tuple[Server, str]:
    """The node and the client id a moderator's ``mute``/``unmute`` is about."""
    server = client.server
    settings: Settings | None = server.plugin_settings(sys.modules[__name__])
    if settings is None:
        raise RuntimeError("vws_moderation's handlers need the moderation plugin loaded")
    if client.user is None or client.user not in settings.moderators:
        raise Deny("only a moderator may do this")
    try:
        target = msgspec.convert(payload, Target)
    except msgspec.ValidationError as exc:
        raise Deny(f'the payload must be {{"client_id": "..."}}: {exc}') from None
    if server.client(target.client_id) is None:  # mutes are kept per node: say so
        where = "to this node" if server.has_client(target.client_id) else ""
        raise Deny(f"no client {target.client_id!r} is connected {where}".strip())
    return server, target.client_id


def mute(client: Client, payload: Any) -> dict[str, Any]:
    """Handler: from now on the client ``payload["client_id"]`` receives nothing."""
    server, client_id = _target(client, payload)
    _muted.setdefault(server, set()).add(client_id)
    return {"client_id": client_id, "muted": True}


def unmute(client: Client, payload: Any) -> dict[str, Any]:
    """Handler: the client ``payload["client_id"]`` receives again (what it missed is gone)."""
    server, client_id = _target(client, payload)
    muted = _muted.get(server)
    if muted is not None:
        muted.discard(client_id)
    return {"client_id": client_id, "muted": False}

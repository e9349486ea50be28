"""What travels from a send call to the fan-out: :class:`Outgoing`, as ``vws_emit`` sees it.

It sits below :mod:`vws.runtime.client` and :mod:`vws.runtime.fanout` so that both, and the
hooks' specs, can name it without importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec
from msgspec import Struct

if TYPE_CHECKING:
    from vws.runtime.client import Client

Kind = Literal["emit", "room", "to", "broadcast"]


class Outgoing(Struct, frozen=True, kw_only=True):
    """A frame on its way out, as ``vws_emit`` and ``vws_deliver`` hooks see it.

    ``kind`` is the Client method that sent it; ``target`` is the room (``room``), the client
    id (``to``, and the sender's own id for ``emit``) or None (``broadcast``); ``path`` is the
    sender's path; ``sender`` is the sending :class:`~vws.Client`, None when no client of this
    node sent it (the publish API, ``vws.server()``, another node, a replay). ``user`` is the
    sender's ``client.user`` at the time it sent, kept through other nodes and replays, so a
    plugin can tell who a frame is from when the sender is long gone. ``replay`` is True for a
    kept frame sent again to one client (history, recovery).
    """

    kind: Kind
    event: str
    payload: Any = None
    path: str
    target: str | None = None
    sender: Client | None = None
    user: str | None = None
    replay: bool = False

    def replace(self, **changes: Any) -> Outgoing:
        """A copy with some fields changed: what a rewriting ``vws_emit`` returns."""
        return msgspec.structs.replace(self, **changes)

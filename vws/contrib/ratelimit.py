"""Token-bucket rate limits per connection, optionally per event, and closing repeat offenders.

Every frame a client sends (room events included) takes a token from its connection's bucket,
and from its event's bucket when ``events`` gives that event a limit of its own. A frame that
finds a bucket empty is refused with ``rate_limited`` and takes nothing. A client refused
``close_after`` times within ``window`` seconds is closed with 1008.

With ``per = "user"``, the connections of one ``client.user`` share their buckets, so opening
more connections does not buy a user more messages; anonymous clients keep one each.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from vws import Client, RateLimited, hookimpl

#: Close code for a client that keeps sending over its limit (policy violation).
CLOSE_ABUSE = 1008

Rate = Annotated[float, Meta(gt=0)]
Burst = Annotated[int, Meta(ge=1)]


class Limit(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A bucket's shape: ``rate`` tokens per second, holding at most ``burst``."""

    rate: Rate
    burst: Burst


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.settings.ratelimit]``."""

    #: Messages per second per connection, and how many may come at once.
    rate: Rate = 20.0
    burst: Burst = 40
    #: Events with a bucket of their own, on top of the connection's.
    events: dict[str, Limit] = {}
    #: Refusals within ``window`` seconds that close the connection with 1008; 0 never closes.
    close_after: Annotated[int, Meta(ge=0)] = 10
    window: Annotated[float, Meta(gt=0)] = 10.0
    #: Whose buckets: each connection's, or each ``client.user``'s (all their connections).
    per: Literal["connection", "user"] = "connection"


class Bucket:
    """A token bucket; the shape is passed on each use, so a reload's new limits apply at once."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = float(burst)
        self.stamp = now

    def refill(self, rate: float, burst: float, now: float) -> bool:
        """Add what accrued since the last call; whether a token is there to take."""
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        return self.tokens >= 1.0


class Offender:
    """One connection's buckets and recent refusals."""

    __slots__ = ("bucket", "events", "strikes")

    def __init__(self, settings: Settings, now: float) -> None:
        self.bucket = Bucket(settings.burst, now)
        self.events: dict[str, Bucket] = {}
        self.strikes: deque[float] = deque()

    def admit(self, event: str, settings: Settings, now: float) -> bool:
        """Take a token from every bucket the event uses, or from none when one is empty."""
        ready = self.bucket.refill(settings.rate, settings.burst, now)
        limit = settings.events.get(event)
        bucket = None
        if limit is not None:
            bucket = self.events.get(event)
            if bucket is None:
                bucket = self.events[event] = Bucket(limit.burst, now)
            ready = bucket.refill(limit.rate, limit.burst, now) and ready
        if not ready:
            return False
        self.bucket.tokens -= 1.0
        if bucket is not None:
            bucket.tokens -= 1.0
        return True

    def strike(self, settings: Settings, now: float) -> bool:
        """Count a refusal; whether the connection has now earned a close."""
        if not settings.close_after:
            return False
        strikes = self.strikes
        strikes.append(now)
        while strikes and strikes[0] <= now - settings.window:
            strikes.popleft()
        return len(strikes) >= settings.close_after


#: client id, or ``user:NAME`` → its limits (client ids are unique across the servers of a
#: process); and ``user:NAME`` → the connections that sent with it, so it is forgotten with
#: the last of them.
_clients: dict[str, Offender] = {}
_sharing: dict[str, set[str]] = {}


def _key(client: Client, settings: Settings) -> str:
    if settings.per == "user" and client.user is not None:
        return f"user:{client.user}"
    return client.client_id


#: Closes in flight, kept so the tasks are not collected before they finish.
_closing: set[asyncio.Task[None]] = set()


@hookimpl(tryfirst=True)
def vws_message(client: Client, event: str, payload: Any, settings: Settings) -> None:
    """Runs before other plugins' vws_message, so a flood costs them nothing."""
    now = time.monotonic()
    key = _key(client, settings)
    offender = _clients.get(key)
    if offender is None:
        offender = _clients[key] = Offender(settings, now)
    if key != client.client_id:
        _sharing.setdefault(key, set()).add(client.client_id)
    if offender.admit(event, settings, now):
        return
    if offender.strike(settings, now) and not client.closing:
        # after this frame's rate_limited error, which the connection queues once we raise
        task = asyncio.get_running_loop().create_task(client.close(CLOSE_ABUSE, "rate limit"))
        _closing.add(task)
        task.add_done_callback(_closing.discard)
    raise RateLimited()


@hookimpl
def vws_disconnect(client: Client) -> None:
    _clients.pop(client.client_id, None)
    if client.user is None:
        return
    key = f"user:{client.user}"
    sharing = _sharing.get(key)
    if sharing is not None:
        sharing.discard(client.client_id)
        if not sharing:
            del _sharing[key]
            _clients.pop(key, None)

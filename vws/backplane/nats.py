"""The NATS backplane: ``nats://[user:password@]host:port``.

Subjects (``PREFIX`` is ``[server] channel_prefix``): ``PREFIX.all``, ``PREFIX.node.ID`` and
``PREFIX.room.PATH.ROOM`` with the path and room in unpadded URL-safe base64, so a room name
can never hold a ``.``, ``*`` or ``>`` that NATS would read as a token or a wildcard.

nats-py's own reconnection is turned off: the shared loop of
:class:`~vws.backplane.broker.BrokerBackplane` reconnects and resubscribes, the same way for
every broker. Shared hashes live in the JetStream key-value bucket ``PREFIX_hash`` (one entry
per field, ``KEY.FIELD`` in base64, its value carrying the node that set it, and one entry
``w.ID`` per node that wrote any), and nodes keep an entry alive in the
bucket ``PREFIX_nodes``, whose entries expire after ``node_timeout``; fields of a node whose
entry expired are removed when a node notices, reads them, or starts. Without JetStream on
the server, pub/sub works and the hash methods raise :class:`BrokerError`.

Room histories (rooms with recovery) live in the JetStream stream ``PREFIX_hist``; see
:mod:`vws.backplane.nats_history`. Their frames reach the nodes through a consumer of that
stream, never through the room subjects.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import Any, cast

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, KeyNotFoundError
from nats.js.kv import KeyValue

from vws.backplane.base import Position, Recovery, Retention
from vws.backplane.broker import BrokerBackplane, BrokerError, Outgoing, PositionedPublish
from vws.backplane.nats_history import NatsHistory, Tail

logger = logging.getLogger("vws.backplane")

_SEP = b"\x00"
CONNECT_TIMEOUT = 5
#: Seconds a listing of shared-hash entries waits for the next entry before it takes the
#: list as complete (see :meth:`NatsBackplane._entries`).
LISTING_QUIET = 2.0


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


async def _bucket(js: JetStreamContext, name: str, ttl: float | None) -> KeyValue:
    """The key-value bucket ``name``, made if missing (or as another node made it: nodes
    with a different ``node_timeout`` share the first one's liveness TTL)."""
    try:
        return await js.create_key_value(bucket=name, ttl=ttl)
    except BadRequestError:
        return await js.key_value(name)


class NatsBackplane(BrokerBackplane):
    scheme = "nats"

    def __init__(self, node_id: str, url: str) -> None:
        super().__init__(node_id, url)
        self._nc: NatsClient | None = None
        self._gone = asyncio.Event()
        self._subs: dict[str, Any] = {}
        self._hashes: KeyValue | None = None
        self._nodes: KeyValue | None = None
        #: Whether this node's entry in the writers list (``w.ID``) is known to exist.
        self._listed = False
        self._history: NatsHistory | None = None
        #: Whether the last look at the history stream failed (it is logged once).
        self._history_failing = False

    # -- names

    def room_channel(self, path: str, room: str) -> str:
        return f"{self.prefix}.room.{_token(path)}.{_token(room)}"

    def node_channel(self, node: str) -> str:
        return f"{self.prefix}.node.{node}"

    @property
    def all_channel(self) -> str:
        return f"{self.prefix}.all"

    def _history_subject(self, path: str, room: str) -> str:
        return f"{self.prefix}.hist.{_token(path)}.{_token(room)}"

    # -- transport

    async def _connect(self) -> None:
        self._gone.clear()
        self._subs = {}

        async def gone(*_: Any) -> None:
            self._gone.set()

        async def error(exc: Exception) -> None:
            logger.warning("backplane %s: %s", self.url, exc)

        self._nc = await nats.connect(
            self.url,
            name=f"vws-{self.node_id}",
            allow_reconnect=False,
            connect_timeout=CONNECT_TIMEOUT,
            max_reconnect_attempts=0,
            ping_interval=max(1, int(self.options.node_timeout / 4)),
            max_outstanding_pings=2,
            disconnected_cb=gone,
            closed_cb=gone,
            error_cb=error,
        )

    async def _disconnect(self) -> None:
        nc, self._nc = self._nc, None
        if self._history is not None:
            self._history.close()
        self._subs = {}
        self._hashes = self._nodes = None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2.0)

    def _client(self) -> NatsClient:
        if self._nc is None or not self._nc.is_connected:
            raise ConnectionError("not connected")
        return self._nc

    async def _subscribe(self, channels: list[str]) -> None:
        nc = self._client()
        for channel in channels:
            if channel not in self._subs:
                self._subs[channel] = await nc.subscribe(channel, cb=self._deliver)

    async def _unsubscribe(self, channels: list[str]) -> None:
        for channel in channels:
            sub = self._subs.pop(channel, None)
            if sub is not None:
                await sub.unsubscribe()

    async def _deliver(self, msg: Msg) -> None:
        self._on_message(msg.data)

    async def _send(self, batch: list[tuple[str, Outgoing]]) -> int:
        nc = self._client()
        refused = 0
        known: dict[str, Tail] = {}
        for channel, data in batch:
            if type(data) is bytes:
                await nc.publish(channel, data)
                continue
            envelope, retention = cast("PositionedPublish", data)
            subject = self._history_subject(envelope.path, envelope.target)
            try:
                if self._history is None:
                    raise BrokerError("no JetStream history stream")
                await self._history.publish(subject, envelope, retention, known)
            except Exception as exc:  # JetStream refused it, or is missing: pub/sub goes on
                if not nc.is_connected:
                    raise
                refused += 1
                self.refusal = repr(exc)
        return refused

    def _on_history_frame(self, subject: str, data: bytes) -> None:
        """A frame from the history stream: delivered if this node watches its room."""
        channel = f"{self.prefix}.room.{subject[len(self.prefix) + 6 :]}"
        if channel in self._rooms:
            self._on_message(data)

    def _room_is_ready(self, channel: str) -> bool:
        return self._history is not None and self._history.ready and channel in self._rooms

    # -- room histories

    async def history(
        self, path: str, room: str, since: Position | None, retention: Retention
    ) -> Recovery:
        """Raises:
        BrokerError: NATS or its JetStream is out of reach.
        """
        if self._history is None or not self._connected:
            raise BrokerError(f"backplane {self.url} is not connected")
        subject = self._history_subject(path, room)
        try:
            return await self._history.history(subject, room, since, retention)
        except Exception as exc:
            raise BrokerError(f"backplane {self.url}: {exc!r}") from exc

    async def _listen(self) -> None:
        await self._gone.wait()
        raise ConnectionError("disconnected from the NATS server")

    # -- this node's state on the broker

    async def _joined(self) -> None:
        nc = self._client()
        if self._history is None or self._history.prefix != self.prefix:
            self._history = NatsHistory(
                self.prefix, self._on_history_frame, self._readiness_changed
            )
        try:
            await self._history.open(nc)
            self._history_failing = False
        except Exception as exc:
            self._history_failing = True
            logger.warning(
                "backplane %s: the history stream is not reachable (%s): no room keeps a history",
                self.url,
                exc,
            )
        js = nc.jetstream()
        try:
            self._hashes = await _bucket(js, f"{self.prefix}_hash", None)
            self._nodes = await _bucket(js, f"{self.prefix}_nodes", self.options.node_timeout)
        except Exception as exc:
            logger.warning(
                "backplane %s: no JetStream key-value store (%s): shared hashes unavailable",
                self.url,
                exc,
            )
            return
        await self._heartbeat()
        self._listed = False
        await self._forget_nodes(sorted(await self._writers() - {self.node_id}))

    async def _writers(self) -> set[str]:
        if self._hashes is None:
            return set()
        return {owner for _, owner, _ in await self._entries("w.*")}

    def _buckets(self) -> tuple[KeyValue, KeyValue]:
        if self._hashes is None or self._nodes is None:
            raise BrokerError(f"backplane {self.url}: the shared hashes are not reachable")
        return self._hashes, self._nodes

    async def _heartbeat(self) -> None:
        if self._history is not None and self._nc is not None:
            try:
                await self._history.check()
            except Exception as exc:
                if not self._history_failing:  # once, not at every heartbeat
                    logger.warning("backplane %s: the history stream: %r", self.url, exc)
                self._history_failing = True
            else:
                self._history_failing = False
        if self._nodes is not None:
            await self._nodes.put(self.node_id, b"1")

    async def _alive(self, nodes: set[str]) -> set[str]:
        _, alive_bucket = self._buckets()
        alive = {self.node_id} & nodes
        for node in nodes - alive:
            with contextlib.suppress(KeyNotFoundError):
                await alive_bucket.get(node)
                alive.add(node)
        return alive

    async def _entries(self, keys: str) -> list[tuple[str, str, bytes]]:
        """``(kv key, owner, value)`` for every live entry matching ``keys``.

        A watcher ends its first pass with an entry whose ``delta`` is 0, or with None; when
        the server's pending count is off (it can be while fields are purged: nats-io/nats.go
        #1824, nats-io/nats-server#4824) neither comes and the watch would wait forever. So
        the pass also ends after :data:`LISTING_QUIET` seconds with no entry, as nats.go's
        own fix does: by then every entry of the pass has long arrived.
        """
        hashes, _ = self._buckets()
        watcher = await hashes.watch(keys, ignore_deletes=True)
        out = []
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=LISTING_QUIET)  # type: ignore[no-untyped-call]
                except TimeoutError:  # nats.errors.TimeoutError is one
                    logger.debug(
                        "backplane %s: listing %s ended without its end marker", self.url, keys
                    )
                    break
                if entry is None:
                    break
                if entry.value:
                    owner, _, value = entry.value.partition(_SEP)
                    out.append((entry.key, owner.decode(), value))
                if entry.delta == 0:
                    break
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
        return out

    async def _purge(self, nodes: set[str]) -> None:
        """Remove the fields of ``nodes``, and their entries in the list of writers."""
        if self._hashes is None or not nodes:
            return
        for key, owner, _ in await self._entries(">"):
            if owner in nodes:
                await self._hashes.purge(key)

    async def _forget_nodes(self, nodes: list[str]) -> None:
        candidates = set(nodes)
        await self._purge(candidates - await self._alive(candidates))

    async def _leaving(self) -> None:
        if self._history is not None:
            await self._history.leave()
        if self._nodes is not None:
            await self._purge({self.node_id})
            await self._nodes.purge(self.node_id)

    # -- shared hashes

    def _kv_key(self, key: str, field: str) -> str:
        return f"{_token(key)}.{_token(field)}"

    async def _drop_own_fields(self) -> None:
        await self._purge({self.node_id})
        self._listed = False

    async def _hash_set(self, key: str, field: str, value: str) -> None:
        hashes, _ = self._buckets()
        try:
            if not self._listed:  # among the writers, so its fields are found if it dies
                await hashes.put(f"w.{self.node_id}", self.node_id.encode() + _SEP)
                self._listed = True
            data = self.node_id.encode() + _SEP + value.encode()
            await hashes.put(self._kv_key(key, field), data)
        except Exception as exc:
            raise BrokerError(f"backplane {self.url}: {exc}") from exc

    async def _hash_delete(self, key: str, field: str) -> None:
        hashes, _ = self._buckets()
        try:
            await hashes.purge(self._kv_key(key, field))
        except Exception as exc:
            raise BrokerError(f"backplane {self.url}: {exc}") from exc

    async def hash_get_all(self, key: str) -> dict[str, str]:
        hashes, _ = self._buckets()
        try:
            entries = await self._entries(f"{_token(key)}.*")
            alive = await self._alive({owner for _, owner, _ in entries})
            out = {}
            for kv_key, owner, value in entries:
                if owner not in alive:
                    await hashes.purge(kv_key)
                    continue
                field = kv_key.partition(".")[2]
                out[base64.urlsafe_b64decode(field + "=" * (-len(field) % 4)).decode()] = (
                    value.decode()
                )
        except BrokerError:
            raise
        except Exception as exc:
            raise BrokerError(f"backplane {self.url}: {exc}") from exc
        return out

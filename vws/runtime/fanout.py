"""From a Client method call to frames in outboxes: the hooks, encoding, delivery.

A frame is encoded once, after the ``vws_emit`` chain has had its say, however many clients
receive it. The ``vws_deliver`` hooks then decide per receiver, on every node, whether that
client gets the already-encoded text; when nobody implements them, delivery runs the plain
loops and pays nothing for them.

When some ``vws_emit`` implementation is async, each sender's frames pass through the chain
one at a time, in order, and the sender's own protocol frames (acks, errors) queue behind
them, so ordering holds exactly as it does without plugins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from vws.backplane import Envelope, Target
from vws.errors import USER_CODE_FAILURES
from vws.hooks import Hooks
from vws.hooks.calling import failed
from vws.protocol import encode_frame
from vws.runtime.hub import Accept, Hub
from vws.runtime.messages import Outgoing

if TYPE_CHECKING:
    from vws.routing import DispatchTable, Route
    from vws.runtime.client import Client
    from vws.runtime.outbox import Outbox
    from vws.runtime.stats import Stats

logger = logging.getLogger("vws.runtime.fanout")

#: How a frame from another node is read back for the ``vws_deliver`` hooks.
_frames = msgspec.json.Decoder()
_KINDS = {Target.ROOM: "room", Target.CLIENT: "to", Target.BROADCAST: "broadcast"}
#: The message :meth:`Fanout.replay_text` passes on when no hook will look at it.
_REPLAYED = Outgoing(kind="room", event="", path="", replay=True)


class Fanout:
    """Sends :class:`Outgoing` messages through the hooks to the hub and the backplane."""

    def __init__(self, hub: Hub, hooks: Hooks, stats: Stats) -> None:
        self.hub = hub
        self.hooks = hooks
        self.stats = stats
        #: Per sender, the last frame still inside an async vws_emit chain.
        self._tails: dict[str, asyncio.Task[None]] = {}
        self.routes: Mapping[str, Route] = {}
        #: Paths with rooms that keep a history: their room frames get positions.
        self.positioned: frozenset[str] = frozenset()

    def serve(self, table: DispatchTable) -> None:
        """Take a dispatch table's routes: which rooms keep a history."""
        self.routes = table.routes
        self.positioned = frozenset(
            path for path, route in table.routes.items() if route.history or route.room_history
        )

    def send(self, message: Outgoing) -> bool:
        """Run the hooks and deliver; never waits.

        Returns:
            False when a ``vws_emit`` plugin dropped the frame, or a ``vws_deliver`` plugin
            kept it from its one receiver on this node; True otherwise (and while an async
            ``vws_emit`` chain has yet to decide).
        """
        hooks = self.hooks
        if not hooks.emit:
            return self._deliver(message)
        if hooks.emit_is_async:
            self._after_tail(self._key(message), self._chain_async(message))
            return True
        result = self._chain(message)
        return result is not None and self._deliver(result)

    def send_own(self, client_id: str, text: str) -> None:
        """Queue a protocol frame (ack, error) for a client behind its frames still in the chain."""
        tail = self._tails.get(client_id)
        outbox = self.hub.clients.get(client_id)
        if tail is None:
            if outbox is not None:
                outbox.put(text)
            return

        async def put() -> None:
            target = self.hub.clients.get(client_id)
            if target is not None:
                target.put(text)

        self._after_tail(client_id, put())

    def replay(self, client: Client, message: Outgoing, text: str | None = None) -> bool:
        """Send a kept frame again to one client (``message.replay`` set), asking only the
        ``vws_deliver`` hooks: the ``vws_emit`` chain had its say when it was first sent.

        ``text`` is the frame as first encoded, when the caller kept it. Returns False when a
        plugin kept it from the client, or the client is gone.
        """
        outbox = client.outbox
        if outbox is None or client.closing:
            return False
        if not message.replay:
            message = message.replace(replay=True)
        if self.hooks.deliver and not self._accepting(message)(outbox):
            return False
        self.send_own(client.client_id, text or encode_frame(message.event, message.payload))
        return True

    def replay_text(self, client: Client, text: str) -> bool:
        """:meth:`replay` of a kept frame known only by its text (a room history's), read
        back for the ``vws_deliver`` hooks only when somebody implements them."""
        if not self.hooks.deliver:
            return self.replay(client, _REPLAYED, text)
        message = _read_back(text, "room", client.path, None, replay=True)
        return self.replay(client, message, text)

    def receive(self, envelope: Envelope) -> None:
        """Deliver another node's envelope to this node's clients (the backplane calls this)."""
        if self.hooks.deliver:
            message = _read_back(
                envelope.text,
                _KINDS[envelope.kind],
                envelope.path,
                envelope.target or None,
                envelope.user or None,
            )
            self.hub.deliver(envelope, self._accepting(message))
        else:
            self.hub.deliver(envelope)

    @staticmethod
    def _key(message: Outgoing) -> str:
        sender = message.sender
        return sender.client_id if sender is not None else ""

    def _after_tail(self, key: str, step: Any) -> None:
        previous = self._tails.get(key)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await step

        task = asyncio.get_running_loop().create_task(run())
        self._tails[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("delivering a frame failed", exc_info=task.exception())

    def _chain(self, message: Outgoing) -> Outgoing | None:
        for impl in self.hooks.emit:
            try:
                result = impl({"message": message})
            except USER_CODE_FAILURES:
                failed(impl.plugin_name, "vws_emit", "the frame is dropped")
                return None
            if result is False:
                return None
            if result is not None:
                if not isinstance(result, Outgoing):
                    _refuse_result(impl.plugin_name, result)
                    return None
                message = result
        return message

    async def _chain_async(self, message: Outgoing) -> None:
        for impl in self.hooks.emit:
            try:
                result = impl({"message": message})
                if impl.is_async:
                    result = await result
            except USER_CODE_FAILURES:
                failed(impl.plugin_name, "vws_emit", "the frame is dropped")
                return
            if result is False:
                return
            if result is not None:
                if not isinstance(result, Outgoing):
                    _refuse_result(impl.plugin_name, result)
                    return
                message = result
        self._deliver(message)

    def _accepting(self, message: Outgoing) -> Accept:
        """The per-receiver check of ``message``: every ``vws_deliver`` implementation, in
        order, until one says False. It runs once per receiver, so each implementation is
        called directly with the two arguments, not through a dict of them."""
        calls = self.hooks.deliver_calls

        def accept(outbox: Outbox) -> bool:
            client = outbox.client
            for plugin, call in calls:
                try:
                    if call(client, message) is False:
                        return False
                except USER_CODE_FAILURES:
                    failed(plugin, "vws_deliver", "the frame is withheld from a client")
                    return False
            return True

        return accept

    def _deliver(self, message: Outgoing) -> bool:
        text = encode_frame(message.event, message.payload)
        self.stats.delivered(message.path, message.kind)
        hub = self.hub
        kind = message.kind
        accept = self._accepting(message) if self.hooks.deliver else None
        user = message.user or ""
        if kind == "room":
            room = message.target or ""
            envelope = Envelope(Target.ROOM, message.path, room, "", text, hub.node_id, user)
            route = self.routes.get(message.path) if message.path in self.positioned else None
            retention = (
                route.retention(room)
                if route is not None and message.event not in route.history_skip
                else None
            )
            if retention is None or hub.backplane.state != "ok":
                # (with the broker out of reach, a room with a history still hears its frames
                # on this node, live and without a position, as a room without one would)
                hub.publish(envelope, accept)
            else:  # the backplane positions it, and delivers it here too, in position order
                hub.backplane.publish_positioned(envelope, retention)
        elif kind == "broadcast":
            sender = message.sender
            exclude = sender.client_id if sender is not None else ""
            scope = message.path if message.path in hub.route_scoped else ""
            envelope = Envelope(Target.BROADCAST, scope, "", exclude, text, hub.node_id, user)
            hub.publish(envelope, accept)
        else:
            target = message.target or ""
            outbox = hub.clients.get(target)
            if outbox is not None:
                if accept is not None and not accept(outbox):
                    return False
                outbox.put(text)
            elif kind == "to":
                envelope = Envelope(Target.CLIENT, "", target, "", text, hub.node_id, user)
                hub.backplane.publish(envelope)
        return True


def _read_back(
    text: str,
    kind: str,
    path: str,
    target: str | None,
    user: str | None = None,
    *,
    replay: bool = False,
) -> Outgoing:
    """A frame known only by its text (another node's, a kept one) as an :class:`Outgoing`,
    for this node's ``vws_deliver`` hooks; a positioned frame's room is its target."""
    frame = _frames.decode(text)
    return Outgoing(
        kind=kind,  # type: ignore[arg-type]
        event=frame.get("event", ""),
        payload=frame.get("payload"),
        path=path,
        target=target or frame.get("room"),
        user=user,
        replay=replay,
    )


def _refuse_result(plugin: str, result: object) -> None:
    """A vws_emit answer that is neither None, False nor an Outgoing: drop the frame, say why."""
    logger.error(
        "plugin %r returned %r from vws_emit (expected None, False or an Outgoing); "
        "the frame is dropped",
        plugin,
        type(result).__name__,
    )

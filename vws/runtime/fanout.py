"""From a Client method call to frames in outboxes: the ``vws_emit`` chain, encoding, delivery.

A frame is encoded once, after the chain has had its say, however many clients receive it.
When some ``vws_emit`` implementation is async, each sender's frames pass through the chain
one at a time, in order, and the sender's own protocol frames (acks, errors) queue behind
them, so ordering holds exactly as it does without plugins.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from vws.backplane import Envelope, Target
from vws.errors import USER_CODE_FAILURES
from vws.hooks import Hooks
from vws.protocol import encode_frame
from vws.runtime.hub import Hub
from vws.runtime.messages import Outgoing

if TYPE_CHECKING:
    from vws.runtime.stats import Stats

logger = logging.getLogger("vws.runtime.fanout")


class Fanout:
    """Sends :class:`Outgoing` messages through the hooks to the hub and the backplane."""

    def __init__(self, hub: Hub, hooks: Hooks, stats: Stats) -> None:
        self.hub = hub
        self.hooks = hooks
        self.stats = stats
        #: Per sender, the last frame still inside an async vws_emit chain.
        self._tails: dict[str, asyncio.Task[None]] = {}

    def send(self, message: Outgoing) -> None:
        """Run the vws_emit chain and deliver; never waits."""
        hooks = self.hooks
        if not hooks.emit:
            self._deliver(message)
        elif hooks.emit_is_async:
            self._after_tail(self._key(message), self._chain_async(message))
        else:
            result = self._chain(message)
            if result is not None:
                self._deliver(result)

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
                logger.exception(
                    "plugin %r raised in vws_emit; the frame is dropped", impl.plugin_name
                )
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
                logger.exception(
                    "plugin %r raised in vws_emit; the frame is dropped", impl.plugin_name
                )
                return
            if result is False:
                return
            if result is not None:
                if not isinstance(result, Outgoing):
                    _refuse_result(impl.plugin_name, result)
                    return
                message = result
        self._deliver(message)

    def _deliver(self, message: Outgoing) -> None:
        text = encode_frame(message.event, message.payload)
        self.stats.delivered(message.path, message.kind)
        hub = self.hub
        kind = message.kind
        if kind == "room":
            hub.publish(
                Envelope(Target.ROOM, message.path, message.target or "", "", text, hub.node_id)
            )
        elif kind == "broadcast":
            sender = message.sender
            exclude = sender.client_id if sender is not None else ""
            scope = message.path if message.path in hub.route_scoped else ""
            hub.publish(Envelope(Target.BROADCAST, scope, "", exclude, text, hub.node_id))
        else:
            target = message.target or ""
            outbox = hub.clients.get(target)
            if outbox is not None:
                outbox.put(text)
            elif kind == "to":
                hub.backplane.publish(Envelope(Target.CLIENT, "", target, "", text, hub.node_id))


def _refuse_result(plugin: str, result: object) -> None:
    """A vws_emit answer that is neither None, False nor an Outgoing: drop the frame, say why."""
    logger.error(
        "plugin %r returned %r from vws_emit (expected None, False or an Outgoing); "
        "the frame is dropped",
        plugin,
        type(result).__name__,
    )

"""vws's own HTTP and WebSocket protocols for uvicorn, as ``vws run`` serves them.

:class:`HttpProtocol` is uvicorn's httptools protocol with caps on connections and bounded
request heads; :class:`WebSocketProtocol` parses WebSocket frames with websockets' sans-I/O
parser and hands each message to vws directly, under vws's frame policy. An app that mounts vws
under another server keeps the ASGI path (:mod:`vws.runtime.asgi`) and its server's limits.
"""

from vws.edge.transport.http import HttpProtocol
from vws.edge.transport.ws import WebSocketProtocol

__all__ = ["HttpProtocol", "WebSocketProtocol"]

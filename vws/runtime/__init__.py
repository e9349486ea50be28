"""The node at work, below any socket: clients, the frames they send, rooms, fan-out and
per-client queues.

Data flows one way through it: :mod:`~vws.runtime.connection` reads a frame and calls the handler
with a :mod:`~vws.runtime.client`; the client's sends become :mod:`~vws.runtime.messages`,
which :mod:`~vws.runtime.fanout` runs through the ``vws_emit`` hooks and encodes once;
:mod:`~vws.runtime.hub` (with :mod:`~vws.runtime.rooms`) finds the receivers here and hands
the rest to the backplane; each receiver's :mod:`~vws.runtime.outbox` writes to its socket.
:mod:`~vws.runtime.node` ties one node's pieces together.
"""

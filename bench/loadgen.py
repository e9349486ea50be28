"""The load generator: one process of picows clients driving one scenario against one target.

picows parses frames in compiled code and calls us back synchronously, so a reply is answered
inside the callback that received it: no future, no task switch per frame. That keeps the
generator well below the server's CPU use (it reports its own CPU% beside the server's so a
reader can check it was not the bottleneck).

Scenarios (see docs/performance.md):

- ``echo``: N clients, each sends a frame that asks for a reply and sends the next one as
  soon as the reply arrives. Result: round trips per second.
- ``fanout``: R rooms of M members, one publisher per room (not a member), ~100-byte payloads,
  at most W messages per room not yet delivered to every member. Result: deliveries per
  second and publish-to-delivery latency p50/p99.
- ``broadcast``: N clients, one of them sends broadcasts (window W) that the others receive.
- ``connections``: N idle clients, at most C handshakes at once. Result: connects per second
  and the server's RSS growth per connection.

Every phase is bounded in time; every address is 127.0.0.1.

Run ``python -m bench.loadgen --help``; the result is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from picows import WSListener, WSMsgType, WSTransport, ws_connect

CLK_TCK = os.sysconf("SC_CLK_TCK")
PHASE_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------------
# Dialects: how each target spells connect, join, events and replies.


class Reply(msgspec.Struct):
    """The parts of a vws-style server frame the generator reads."""

    event: str
    id: int | None = None


class JsonDialect:
    """vws and the floor: ``{"event", "payload", "room", "id"}`` JSON text frames."""

    path = "/ws"
    delivery_prefix = b'{"event":"msg"'
    #: The reply to ``echo-emit``, which vws sends with ``Client.emit`` rather than as an ack.
    emitted_reply_prefix = b'{"event":"echo"'

    def __init__(self) -> None:
        self._decode = msgspec.json.Decoder(Reply).decode
        self._encode = msgspec.json.Encoder().encode

    def on_open(self, conn: Conn) -> None:
        """Nothing to send: the server speaks first with its ``connected`` frame."""

    def classify(self, conn: Conn, data: bytes) -> tuple[str, int | None]:
        """("delivery" | "ready" | "ack" | "other", ack id)."""
        if data.startswith(self.delivery_prefix):
            return "delivery", None
        if data.startswith(self.emitted_reply_prefix):
            return "ack", None
        reply = self._decode(data)
        if reply.event == "ack":
            return "ack", reply.id
        if reply.event == "connected":
            return "ready", None
        if reply.event == "error":
            raise RuntimeError(f"server error frame: {data[:200]!r}")
        return "other", None

    def call(self, event: str, payload: Any, frame_id: int | None) -> bytes:
        frame: dict[str, Any] = {"event": event, "payload": payload}
        if frame_id is not None:
            frame["id"] = frame_id
        return self._encode(frame)

    def join(self, room: str, frame_id: int) -> bytes:
        return self._encode({"event": "joinRoom", "room": room, "id": frame_id})


class SocketIODialect:
    """python-socketio: Engine.IO v4 packets over the websocket transport, namespace ``/``."""

    path = "/socket.io/?EIO=4&transport=websocket"
    delivery_prefix = b'42["msg",'

    def __init__(self) -> None:
        self._encode = msgspec.json.Encoder().encode

    def on_open(self, conn: Conn) -> None:
        """The server sends the Engine.IO open packet first; we answer it in classify."""

    def classify(self, conn: Conn, data: bytes) -> tuple[str, int | None]:
        if data.startswith(self.delivery_prefix):
            return "delivery", None
        if data.startswith(b"43"):
            bracket = data.index(b"[")
            return "ack", int(data[2:bracket])
        if data == b"2":  # Engine.IO ping: answer or be dropped
            conn.transport.send(WSMsgType.TEXT, b"3")
            return "other", None
        if data.startswith(b"0{"):  # Engine.IO open: connect to the default namespace
            conn.transport.send(WSMsgType.TEXT, b"40")
            return "other", None
        if data.startswith(b"40"):
            return "ready", None
        if data.startswith(b"44"):
            raise RuntimeError(f"socket.io connect error: {data[:200]!r}")
        return "other", None

    def call(self, event: str, payload: Any, frame_id: int | None) -> bytes:
        body = self._encode([event, payload])
        return b"42" + (b"" if frame_id is None else str(frame_id).encode()) + body

    def join(self, room: str, frame_id: int) -> bytes:
        return self.call("join", room, frame_id)


DIALECTS: dict[str, Callable[[], JsonDialect | SocketIODialect]] = {
    "vws": JsonDialect,
    "floor": JsonDialect,
    "bare": JsonDialect,
    "socketio": SocketIODialect,
}


# ---------------------------------------------------------------------------------------------
# One client connection.


class Conn(WSListener):
    """One client. Replies and deliveries go to callbacks set by the scenario."""

    def __init__(self, dialect: JsonDialect | SocketIODialect) -> None:
        super().__init__()
        self.dialect = dialect
        self.transport: WSTransport = None  # type: ignore[assignment]
        self.ready = asyncio.get_running_loop().create_future()
        self.pending: dict[int, asyncio.Future[None]] = {}
        self.next_id = 0
        #: Called with the ack id of each reply, when the scenario drives replies itself.
        self.on_ack: Callable[[int | None], None] | None = None
        #: Called with each delivered ``msg`` frame.
        self.on_delivery: Callable[[bytes], None] | None = None
        self.closed = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.dialect.on_open(self)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        data = frame.get_payload_as_bytes()
        kind, frame_id = self.dialect.classify(self, data)
        if kind == "delivery":
            if self.on_delivery is not None:
                self.on_delivery(data)
        elif kind == "ack":
            if self.on_ack is not None:
                self.on_ack(frame_id)
                return
            waiter = self.pending.pop(frame_id, None) if frame_id is not None else None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind == "ready" and not self.ready.done():
            self.ready.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("disconnected before it was ready"))
        for waiter in self.pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("disconnected"))

    def send(self, data: bytes) -> None:
        self.transport.send(WSMsgType.TEXT, data)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def request(self, data_for_id: Callable[[int], bytes]) -> None:
        """Send a frame that carries an id and wait for its ack."""
        frame_id = self.new_id()
        waiter = asyncio.get_running_loop().create_future()
        self.pending[frame_id] = waiter
        self.send(data_for_id(frame_id))
        await asyncio.wait_for(waiter, PHASE_TIMEOUT)

    async def join(self, room: str) -> None:
        await self.request(lambda frame_id: self.dialect.join(room, frame_id))

    def close(self) -> None:
        if not self.closed:
            self.transport.disconnect(graceful=False)


async def connect(
    url: str, dialect: JsonDialect | SocketIODialect, count: int, concurrency: int
) -> list[Conn]:
    """Open ``count`` clients, at most ``concurrency`` handshakes at once; wait until ready."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Conn:
        async with gate:
            _, conn = await ws_connect(
                lambda: Conn(dialect), url + dialect.path, websocket_handshake_timeout=30
            )
            assert isinstance(conn, Conn)
            await asyncio.wait_for(conn.ready, PHASE_TIMEOUT)
            return conn

    return list(await asyncio.gather(*(one() for _ in range(count))))


def close_all(conns: list[Conn]) -> None:
    for conn in conns:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Measuring: a window over which throughput and both sides' CPU are counted.


def process_cpu_seconds(pid: int) -> float:
    """CPU time of a process (all its threads), from /proc (Linux).

    ``schedstat`` counts the nanoseconds each thread actually ran; ``stat``'s user + system
    time, in clock ticks (10 ms), is the fallback for kernels built without it.
    """
    if not os.path.exists(f"/proc/{pid}/schedstat"):
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
    return total / 1e9


def process_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Window:
    """Wall time and the CPU time of the server and of this process between start and stop."""

    server_pid: int | None
    started: float = 0.0
    elapsed: float = 0.0
    server_cpu: float | None = None
    client_cpu: float = 0.0
    _server0: float = 0.0
    _client0: float = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()
        self._client0 = time.process_time()
        if self.server_pid:
            self._server0 = process_cpu_seconds(self.server_pid)

    def stop(self) -> None:
        self.elapsed = time.perf_counter() - self.started
        self.client_cpu = (time.process_time() - self._client0) / self.elapsed
        if self.server_pid:
            self.server_cpu = (process_cpu_seconds(self.server_pid) - self._server0) / self.elapsed

    def report(self) -> dict[str, Any]:
        return {
            "seconds": round(self.elapsed, 3),
            "server_cpu_pct": None if self.server_cpu is None else round(100 * self.server_cpu, 1),
            "client_cpu_pct": round(100 * self.client_cpu, 1),
        }


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index] / 1e6  # ns → ms


# ---------------------------------------------------------------------------------------------
# Scenarios.


@dataclass
class Options:
    url: str
    target: str
    duration: float
    warmup: float
    server_pid: int | None
    clients: int
    rooms: int
    members: int
    window: int
    concurrency: int
    echo_event: str


async def run_echo(opts: Options) -> dict[str, Any]:
    dialect = DIALECTS[opts.target]()
    conns = await connect(opts.url, dialect, opts.clients, opts.concurrency)
    payload = {"text": "hello from the bench", "n": 0}
    event = opts.echo_event
    # ``echo`` is answered by an ack (the frame carries an id); ``echo-emit`` by an emitted frame.
    with_id = event == "echo"
    counted = [0]
    running = [True]

    def sender(conn: Conn) -> Callable[[int | None], None]:
        call = dialect.call

        def send_next(_frame_id: int | None = None) -> None:
            if running[0]:
                conn.next_id += 1
                conn.send(call(event, payload, conn.next_id if with_id else None))

        return send_next

    def counting(send_next: Callable[[int | None], None]) -> Callable[[int | None], None]:
        def on_reply(frame_id: int | None) -> None:
            counted[0] += 1
            send_next(frame_id)

        return on_reply

    for conn in conns:
        send_next = sender(conn)
        conn.on_ack = counting(send_next)
        send_next()
    await asyncio.sleep(opts.warmup)
    window = Window(opts.server_pid)
    counted[0] = 0
    window.start()
    await asyncio.sleep(opts.duration)
    done = counted[0]
    window.stop()
    running[0] = False
    close_all(conns)
    result = {"rate": done / window.elapsed, "unit": "round trips/s", "count": done}
    return result | window.report()


@dataclass
class Group:
    """One publisher and its receivers, with a bounded number of messages in flight.

    Message ``k`` is complete once every receiver has had it. Receivers get one sender's frames
    in order (every target guarantees that), so a receiver's n-th delivery is message n: no
    payload needs parsing on the receiving side.
    """

    name: str
    publisher: Conn
    receivers: int
    window: int
    send: Callable[[int], None]
    sent_at: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    completed: int = 0
    running: bool = True

    def pump(self) -> None:
        while self.running and len(self.sent_at) - self.completed < self.window:
            seq = len(self.sent_at)
            self.sent_at.append(time.perf_counter_ns())
            self.counts.append(0)
            self.send(seq)

    def delivered(self, seq: int) -> None:
        counts = self.counts
        counts[seq] += 1
        if counts[seq] == self.receivers:
            self.completed += 1
            self.pump()


@dataclass
class Tally:
    """Deliveries and latencies, counted only while ``measuring``."""

    measuring: bool = False
    deliveries: int = 0
    latencies: list[int] = field(default_factory=list)
    #: Sampled deliveries whose payload did not carry the sequence number expected (any target).
    out_of_order: int = 0


#: Every this many deliveries, a receiver checks the frame really is the message it counts.
CHECK_EVERY = 64


def receiver(conn: Conn, group: Group, tally: Tally) -> None:
    seen = [0]
    clock = time.perf_counter_ns

    def on_delivery(data: bytes) -> None:
        seq = seen[0]
        seen[0] = seq + 1
        if seq % CHECK_EVERY == 0 and b'"seq":%d,' % seq not in data:
            tally.out_of_order += 1
        if tally.measuring:
            tally.deliveries += 1
            tally.latencies.append(clock() - group.sent_at[seq])
        group.delivered(seq)

    conn.on_delivery = on_delivery


def padded(size: int, **fields: Any) -> dict[str, Any]:
    """A payload whose encoded frame is about ``size`` bytes."""
    base = len(msgspec.json.encode({"event": "msg", "payload": fields | {"pad": ""}}))
    return fields | {"pad": "x" * max(0, size - base)}


async def run_fanout(opts: Options) -> dict[str, Any]:
    dialect = DIALECTS[opts.target]()
    tally = Tally()
    groups: list[Group] = []
    publishers = await connect(opts.url, dialect, opts.rooms, opts.concurrency)
    conns = list(publishers)
    for index, publisher in enumerate(publishers):
        room = f"room-{index}"
        members = await connect(opts.url, dialect, opts.members, opts.concurrency)
        conns += members
        await asyncio.gather(*(member.join(room) for member in members))
        payload = padded(100, room=room, seq=0)

        def send(seq: int, publisher: Conn = publisher, payload: dict[str, Any] = payload) -> None:
            payload["seq"] = seq
            publisher.send(dialect.call("publish", payload, None))

        group = Group(room, publisher, opts.members, opts.window, send)
        groups.append(group)
        for member in members:
            receiver(member, group, tally)
    return await _measure_groups(opts, groups, conns, tally)


async def run_broadcast(opts: Options) -> dict[str, Any]:
    dialect = DIALECTS[opts.target]()
    conns = await connect(opts.url, dialect, opts.clients, opts.concurrency)
    sender, others = conns[0], conns[1:]
    payload = padded(100, seq=0)

    def send(seq: int) -> None:
        payload["seq"] = seq
        sender.send(dialect.call("shout", payload, None))

    group = Group("broadcast", sender, len(others), opts.window, send)
    tally = Tally()
    for conn in others:
        receiver(conn, group, tally)
    return await _measure_groups(opts, [group], conns, tally)


async def _measure_groups(
    opts: Options, groups: list[Group], conns: list[Conn], tally: Tally
) -> dict[str, Any]:
    for group in groups:
        group.pump()
    await asyncio.sleep(opts.warmup)
    window = Window(opts.server_pid)
    tally.deliveries = 0
    tally.latencies.clear()
    tally.measuring = True
    window.start()
    await asyncio.sleep(opts.duration)
    tally.measuring = False
    window.stop()
    for group in groups:
        group.running = False
    close_all(conns)
    latencies = sorted(tally.latencies)
    return {
        "rate": tally.deliveries / window.elapsed,
        "unit": "deliveries/s",
        "count": tally.deliveries,
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "out_of_order": tally.out_of_order,
    } | window.report()


async def run_connections(opts: Options) -> dict[str, Any]:
    dialect = DIALECTS[opts.target]()
    # Warm the server up (imports, first-use caches) before taking its baseline RSS.
    warm = await connect(opts.url, dialect, min(50, opts.clients), opts.concurrency)
    close_all(warm)
    await asyncio.sleep(0.5)
    before = process_rss_bytes(opts.server_pid) if opts.server_pid else None
    window = Window(opts.server_pid)
    window.start()
    conns = await connect(opts.url, dialect, opts.clients, opts.concurrency)
    window.stop()
    after = await _settled_rss(opts.server_pid) if opts.server_pid else None
    alive = sum(not conn.closed for conn in conns)
    close_all(conns)
    result: dict[str, Any] = {
        "rate": len(conns) / window.elapsed,
        "unit": "connects/s",
        "count": alive,
    } | window.report()
    if before is not None and after is not None:
        result["rss_before_mib"] = round(before / 2**20, 1)
        result["rss_after_mib"] = round(after / 2**20, 1)
        result["kib_per_conn"] = round((after - before) / len(conns) / 1024, 2)
    return result


async def _settled_rss(pid: int) -> int:
    """The server's RSS once it has gone idle (bounded: at most ~3 s of waiting)."""
    cpu = process_cpu_seconds(pid)
    for _ in range(30):
        await asyncio.sleep(0.1)
        now = process_cpu_seconds(pid)
        if now - cpu < 0.005:
            break
        cpu = now
    return process_rss_bytes(pid)


SCENARIOS = {
    "echo": run_echo,
    "fanout": run_fanout,
    "broadcast": run_broadcast,
    "connections": run_connections,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("target", choices=sorted(DIALECTS))
    parser.add_argument("--url", default="ws://127.0.0.1:8000")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--server-pid", type=int, help="read this process's CPU and RSS")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--window", type=int, default=8, help="messages in flight per sender")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes at once")
    parser.add_argument(
        "--echo-event",
        default="echo",
        choices=["echo", "echo-emit"],
        help="echo-emit (vws only): the reply is sent by Client.emit, through vws_emit hooks",
    )
    args = parser.parse_args(argv)
    if not args.url.startswith(("ws://127.0.0.1:", "ws://localhost:")):
        parser.error("the bench only talks to 127.0.0.1")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    opts = Options(
        url=args.url,
        target=args.target,
        duration=args.duration,
        warmup=args.warmup,
        server_pid=args.server_pid,
        clients=args.clients,
        rooms=args.rooms,
        members=args.members,
        window=args.window,
        concurrency=args.concurrency,
        echo_event=args.echo_event,
    )
    budget = args.warmup + args.duration + 4 * PHASE_TIMEOUT
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    result = runner(asyncio.wait_for(SCENARIOS[args.scenario](opts), budget))
    json.dump({"scenario": args.scenario, "target": args.target} | result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

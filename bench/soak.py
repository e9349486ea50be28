"""The soak: one vws node under steady chat load for a long time, watched for what keeps growing.

A benchmark measures seconds; a leak needs minutes. ``python -m bench.soak`` starts ``vws run``
on bench/soak_app/routes.toml (127.0.0.1, a free port, pinned to core 0 when there are two) and
drives it from this process (pinned to core 1) with picows clients, as bench/loadgen.py does:

- ``--connections`` members (5000), spread over ``--rooms`` rooms (200) with ``joinRoom``; a room's
  members hear the demo chat's ``chat`` event (plugins/chat.py, ``client.to_room``) and
  presence's join and leave notices;
- chat: ``--rate`` messages a second (400) from random members to their room, the send time
  inside the payload, so each receiving member measures the delivery latency;
- moves: ``--moves`` members a second (20) leave their room (``leftRoom``) and join another; a
  frame from a room heard after the leave was acknowledged is a *stray* delivery;
- churn: ``--churn`` members a second (50) closed, half with a close frame and half by dropping
  the TCP connection, and as many new ones opened and joined to a random room;
- a slow consumer every ``--slow-every`` seconds (60): a client with a tiny receive buffer joins
  the ``hot`` room and stops reading while a member floods the room; the server must cut it
  (close 1008, counted in ``/_vws/status``) within ``--slow-timeout``, while the room's three
  healthy readers get every flooded frame and stay connected.

Every ``--sample`` seconds (10) it records the server's RSS (``VmRSS`` of /proc/PID/status), its
open fds (/proc/PID/fd), its CPU, the connections and rooms it holds (``/_vws/status``), its
event-loop lag (how late a 50 ms timer fires inside the server: bench/soak_app/soak_monitor.py,
since vws exposes none), the round trip of an acknowledged ``probe`` frame on a dedicated
connection (client and sockets included, so called what it is: a round trip), chat deliveries a
second with their latency p50/p99/max, and the error frames, unexpected closes, stray deliveries
and failed connects seen. One line per sample goes to stderr; at the end the summary is one JSON
object on stdout and a table on stderr.

The verdict: "grows without bound". The samples are cut in thirds. The first third is warm-up
(connecting 5000 clients, first-use caches, the allocator finding its size) and is not judged.
A leak is a steady rise, so it lifts the last third above the middle one by its rate times a
third of the run; noise does not. A metric fails when the mean of the last third exceeds the
mean of the middle third by more than its tolerance, the larger of a share of the middle mean
and an absolute amount (so that a small base does not turn noise into a verdict):

==================================  =====  ========
metric                              share  absolute
==================================  =====  ========
server RSS (MiB)                     20 %    50 MiB
server open fds                       5 %        50
connections the server holds          5 %        50
rooms the server holds                5 %        10
event-loop lag p99 (ms)              50 %     10 ms
probe round trip p99 (ms)            50 %     10 ms
delivery latency p99 (ms)            50 %     10 ms
longest full-collection pause (ms)   50 %    100 ms
==================================  =====  ========

The latency metrics are dominated by the server's full (generation 2) garbage collections: at 5000
connections one runs every 15 s or so and stops the loop for more than half a second, so about half
the windows hold one and their p99 is that pause. Where such windows fall decides a third's mean,
and a short run then "grows" by chance. Other work on the machine does the same: the server waits
for its core, and its loop lags for reasons that are not vws's. So the three latency metrics are
judged on *quiet* windows without a full collection, quiet meaning the server waited for a core
(``/proc/PID/task/*/schedstat``) at most 2 % of the window; on all windows when fewer than six
qualify. The pause itself is judged on the quiet windows that have one (not at all, when fewer than
six do): a heap that grows lengthens it. Latency metrics and the pause also fail only when the
*median* of the last third is over the same limit too: most of the last third is high, not one
spike. Their share is 50 % because a linear rise from zero puts the last third at only 1.67 times
the middle one. The summary gives each judged metric's windows and its least-squares slope per
minute over the judged two thirds, for the reader.

The run also fails when the server dies, when a slow consumer is not cut or a healthy reader is,
on any error frame, stray delivery, close the soak did not ask for, failed connect or unanswered
sample, and when there are fewer than six samples to judge. A failed run exits with status 1 and
one line on stderr saying why.

Every phase is bounded in time, and a watchdog thread kills the server and exits if the whole
run overruns its budget, so the soak stops even when the server hangs. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
from picows import WSCloseCode, WSListener, WSMsgType, WSTransport, ws_connect
from picows.url import WSParsedURL

from bench.loadgen import PHASE_TIMEOUT, process_cpu_seconds, process_rss_bytes
from bench.runner import BENCH, REPO, free_port, pinned, serving

SOAK_APP = BENCH / "soak_app"
#: The room the slow consumers join; its flood is not chat traffic and is not in the latencies.
HOT = "hot"
HOT_READERS = 3
#: Bytes of text in one flooded frame.
FLOOD_TEXT = 1000
#: The slow consumer's receive buffer. Setting it turns the kernel's autotuning off for that
#: socket (on loopback it grows to megabytes), so the server's socket fills after kilobytes.
SLOW_RCVBUF = 4096
#: How long after the cut the server's socket for the slow consumer is looked for: the server's
#: close_timeout (5 s, the default) for its close frame, and 2 s more.
SLOW_LINGER = 7.0
LINGER_KEY = f"server_socket_{SLOW_LINGER:.0f}s_after_cut"
#: A request to the server (status, probe) that takes longer than this counts as unanswered.
ASK_TIMEOUT = 5.0
#: How often the probe connection times a round trip.
PROBE_EVERY = 0.25
#: Fewer samples than this cannot be cut into thirds worth comparing.
MIN_SAMPLES = 6

CHAT_PREFIX = b'{"event":"chat"'
PRESENCE_PREFIX = b'{"event":"presence:'


# ---------------------------------------------------------------------------------------------
# The verdict.


@dataclass(frozen=True)
class Tolerance:
    """How much the last third may sit above the middle third before a metric "grows"."""

    share: float
    absolute: float
    #: Also require the median to be over the limit: for metrics where one spike is common.
    sustained: bool = False


@dataclass(frozen=True)
class Growth:
    """The middle and last thirds of one metric, the limit the last may reach, and the verdict."""

    middle: float
    last: float
    limit: float
    grows: bool


def growth(series: Sequence[float], tolerance: Tolerance) -> Growth:
    """Judge one metric's samples by the rule in the module docstring.

    Raises:
        ValueError: fewer than :data:`MIN_SAMPLES` samples.
    """
    if len(series) < MIN_SAMPLES:
        raise ValueError(f"{len(series)} samples; at least {MIN_SAMPLES} are needed")
    n = len(series)
    middle, last = series[n // 3 : 2 * n // 3], series[2 * n // 3 :]
    base = statistics.fmean(middle)
    limit = base + max(tolerance.share * abs(base), tolerance.absolute)
    grows = statistics.fmean(last) > limit
    if tolerance.sustained:
        grows = grows and statistics.median(last) > statistics.median(middle) + (limit - base)
    return Growth(round(base, 3), round(statistics.fmean(last), 3), round(limit, 3), grows)


#: The judged metrics: sample key, label, tolerance.
JUDGED: tuple[tuple[str, str, Tolerance], ...] = (
    ("rss_mib", "server RSS (MiB)", Tolerance(0.20, 50)),
    ("fds", "server open fds", Tolerance(0.05, 50)),
    ("server_connections", "connections the server holds", Tolerance(0.05, 50)),
    ("rooms", "rooms the server holds", Tolerance(0.05, 10)),
    ("loop_lag_p99_ms", "event-loop lag p99 (ms)", Tolerance(0.5, 10, sustained=True)),
    ("probe_rtt_p99_ms", "probe round trip p99 (ms)", Tolerance(0.5, 10, sustained=True)),
    ("delivery_p99_ms", "delivery latency p99 (ms)", Tolerance(0.5, 10, sustained=True)),
    ("gc_full_max_ms", "longest full-collection pause (ms)", Tolerance(0.5, 100, sustained=True)),
)
#: Judged on quiet windows without a full collection in the server (see the module docstring).
GC_FREE = frozenset({"loop_lag_p99_ms", "probe_rtt_p99_ms", "delivery_p99_ms"})
GC_PAUSE = "gc_full_max_ms"
#: A window in which the server waited for a core longer than this share of it was contended:
#: other work on the machine had the core, and its latencies say nothing about vws.
CONTENDED_PCT = 2.0


def quiet(row: dict[str, Any]) -> bool:
    return (row.get("server_wait_pct") or 0.0) <= CONTENDED_PCT


def judged_rows(samples: Sequence[dict[str, Any]], key: str) -> tuple[list[dict[str, Any]], str]:
    """The samples ``key`` is judged on, and which they are: ``all``, quiet windows ``without a
    full collection``, or quiet windows ``with a full collection`` (none, when too few)."""
    rows = [row for row in samples if row.get(key) is not None]
    if key == GC_PAUSE:
        with_gc = [row for row in rows if row.get("gc_full") and quiet(row)]
        return (with_gc if len(with_gc) >= MIN_SAMPLES else []), "quiet, with a full collection"
    if key in GC_FREE:
        clean = [row for row in rows if row.get("gc_full") == 0 and quiet(row)]
        if len(clean) >= MIN_SAMPLES:
            return clean, "quiet, without a full collection"
    return rows, "all"


# ---------------------------------------------------------------------------------------------
# Frames.


class Frame(msgspec.Struct, omit_defaults=True):
    """A client frame, as the wire protocol spells it."""

    event: str
    payload: Any = None
    room: str | None = None
    id: int | None = None


class ChatBody(msgspec.Struct):
    room: str
    text: str


class ChatFrame(msgspec.Struct):
    """The parts of a ``chat`` delivery the soak reads."""

    payload: ChatBody


class Reply(msgspec.Struct):
    """The parts of any other server frame the soak reads."""

    event: str
    id: int | None = None
    payload: Any = None


encode = msgspec.json.Encoder().encode
decode_chat = msgspec.json.Decoder(ChatFrame).decode
decode_reply = msgspec.json.Decoder(Reply).decode


# ---------------------------------------------------------------------------------------------
# What one sample window counts.


@dataclass
class Tally:
    """Counts of one sample window; :meth:`Soak.sample` starts a new one."""

    sent: int = 0
    deliveries: int = 0
    latencies: list[int] = field(default_factory=list)
    probe_rtts: list[int] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    moves: int = 0
    errors: int = 0
    stray: int = 0
    unexpected_closes: int = 0
    connect_failures: int = 0
    unanswered: int = 0


COUNTS = ("opened", "closed", "moves", "errors", "stray", "unexpected_closes", "connect_failures")
TOTALS = (*COUNTS, "sent", "deliveries", "unanswered")


def quantile_ms(sorted_ns: list[int], fraction: float) -> float | None:
    if not sorted_ns:
        return None
    return round(sorted_ns[min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))] / 1e6, 3)


# ---------------------------------------------------------------------------------------------
# One client connection.


class Member(WSListener):
    """One client: its room, the acks it waits for, and what it hears, counted in the soak."""

    def __init__(self, soak: Soak) -> None:
        super().__init__()
        self.soak = soak
        self.transport: WSTransport = None  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.room: str | None = None
        #: Leave frames not acknowledged yet: frame id → room. Until its ack, a room may be heard.
        self.leaving: dict[int, str] = {}
        self.waiters: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        #: Where this member sits in the soak's pool (-1: not in it).
        self.slot = -1
        #: The soak closed it, or expects the server to: its close is no surprise.
        self.expected_close = False
        self.close_code: int | None = None
        self.hot_heard = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type is WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value
            return
        if frame.msg_type is not WSMsgType.TEXT:
            return
        data = frame.get_payload_as_bytes()
        if data.startswith(CHAT_PREFIX):
            self.soak.heard_chat(self, data)
        elif not data.startswith(PRESENCE_PREFIX):
            self._reply(data)

    def _reply(self, data: bytes) -> None:
        reply = decode_reply(data)
        if reply.event == "ack" and reply.id is not None:
            self.leaving.pop(reply.id, None)
            waiter = self.waiters.pop(reply.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply.payload)
        elif reply.event == "connected":
            if not self.ready.done():
                self.ready.set_result(None)
        elif reply.event == "error":
            self.soak.saw_error(data)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.gone.done():
            self.gone.set_result(None)
        for future in (self.ready, *self.waiters.values()):
            if not future.done():
                future.set_exception(ConnectionError("disconnected"))
        self.waiters.clear()
        self.soak.lost(self)

    def send(self, frame: Frame) -> None:
        self.transport.send(WSMsgType.TEXT, encode(frame))

    def ask(self, frame: Frame) -> asyncio.Future[Any]:
        """Send ``frame`` with a new id; the future has the ack's payload."""
        self.next_id += 1
        frame.id = self.next_id
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters[frame.id] = waiter
        self.send(frame)
        return waiter

    async def join(self, room: str) -> None:
        self.room = room
        await asyncio.wait_for(self.ask(Frame("joinRoom", room=room)), PHASE_TIMEOUT)

    def move(self, room: str) -> None:
        """Leave the current room and join ``room``, without waiting for either ack."""
        if self.room is not None:
            self.next_id += 1
            self.leaving[self.next_id] = self.room
            self.send(Frame("leftRoom", room=self.room, id=self.next_id))
        self.room = room
        self.next_id += 1
        self.send(Frame("joinRoom", room=room, id=self.next_id))

    def close(self, graceful: bool = False) -> None:
        """Close with a close frame, or drop the TCP connection (``graceful=False``)."""
        self.expected_close = True
        if self.gone.done() or self.transport is None:
            return
        if graceful:
            self.transport.send_close(WSCloseCode.OK)
        self.transport.disconnect(graceful=graceful)


class Pool:
    """The members chat, moves and churn pick from at random: add, remove and pick in O(1)."""

    def __init__(self, rng: random.Random) -> None:
        self.members: list[Member] = []
        self.rng = rng

    def add(self, member: Member) -> None:
        member.slot = len(self.members)
        self.members.append(member)

    def remove(self, member: Member) -> None:
        if member.slot < 0:
            return
        last = self.members.pop()
        if last is not member:
            self.members[member.slot] = last
            last.slot = member.slot
        member.slot = -1

    def pick(self) -> Member | None:
        return self.rng.choice(self.members) if self.members else None

    def __len__(self) -> int:
        return len(self.members)


def small_buffer_socket(url: WSParsedURL) -> socket.socket:
    """An unconnected socket with a tiny receive buffer (picows connects it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    return sock


# ---------------------------------------------------------------------------------------------
# The server, seen from outside.


def server_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def process_wait_seconds(pid: int) -> float:
    """Time the process's threads were runnable but waited for a core (``schedstat``'s second
    field): high when other work shares the server's core, whatever the server does."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with (
            contextlib.suppress(FileNotFoundError, IndexError),
            open(f"/proc/{pid}/task/{task}/schedstat") as schedstat,
        ):
            total += int(schedstat.read().split()[1])
    return total / 1e9


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def server_socket_state(pid: int, server_port: int, client_port: int) -> str:
    """What became of the server's end of one connection: ``held`` (its fd is still open, with
    the TCP state), ``orphan`` (closed by the server, the kernel still flushing it) or ``gone``."""
    states = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT"}
    states |= {"07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0B": "CLOSING"}
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if int(local.split(":")[1], 16) != server_port:
                continue
            if int(remote.split(":")[1], 16) != client_port:
                continue
            name = states.get(state, state)
            if inode != "0" and _holds_inode(pid, inode):
                return f"held ({name})"
            return f"orphan ({name})"
    return "gone"


def _holds_inode(pid: int, inode: str) -> bool:
    wanted = f"socket:[{inode}]"
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                return True
    return False


async def get_json(port: int, path: str) -> Any:
    """GET ``path`` from the server (HTTP/1.1, ``Connection: close``), as JSON."""
    async with asyncio.timeout(ASK_TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode())
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path}: {head.splitlines()[0] if head else b'no answer'!r}")
    return json.loads(body)


# ---------------------------------------------------------------------------------------------
# The soak.


@dataclass
class Options:
    connections: int
    duration: float
    rooms: int
    churn: float
    slow_every: float
    sample: float
    rate: float
    moves: float
    flood_rate: float
    slow_timeout: float
    concurrency: int
    seed: int


class SoakError(Exception):
    """The soak cannot go on (the server died, clients could not connect): the reason."""


class Soak:
    """The clients, the load they make, and what each sample window saw."""

    def __init__(self, opts: Options, pid: int, port: int) -> None:
        self.opts = opts
        self.pid = pid
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.rng = random.Random(opts.seed)
        self.pool = Pool(self.rng)
        self.everyone: set[Member] = set()
        self.hot: list[Member] = []
        self.probe: Member | None = None
        self.window = Tally()
        self.samples: list[dict[str, Any]] = []
        self.episodes: list[dict[str, Any]] = []
        self.totals: dict[str, int] = dict.fromkeys(TOTALS, 0)
        self.error_examples: list[str] = []
        self.flood_sent = 0
        #: Replacements being opened, and those owed because too many already were.
        self.opening = 0
        self.owed = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        #: The slow-consumer episode under way, if any.
        self.episode: asyncio.Task[dict[str, Any]] | None = None
        self.clock = time.perf_counter_ns
        self.loop = asyncio.get_running_loop()
        self.started = 0.0

    # -- what members report -----------------------------------------------------------------

    def heard_chat(self, member: Member, data: bytes) -> None:
        body = decode_chat(data).payload
        if body.room == HOT:
            member.hot_heard += 1
            return
        window = self.window
        if body.room != member.room and body.room not in member.leaving.values():
            window.stray += 1
        window.deliveries += 1
        window.latencies.append(self.clock() - int(body.text))

    def saw_error(self, data: bytes) -> None:
        self.window.errors += 1
        if len(self.error_examples) < 5:
            self.error_examples.append(data[:300].decode(errors="replace"))

    def lost(self, member: Member) -> None:
        self.pool.remove(member)
        self.everyone.discard(member)
        if not member.expected_close:
            self.window.unexpected_closes += 1
            if len(self.error_examples) < 5:
                self.error_examples.append(f"closed by the server, code {member.close_code}")

    # -- clients -----------------------------------------------------------------------------

    async def open(self, room: str, **connect: Any) -> Member:
        """A connected member, joined to ``room``."""
        _, member = await ws_connect(
            lambda: Member(self), self.url, websocket_handshake_timeout=PHASE_TIMEOUT, **connect
        )
        assert isinstance(member, Member)
        self.everyone.add(member)
        try:
            await asyncio.wait_for(member.ready, PHASE_TIMEOUT)
            await member.join(room)
        except BaseException:
            member.close()
            raise
        return member

    async def setup(self) -> None:
        """The probe, the hot room's readers and every member, joined round robin to the rooms."""
        self.probe = await self.open("probe")
        self.hot = [await self.open(HOT) for _ in range(HOT_READERS)]
        gate = asyncio.Semaphore(self.opts.concurrency)

        async def one(index: int) -> None:
            async with gate:
                self.pool.add(await self.open(f"room-{index % self.opts.rooms}"))

        budget = PHASE_TIMEOUT + self.opts.connections / 100
        results = await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(self.opts.connections)), return_exceptions=True),
            budget,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise SoakError(
                f"only {len(self.pool)} of {self.opts.connections} clients connected; "
                f"first failure: {failed[0]!r}"
            )
        # 5000 long-lived listeners would otherwise be walked by every full collection of this
        # process, and its pauses would show as delivery latency.
        gc.collect()
        gc.freeze()

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def random_room(self) -> str:
        return f"room-{self.rng.randrange(self.opts.rooms)}"

    # -- the load ----------------------------------------------------------------------------

    async def every(self, rate: float, act: Callable[[], None]) -> None:
        """Call ``act`` ``rate`` times a second, catching up after a late wake-up (at most 1 s
        of calls at once)."""
        if rate <= 0:
            return
        owed, last = 0.0, self.loop.time()
        while True:
            await asyncio.sleep(max(0.01, 1 / rate))
            now = self.loop.time()
            owed = min(owed + rate * (now - last), max(rate, 1.0))
            last = now
            while owed >= 1:
                owed -= 1
                act()

    def chat(self) -> None:
        member = self.pool.pick()
        if member is None or member.room is None:
            return
        payload = {"room": member.room, "text": str(self.clock())}
        member.send(Frame("chat", payload))
        self.window.sent += 1

    def move(self) -> None:
        member = self.pool.pick()
        if member is None:
            return
        room = self.random_room()
        if room != member.room:
            member.move(room)
            self.window.moves += 1

    def churn(self) -> None:
        member = self.pool.pick()
        if member is not None:
            self.pool.remove(member)
            self.everyone.discard(member)
            member.close(graceful=self.window.closed % 2 == 0)
            self.window.closed += 1
        self.owed += 1
        self.top_up()

    def top_up(self) -> None:
        """Open the replacements owed, at most a few seconds of churn at once: a server that
        stalls must not get a pile of connects, nor may the soak quietly shrink meanwhile."""
        while self.owed and self.opening < max(10, 4 * self.opts.churn):
            self.owed -= 1
            self.opening += 1
            self.spawn(self.replace())

    async def replace(self) -> None:
        try:
            self.pool.add(await self.open(self.random_room()))
            self.window.opened += 1
        except Exception as error:
            self.window.connect_failures += 1
            if len(self.error_examples) < 5:
                self.error_examples.append(f"connect failed: {error!r}")
        finally:
            self.opening -= 1
            self.top_up()

    async def probing(self) -> None:
        assert self.probe is not None
        while True:
            await asyncio.sleep(PROBE_EVERY)
            started = self.clock()
            try:
                await asyncio.wait_for(self.probe.ask(Frame("probe", started)), ASK_TIMEOUT)
            except (TimeoutError, ConnectionError):
                self.window.unanswered += 1
                continue
            self.window.probe_rtts.append(self.clock() - started)

    # -- slow consumers ----------------------------------------------------------------------

    async def slow_consumers(self) -> None:
        """One episode every ``--slow-every`` seconds, never two at once."""
        every = self.opts.slow_every
        if every <= 0:
            return
        due = self.loop.time() + every
        while True:
            await asyncio.sleep(max(0.0, due - self.loop.time()))
            self.episode = self.spawn(self.slow_episode())
            self.episodes.append(await asyncio.shield(self.episode))
            self.episode = None
            due = max(due + every, self.loop.time())

    async def slow_episode(self) -> dict[str, Any]:
        """A client joins the hot room and stops reading; the room is flooded until the server
        cuts it. Then: does the server still hold its socket, and does the client, reading
        again, hear the close?"""
        record: dict[str, Any] = {"at_s": round(self.loop.time() - self.started, 1), "cut": False}
        try:
            before = (await get_json(self.port, "/_vws/status"))["totals"]["slow_consumers"]
            slow = await self.open(HOT, socket_factory=small_buffer_socket)
        except Exception as error:
            record["error"] = repr(error)
            return record
        slow.expected_close = True
        client_port = slow.transport.underlying_transport.get_extra_info("sockname")[1]
        slow.transport.underlying_transport.pause_reading()
        started = self.loop.time()
        flood = self.spawn(self.flood())
        try:
            record["cut"] = await self.wait_for_cut(before, started + self.opts.slow_timeout)
        finally:
            flood.cancel()
        record["cut_after_s"] = round(self.loop.time() - started, 2)
        if record["cut"]:
            await asyncio.sleep(SLOW_LINGER)
            record[LINGER_KEY] = server_socket_state(self.pid, self.port, client_port)
        slow.transport.underlying_transport.resume_reading()
        try:
            await asyncio.wait_for(asyncio.shield(slow.gone), PHASE_TIMEOUT / 2)
            record["closed_once_read"] = True
        except TimeoutError:
            record["closed_once_read"] = False
            slow.close()
        record["close_code"] = slow.close_code
        return record

    async def wait_for_cut(self, before: int, deadline: float) -> bool:
        """Whether ``/_vws/status`` counts one more slow consumer before ``deadline``."""
        for _ in range(int(self.opts.slow_timeout / 0.25) + 1):
            with contextlib.suppress(Exception):
                status = await get_json(self.port, "/_vws/status")
                if status["totals"]["slow_consumers"] > before:
                    return True
            if self.loop.time() >= deadline:
                return False
            await asyncio.sleep(0.25)
        return False

    async def flood(self) -> None:
        """The hot room's first reader sends ``--flood-rate`` frames a second to the room."""
        publisher = self.hot[0]
        frame = Frame("chat", {"room": HOT, "text": "x" * FLOOD_TEXT})

        def send() -> None:
            publisher.send(frame)
            self.flood_sent += 1

        await self.every(self.opts.flood_rate, send)

    async def hot_readers_caught_up(self) -> bool:
        """Whether every healthy hot reader heard every flooded frame (waits up to 10 s)."""
        for _ in range(100):
            if all(reader.hot_heard >= self.flood_sent for reader in self.hot):
                return True
            await asyncio.sleep(0.1)
        return False

    # -- sampling ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Load, churn, probes and slow consumers, until the last sample or the server dies."""
        opts = self.opts
        self.started = self.loop.time()
        background = [
            self.spawn(self.every(opts.rate, self.chat)),
            self.spawn(self.every(opts.moves, self.move)),
            self.spawn(self.every(opts.churn, self.churn)),
            self.spawn(self.probing()),
        ]
        scheduler = self.spawn(self.slow_consumers())
        sampler = self.spawn(self.sampling())
        watcher = self.spawn(self.watch_server())
        try:
            done, _ = await asyncio.wait({sampler, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done or not server_alive(self.pid):
                raise SoakError(f"the server (pid {self.pid}) died")
            sampler.result()
        finally:
            for task in (*background, scheduler, sampler, watcher):
                task.cancel()
        # An episode under way is finished: its verdict is part of the run.
        episode = self.episode
        if episode is not None:
            bound = opts.slow_timeout + SLOW_LINGER + PHASE_TIMEOUT
            try:
                self.episodes.append(await asyncio.wait_for(episode, bound))
            except TimeoutError:
                self.episodes.append({"at_s": None, "cut": False, "error": "did not finish"})

    async def watch_server(self) -> None:
        """Return when the server process ends (its pidfd turns readable)."""
        pidfd = os.pidfd_open(self.pid)
        ended = self.loop.create_future()
        self.loop.add_reader(pidfd, lambda: ended.done() or ended.set_result(None))
        try:
            await ended
        finally:
            self.loop.remove_reader(pidfd)
            os.close(pidfd)

    async def sampling(self) -> None:
        count = int(self.opts.duration // self.opts.sample)
        clocks = self.clocks()
        for index in range(1, count + 1):
            due = self.started + index * self.opts.sample
            await asyncio.sleep(max(0.0, due - self.loop.time()))
            clocks = await self.sample(clocks)

    def clocks(self) -> tuple[float, float, float]:
        """The server's CPU and run-queue wait, and this process's CPU, in seconds so far."""
        return process_cpu_seconds(self.pid), process_wait_seconds(self.pid), time.process_time()

    async def sample(self, before: tuple[float, float, float]) -> tuple[float, float, float]:
        window, self.window = self.window, Tally()
        elapsed = self.opts.sample
        now = self.clocks()
        (cpu0, wait0, own0), (cpu, wait, own) = before, now
        row: dict[str, Any] = {
            "t_s": round(self.loop.time() - self.started, 1),
            "clients": len(self.everyone),
            "opening": self.opening + self.owed,
            "load_1m": round(os.getloadavg()[0], 2),
            "server_connections": None,
            "rooms": None,
            "rss_mib": round(process_rss_bytes(self.pid) / 2**20, 1),
            "fds": open_fds(self.pid),
            "server_cpu_pct": round(100 * (cpu - cpu0) / elapsed, 1),
            "server_wait_pct": round(100 * (wait - wait0) / elapsed, 1),
            "client_cpu_pct": round(100 * (own - own0) / elapsed, 1),
        }
        try:
            status = await get_json(self.port, "/_vws/status")
            row["server_connections"] = status["connections"]
            row["rooms"] = status["rooms"]["count"]
            row["slow_consumers_cut"] = status["totals"]["slow_consumers"]
        except Exception:
            window.unanswered += 1
        lag: dict[str, Any] = {}
        try:
            assert self.probe is not None
            lag = await asyncio.wait_for(self.probe.ask(Frame("loop-lag")), ASK_TIMEOUT)
        except (TimeoutError, ConnectionError):
            window.unanswered += 1
        row["loop_lag_mean_ms"] = lag.get("mean_ms")
        row["loop_lag_p99_ms"] = lag.get("p99_ms")
        row["loop_lag_max_ms"] = lag.get("max_ms")
        row["gc_full"] = lag.get("gc_full")
        row["gc_full_max_ms"] = lag.get("gc_full_max_ms")
        rtts = sorted(window.probe_rtts)
        row["probe_rtt_p99_ms"] = quantile_ms(rtts, 0.99)
        row["probe_rtt_max_ms"] = quantile_ms(rtts, 1.0)
        latencies = sorted(window.latencies)
        row["sent_per_s"] = round(window.sent / elapsed, 1)
        row["delivered_per_s"] = round(window.deliveries / elapsed, 1)
        row["delivery_p50_ms"] = quantile_ms(latencies, 0.50)
        row["delivery_p99_ms"] = quantile_ms(latencies, 0.99)
        row["delivery_max_ms"] = quantile_ms(latencies, 1.0)
        for name in COUNTS:
            row[name] = getattr(window, name)
        row["unanswered"] = window.unanswered
        for name in TOTALS:
            self.totals[name] += getattr(window, name)
        self.samples.append(row)
        print(sample_line(row), file=sys.stderr, flush=True)
        return now

    async def teardown(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for member in list(self.everyone):
            member.close()
        self.everyone.clear()


def sample_line(row: dict[str, Any]) -> str:
    def shown(key: str, digits: int = 1) -> str:
        value = row.get(key)
        return "—" if value is None else f"{value:,.{digits}f}"

    return (
        f"soak t={row['t_s']:>6.0f}s load {row['load_1m']:.1f} clients {row['clients']:>5} "
        f"server {row['server_connections']} conns {row['rooms']} rooms "
        f"rss {row['rss_mib']:.1f} MiB fds {row['fds']} cpu {row['server_cpu_pct']:.0f}% | "
        f"lag p99 {shown('loop_lag_p99_ms')} ms max {shown('loop_lag_max_ms')} ms "
        f"(full gc {row['gc_full']}, {shown('gc_full_max_ms')} ms) "
        f"rtt p99 {shown('probe_rtt_p99_ms')} ms | "
        f"delivered {row['delivered_per_s']:,.0f}/s p99 {shown('delivery_p99_ms')} ms | "
        f"open {row['opened']} close {row['closed']} (opening {row['opening']}) "
        f"moves {row['moves']} "
        f"errors {row['errors']} unexpected closes {row['unexpected_closes']} "
        f"stray {row['stray']} failed connects {row['connect_failures']}"
    )


# ---------------------------------------------------------------------------------------------
# The summary and the verdict.


def judge(soak: Soak, hot_caught_up: bool) -> tuple[list[str], dict[str, Any]]:
    """The reasons the run failed (none: it passed) and each judged metric's thirds."""
    reasons: list[str] = []
    thirds: dict[str, Any] = {}
    samples = soak.samples
    if len(samples) < MIN_SAMPLES:
        reasons.append(f"{len(samples)} samples; at least {MIN_SAMPLES} are needed to judge growth")
    else:
        for key, label, tolerance in JUDGED:
            rows, which = judged_rows(samples, key)
            if key == GC_PAUSE and not rows:
                continue  # few or no full collections: nothing to judge, nothing wrong
            if len(rows) < MIN_SAMPLES:
                reasons.append(f"{label}: only {len(rows)} samples have it")
                continue
            series = [row[key] for row in rows]
            verdict = growth(series, tolerance)
            judged = rows[len(rows) // 3 :]
            slope = statistics.linear_regression(
                [row["t_s"] / 60 for row in judged], [row[key] for row in judged]
            ).slope
            thirds[key] = asdict(verdict) | {
                "windows": f"{len(rows)} ({which})",
                "slope_per_min": round(slope, 3),
            }
            if verdict.grows:
                reasons.append(
                    f"{label} grows: last third {verdict.last:g} over the limit {verdict.limit:g} "
                    f"(middle third {verdict.middle:g})"
                )
    expected = int(soak.opts.duration // soak.opts.slow_every) if soak.opts.slow_every > 0 else 0
    if expected and not soak.episodes:
        reasons.append("no slow consumer was run")
    for episode in soak.episodes:
        if not episode["cut"]:
            reasons.append(
                f"the slow consumer of t={episode['at_s']}s was not cut "
                f"within {soak.opts.slow_timeout:g} s ({episode.get('error', 'still connected')})"
            )
    if not hot_caught_up:
        heard = [reader.hot_heard for reader in soak.hot]
        reasons.append(f"healthy hot-room readers heard {heard} of {soak.flood_sent} frames")
    totals = soak.totals
    for name, what in (
        ("errors", "error frames"),
        ("stray", "stray deliveries (a room heard after leaving it)"),
        ("unexpected_closes", "closes the soak did not ask for"),
        ("connect_failures", "failed connects"),
        ("unanswered", "unanswered samples or probes"),
    ):
        if totals[name]:
            reasons.append(f"{totals[name]} {what}")
    return reasons, thirds


def notes(soak: Soak) -> list[str]:
    """What the run showed that the verdict does not judge, but an operator should know."""
    found = []
    held = [e for e in soak.episodes if str(e.get(LINGER_KEY, "")).startswith("held")]
    if held:
        found.append(
            f"{len(held)} of {len(soak.episodes)} cut slow consumers still had their socket open "
            f"in the server {SLOW_LINGER:g} s after the cut; it closed once the client read again"
        )
    if soak.samples:
        loads = [row["load_1m"] for row in soak.samples]
        found.append(
            f"machine load average (1 min) {min(loads):g} to {max(loads):g} over the samples; "
            f"above {os.cpu_count() or 1} the soak shared its cores with other work"
        )
    pauses = [row["gc_full_max_ms"] for row in soak.samples if row.get("gc_full")]
    if pauses:
        count = sum(row["gc_full"] for row in soak.samples if row.get("gc_full"))
        found.append(
            f"{count} full garbage collections in the server, the longest {max(pauses):g} ms "
            f"(median of the per-sample longest {statistics.median(pauses):g} ms)"
        )
    return found


def table(samples: list[dict[str, Any]], thirds: dict[str, Any]) -> str:
    """First, middle and last sample of every metric, the judged thirds and their limits."""
    if not samples:
        return "no samples"
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    lines = [
        f"first, middle and last sample: t = {first['t_s']} s, {middle['t_s']} s, {last['t_s']} s",
        "",
        "| metric | first | middle | last | middle third | last third | limit | grows | per min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in (k for k in first if k != "t_s"):
        judged = thirds.get(key)
        cells = [_cell(s.get(key)) for s in (first, middle, last)]
        if judged:
            cells += [_cell(judged["middle"]), _cell(judged["last"]), _cell(judged["limit"])]
            cells.append("YES" if judged["grows"] else "no")
            cells.append(f"{judged['slope_per_min']:+g}")
        else:
            cells += ["", "", "", "", ""]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


# ---------------------------------------------------------------------------------------------


def serve_command(port: int, core: int | None) -> list[str]:
    config = SOAK_APP / "routes.toml"
    run = [sys.executable, "-m", "vws.cli", "run", "--config", str(config), "--port", str(port)]
    return pinned(core, [*run, "--no-watch", "--log-level", "warning"])


async def drive(opts: Options, pid: int, port: int) -> dict[str, Any]:
    soak = Soak(opts, pid, port)
    failure: str | None = None
    hot_caught_up = True
    try:
        began = soak.loop.time()
        await soak.setup()
        print(
            f"soak: {len(soak.everyone)} clients connected in {soak.loop.time() - began:.1f} s; "
            f"running {opts.duration:g} s",
            file=sys.stderr,
            flush=True,
        )
        await soak.run()
        hot_caught_up = await soak.hot_readers_caught_up()
        if any(reader.gone.done() for reader in soak.hot):
            failure = "a healthy reader of the hot room was closed"
    except SoakError as error:
        failure = str(error)
    except TimeoutError:
        failure = f"a phase overran its time bound ({len(soak.everyone)} clients connected)"
    finally:
        await soak.teardown()
    reasons, thirds = judge(soak, hot_caught_up)
    if failure:
        reasons.insert(0, failure)
    return {
        "options": asdict(opts),
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "ok": not reasons,
        "reasons": reasons,
        "notes": notes(soak),
        "thirds": thirds,
        "totals": soak.totals | {"flood_sent": soak.flood_sent},
        "slow_consumers": soak.episodes,
        "error_examples": soak.error_examples,
        "samples": soak.samples,
    }


def watchdog(budget: float, server: Callable[[], int | None]) -> threading.Timer:
    """After ``budget`` seconds, kill the server and exit: the soak stops even if it hangs."""

    def fire() -> None:
        print(f"soak: FAIL: the run overran its {budget:.0f} s budget", file=sys.stderr, flush=True)
        pid = server()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os._exit(1)

    timer = threading.Timer(budget, fire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--connections", type=int, default=5000, help="members (5000)")
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (600)")
    parser.add_argument("--rooms", type=int, default=200, help="chat rooms (200)")
    parser.add_argument("--churn", type=float, default=50, help="closed and reopened /s (50)")
    parser.add_argument("--slow-every", type=float, default=60, help="seconds; 0: none (60)")
    parser.add_argument("--sample", type=float, default=10, help="seconds between samples (10)")
    parser.add_argument("--rate", type=float, default=400, help="chat messages /s (400)")
    parser.add_argument("--moves", type=float, default=20, help="room changes /s (20)")
    parser.add_argument("--flood-rate", type=float, default=2000, help="hot-room frames /s (2000)")
    parser.add_argument("--slow-timeout", type=float, default=30, help="seconds to cut (30)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes at once (100)")
    parser.add_argument("--seed", type=int, default=0, help="of the random picks (0)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    opts = Options(
        connections=args.connections,
        duration=args.duration,
        rooms=args.rooms,
        churn=args.churn,
        slow_every=args.slow_every,
        sample=args.sample,
        rate=args.rate,
        moves=args.moves,
        flood_rate=args.flood_rate,
        slow_timeout=args.slow_timeout,
        concurrency=args.concurrency,
        seed=args.seed,
    )
    if opts.connections < 1 or opts.rooms < 1 or opts.sample <= 0 or opts.duration <= 0:
        parser.error("--connections, --rooms, --sample and --duration must be positive")
    # 5000 clients here and 5000 sockets in the server (which inherits the limit): far past
    # the usual soft limit of 1024 descriptors.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < opts.connections + 100:
        parser.error(f"RLIMIT_NOFILE's hard limit is {hard}: too few for {opts.connections}")
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SOAK_APP), str(REPO)]),
        "VWS_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    budget = PHASE_TIMEOUT + opts.connections / 100 + opts.duration
    budget += opts.slow_timeout + SLOW_LINGER + 3 * PHASE_TIMEOUT
    server_pid: list[int] = []
    timer = watchdog(budget, lambda: server_pid[0] if server_pid else None)
    if pin:
        os.sched_setaffinity(0, {1})
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    try:
        with serving(serve_command(port, 0 if pin else None), port, env) as pid:
            server_pid.append(pid)
            summary = runner(drive(opts, pid, port))
            summary["machine"]["pinned"] = pin
    finally:
        timer.cancel()
    text = json.dumps(summary)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")
    print(text, flush=True)
    print(file=sys.stderr)
    print(table(summary["samples"], summary["thirds"]), file=sys.stderr)
    for episode in summary["slow_consumers"]:
        print(f"slow consumer: {episode}", file=sys.stderr)
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if summary["reasons"]:
        print(f"soak: FAIL: {'; '.join(summary['reasons'])}", file=sys.stderr, flush=True)
        return 1
    print("soak: PASS: nothing grew without bound", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a node counts, and ``GET /metrics`` in the Prometheus text format.

Two halves, so that the hot path never pays for Prometheus:

- :class:`Stats` is plain dicts and ints that the connection, the fan-out and the reloader bump
  inline (a tuple and a dict increment per frame). It also keeps the last minutes of totals for
  the status page's rates.
- :class:`Exporter` turns those counts into prometheus-client metrics. It is *flushed*: once a
  second, and right before each scrape, it adds what changed since the last flush. Under
  ``vws run --workers N`` prometheus-client's multiprocess mode is on (the supervisor sets
  ``PROMETHEUS_MULTIPROC_DIR``), each worker's flushes land in its own files, and a scrape of
  any worker adds up every worker's files.

Labels come only from bounded sets: route paths and event names declared in routes.toml, the
protocol's built-in events and error codes, the four send kinds. Anything else is ``_unknown``.
Rooms, clients and users never become labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import itertools
import os
import re
import shutil
import tempfile
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from vws.protocol import JOIN_EVENTS, LEAVE_EVENTS

if TYPE_CHECKING:
    from vws.dispatch import DispatchTable
    from vws.server import Server

#: The label of an event, error code or route that is not in a bounded set.
UNKNOWN = "_unknown"
#: Upper bounds of the handler duration histogram (seconds).
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BOUNDS = (*DURATION_BUCKETS, float("inf"))
#: Error codes of the wire protocol (SPEC section 1); other codes count as ``_unknown``.
ERROR_CODES = frozenset(
    {
        "bad_json",
        "bad_frame",
        "unknown_event",
        "reserved_event",
        "invalid_payload",
        "bad_room",
        "too_many_rooms",
        "join_denied",
        "denied",
        "rate_limited",
        "handler_error",
    }
)
BUILTIN_EVENTS = JOIN_EVENTS | LEAVE_EVENTS
#: How often totals are sampled for the status page and flushed to Prometheus (seconds).
TICK = 1.0
#: How many samples are kept: the status page shows this many seconds of rates.
HISTORY = 300
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

Key = tuple[str, str]


def config_hash(table: DispatchTable) -> str:
    """sha256 of the routes.toml a table came from (what ``sha256sum routes.toml`` prints).

    A table not read from a file hashes the configuration it holds instead.
    """
    try:
        data = Path(table.config.source).read_bytes()
    except OSError:
        data = msgspec.json.encode(msgspec.structs.replace(table.config, lines={}))
    return hashlib.sha256(data).hexdigest()


class Stats:
    """One node's counters: bumped inline by the hot path, read by the status page and flushes."""

    def __init__(self, table: DispatchTable) -> None:
        #: (route, event) → frames received; route and event come from bounded sets.
        self.received: dict[Key, int] = {}
        #: (route, kind) → frames handed to the fan-out (emit, room, to, broadcast).
        self.sent: dict[Key, int] = {}
        #: (route, code) → error frames sent.
        self.errors: dict[Key, int] = {}
        #: (route, event) → times the handler raised.
        self.failures: dict[Key, int] = {}
        #: (route, event) → handler duration bucket counts, then the sum of seconds last.
        self.durations: dict[Key, list[float]] = {}
        #: Frames written to sockets.
        self.written = 0
        self.connections_opened = 0
        #: Close code of a refused handshake → how many.
        self.refused: dict[int, int] = {}
        self.slow_consumers = 0
        self.reloads = {"applied": 0, "refused": 0}
        self.started_at = time.time()
        #: (unix time, frames received, frames written) once a :data:`TICK`.
        self.history: deque[tuple[float, int, int]] = deque(maxlen=HISTORY + 1)
        self.table = table
        self.config_hash = config_hash(table)
        self.loaded_at = self.started_at
        self.reloaded_at: float | None = None

    # The hot path: one call per frame, a dict increment inside.

    def message(self, path: str, event: str) -> None:
        """A frame for ``event`` arrived on ``path``."""
        try:
            self.received[path, event] += 1
        except KeyError:  # the first of its kind: is the event declared?
            key = (path, self._event_label(path, event))
            self.received[key] = self.received.get(key, 0) + 1

    def error(self, path: str, code: str) -> None:
        """An error frame with ``code`` was sent to a client of ``path``."""
        key = (path, code if code in ERROR_CODES else UNKNOWN)
        self.errors[key] = self.errors.get(key, 0) + 1

    def handled(self, path: str, event: str, seconds: float) -> None:
        """The handler of ``event`` (a declared event) ran for ``seconds``."""
        try:
            buckets = self.durations[path, event]
        except KeyError:
            buckets = self.durations[path, event] = [0.0] * (len(_BOUNDS) + 1)
        buckets[bisect_left(_BOUNDS, seconds)] += 1
        buckets[-1] += seconds

    def failed(self, path: str, event: str) -> None:
        """The handler of ``event`` (a declared event) raised."""
        key = (path, event)
        self.failures[key] = self.failures.get(key, 0) + 1

    def delivered(self, path: str, kind: str) -> None:
        """A frame of ``kind`` from a client (or the publish API) of ``path`` went to fan-out."""
        try:
            self.sent[path, kind] += 1
        except KeyError:
            self.sent[path, kind] = 1

    # Lifecycle: not per frame.

    def refusal(self, code: int) -> None:
        """A handshake was refused with ``code`` (close code, or 403 for an Origin)."""
        self.refused[code] = self.refused.get(code, 0) + 1

    def reloaded(self, table: DispatchTable) -> None:
        """A reload swapped ``table`` in."""
        self.table = table
        self.config_hash = config_hash(table)
        self.reloaded_at = self.loaded_at = time.time()
        self.reloads["applied"] += 1

    def reload_refused(self) -> None:
        self.reloads["refused"] += 1

    def _event_label(self, path: str, event: str) -> str:
        route = self.table.routes.get(path)
        if event in BUILTIN_EVENTS or (route is not None and event in route.events):
            return event
        return UNKNOWN

    # Reading.

    def tick(self, now: float | None = None) -> None:
        """Sample the totals for the rates (called once a :data:`TICK`)."""
        self.history.append(
            (time.time() if now is None else now, sum(self.received.values()), self.written)
        )

    def rates(self) -> dict[str, list[float]]:
        """Frames in and out per second, oldest first, one value per :data:`TICK`."""
        samples = list(self.history)
        result: dict[str, list[float]] = {"t": [], "in": [], "out": []}
        for (t0, in0, out0), (t1, in1, out1) in itertools.pairwise(samples):
            span = max(t1 - t0, 1e-9)
            result["t"].append(round(t1, 3))
            result["in"].append(round((in1 - in0) / span, 2))
            result["out"].append(round((out1 - out0) / span, 2))
        return result

    def latency(self, path: str, event: str) -> dict[str, Any] | None:
        """Count, mean and bucket-estimated p50/p95/p99 (ms) of a handler's durations."""
        buckets = self.durations.get((path, event))
        if buckets is None:
            return None
        counts = buckets[:-1]
        total = int(sum(counts))
        if not total:
            return None
        result: dict[str, Any] = {"count": total, "mean_ms": round(buckets[-1] / total * 1000, 3)}
        for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            seen = 0.0
            for bound, count in zip(_BOUNDS, counts, strict=False):
                seen += count
                if seen >= q * total:
                    result[name] = None if bound == float("inf") else bound * 1000
                    break
        return result


def multiprocess_dir() -> str | None:
    """The folder of prometheus-client's multiprocess mode, when it is on."""
    return os.environ.get(MULTIPROC_ENV) or None


@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[None]:
    """Around a ``--workers`` supervisor: give its workers one fresh multiprocess folder.

    A folder the user set in ``PROMETHEUS_MULTIPROC_DIR`` is used as is and left in place.
    """
    if multiprocess_dir() is not None:
        yield
        return
    folder = tempfile.mkdtemp(prefix="vws-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


_LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db$")


def _forget_dead_workers(folder: str) -> None:
    """Drop the gauges of workers that died without a clean stop (their counters stay)."""
    from prometheus_client import multiprocess

    for name in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        match = _LIVE_FILE.search(name)
        if match is None:
            continue
        pid = int(match[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)
        except PermissionError:
            pass


class Exporter:
    """prometheus-client metrics fed from a :class:`Stats` by flushes."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # the *_created series only double what a scrape carries
        self.multiprocess = multiprocess_dir()
        self.registry = CollectorRegistry()
        r = self.registry
        live = {"multiprocess_mode": "livesum"}
        self.connections = Gauge("vws_connections", "Connected clients.", registry=r, **live)
        self.rooms = Gauge("vws_rooms", "Rooms with members on this node.", registry=r, **live)
        self.opened = Counter(
            "vws_connections_opened", "Clients accepted and registered.", registry=r
        )
        self.refused = Counter(
            "vws_connections_refused", "Handshakes refused, by close code.", ["code"], registry=r
        )
        self.received = Counter(
            "vws_messages_received",
            "Frames received, by route and event.",
            ["route", "event"],
            registry=r,
        )
        self.sent = Counter(
            "vws_frames_sent",
            "Frames sent through the fan-out, by route and kind (each counted once, however "
            "many clients receive it).",
            ["route", "kind"],
            registry=r,
        )
        self.written = Counter("vws_frames_written", "Frames written to sockets.", registry=r)
        self.errors = Counter(
            "vws_errors", "Error frames sent, by route and code.", ["route", "code"], registry=r
        )
        self.durations = Histogram(
            "vws_handler_duration_seconds",
            "Handler run time, by route and event.",
            ["route", "event"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.slow = Counter(
            "vws_slow_consumer_disconnects", "Clients closed with 1008 for not reading.", registry=r
        )
        self.reloads = Counter(
            "vws_reloads", "routes.toml reloads, by result.", ["result"], registry=r
        )
        self.backplane_failures = Counter(
            "vws_backplane_publish_failures",
            "Envelopes the backplane could not publish to other nodes.",
            registry=r,
        )
        #: What was flushed so far, per counter, so a flush adds only the difference.
        self._flushed: dict[Any, float] = {}
        self._durations_flushed: dict[Key, list[float]] = {}

    def _add(self, counter: Any, labels: tuple[str, ...], total: float) -> None:
        key = (counter, labels)
        delta = total - self._flushed.get(key, 0)
        if delta > 0:
            (counter.labels(*labels) if labels else counter).inc(delta)
            self._flushed[key] = total

    def flush(self, server: Server) -> None:
        """Add what ``server.stats`` counted since the last flush; set the gauges."""
        stats = server.stats
        self.connections.set(len(server.hub.clients))
        self.rooms.set(len(server.hub.rooms))
        self._add(self.opened, (), stats.connections_opened)
        self._add(self.written, (), stats.written)
        self._add(self.slow, (), stats.slow_consumers)
        for code, count in list(stats.refused.items()):
            self._add(self.refused, (str(code),), count)
        for (path, event), count in list(stats.received.items()):
            self._add(self.received, (path, event), count)
        for (path, kind), count in list(stats.sent.items()):
            self._add(self.sent, (path, kind), count)
        for (path, code), count in list(stats.errors.items()):
            self._add(self.errors, (path, code), count)
        for result, count in stats.reloads.items():
            self._add(self.reloads, (result,), count)
        failures = server.backplane.stats().get("dropped", 0)
        self._add(self.backplane_failures, (), failures)
        for key, buckets in list(stats.durations.items()):
            self._flush_histogram(key, buckets)

    def _flush_histogram(self, key: Key, buckets: list[float]) -> None:
        before = self._durations_flushed.get(key) or [0.0] * len(buckets)
        if before == buckets:
            return
        child = self.durations.labels(*key)
        # prometheus-client offers no way to add many observations at once; its children keep
        # one value per bucket (non-cumulative) and the sum, which is what is added to here.
        for index, (new, old) in enumerate(zip(buckets[:-1], before[:-1], strict=True)):
            if new > old:
                child._buckets[index].inc(new - old)
        child._sum.inc(buckets[-1] - before[-1])
        self._durations_flushed[key] = list(buckets)

    def render(self) -> tuple[bytes, str]:
        """The exposition text (every worker's, in multiprocess mode) and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        _forget_dead_workers(self.multiprocess)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def stop(self) -> None:
        """This worker is stopping cleanly: its gauges no longer count."""
        if self.multiprocess is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), self.multiprocess)


class Monitor:
    """The once-a-second task of a served node: sample rates, flush metrics."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.exporter = Exporter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.server.stats.tick()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.exporter.flush(self.server)
        self.exporter.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.server.stats.tick()
            self.exporter.flush(self.server)

    def scrape(self) -> tuple[bytes, str]:
        """Flush, then render: a scrape sees this node's counts up to now."""
        self.exporter.flush(self.server)
        return self.exporter.render()

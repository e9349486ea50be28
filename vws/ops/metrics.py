"""What a node counts, and ``GET /metrics`` in the Prometheus text format.

The hot path never pays for Prometheus: it bumps the plain counters of
:class:`vws.runtime.stats.Stats`, and :class:`Exporter` turns those counts into prometheus-client
metrics. It is *flushed*: once a second, and right before each scrape, it adds what changed
since the last flush. Under ``vws run --workers N`` prometheus-client's multiprocess mode is on
(the supervisor sets ``PROMETHEUS_MULTIPROC_DIR``), each worker's flushes land in its own files,
and a scrape of any worker adds up every worker's files.

Labels come only from bounded sets: route paths and event names declared in routes.toml, the
protocol's built-in events and error codes, the four send kinds. Anything else is ``_unknown``.
Rooms, clients and users never become labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vws.runtime.stats import DURATION_BUCKETS, TICK, Key

if TYPE_CHECKING:
    from vws.runtime.node import Server

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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
        self.connections = Gauge(
            "vws_connections", "Connected clients.", registry=r, multiprocess_mode="livesum"
        )
        self.rooms = Gauge(
            "vws_rooms", "Rooms with members on this node.", registry=r, multiprocess_mode="livesum"
        )
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
        for (path, error_code), count in list(stats.errors.items()):
            self._add(self.errors, (path, error_code), count)
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

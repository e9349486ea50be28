"""What a node counts, bumped inline by the hot path: plain dicts and ints, no Prometheus.

The connection, the fan-out and the reloader add to a :class:`Stats` as frames pass (a tuple and
a dict increment per frame); :mod:`vws.ops.metrics` turns those counts into Prometheus metrics
once a second, and the status page reads them. Keeping the counters here, below the node, lets
the runtime count without knowing how the counts are shown.

Labels come only from bounded sets: route paths and event names declared in routes.toml, the
protocol's built-in events and error codes, the four send kinds. Anything else is ``_unknown``.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from bisect import bisect_left
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from vws.protocol import ERROR_CODES, JOIN_EVENTS, LEAVE_EVENTS

if TYPE_CHECKING:
    from vws.routing import DispatchTable

#: The label of an event, error code or route that is not in a bounded set.
UNKNOWN = "_unknown"
#: Upper bounds of the handler duration histogram (seconds).
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BOUNDS = (*DURATION_BUCKETS, float("inf"))
BUILTIN_EVENTS = JOIN_EVENTS | LEAVE_EVENTS
#: How often totals are sampled for the status page and flushed to Prometheus (seconds).
TICK = 1.0
#: How many samples are kept: the status page shows this many seconds of rates.
HISTORY = 300

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

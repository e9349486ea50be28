"""The load generator of bench/loadgen.py, with what a server of several processes needs.

- ``--server-pid`` is the root of a process tree (``vws run --workers N``, uvicorn's worker
  supervisor): the server's CPU is that of the whole tree.
- ``--also-pid`` (repeatable): more servers whose trees count as the server (crossnode).
- ``--broker-pid``: the broker's CPU over the same window is reported as ``broker_cpu_pct``.
- ``fanout`` waits ``--settle`` seconds after the joins before publishing: on a broker a join
  subscribes in the background, and a frame published before that is (by design) not carried.
- ``crossnode``: like ``fanout``, but the publishers connect to ``--url`` and every member to
  ``--url-b`` (another node), so every delivery crosses the broker: its p50/p99 are the
  cross-node latency.

``python -m bench.scaleout.load SCENARIO TARGET --url ... [--url-b ...] [--broker-pid ...]``
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from bench import loadgen

#: Set from the command line before the scenario runs.
SETTINGS: dict[str, Any] = {"broker_pid": None, "url_b": None, "settle": 1.0, "also": []}


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    pids += _tree(int(child))
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return pids


_process_cpu_seconds = loadgen.process_cpu_seconds


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and every process below it (and of the ``--also-pid`` trees)."""
    total = 0.0
    for each in [p for root in (pid, *SETTINGS["also"]) for p in _tree(root)]:
        try:
            total += _process_cpu_seconds(each)
        except FileNotFoundError:
            continue
    return total


class Window(loadgen.Window):
    """The loadgen's measuring window, plus the broker's CPU."""

    def start(self) -> None:
        super().start()
        pid = SETTINGS["broker_pid"]
        self._broker0 = _process_cpu_seconds(pid) if pid else 0.0

    def stop(self) -> None:
        super().stop()
        pid = SETTINGS["broker_pid"]
        self.broker_cpu = (
            (_process_cpu_seconds(pid) - self._broker0) / self.elapsed if pid else None
        )

    def report(self) -> dict[str, Any]:
        broker = None if self.broker_cpu is None else round(100 * self.broker_cpu, 1)
        return super().report() | {"broker_cpu_pct": broker}


async def _rooms(opts: loadgen.Options, members_url: str) -> dict[str, Any]:
    dialect = loadgen.DIALECTS[opts.target]()
    tally = loadgen.Tally()
    groups: list[loadgen.Group] = []
    publishers = await loadgen.connect(opts.url, dialect, opts.rooms, opts.concurrency)
    conns = list(publishers)
    for index, publisher in enumerate(publishers):
        room = f"room-{index}"
        members = await loadgen.connect(members_url, dialect, opts.members, opts.concurrency)
        conns += members
        await asyncio.gather(*(member.join(room) for member in members))
        payload = loadgen.padded(100, room=room, seq=0)

        def send(seq: int, publisher: Any = publisher, payload: dict[str, Any] = payload) -> None:
            payload["seq"] = seq
            publisher.send(dialect.call("publish", payload, None))

        group = loadgen.Group(room, publisher, opts.members, opts.window, send)
        groups.append(group)
        for member in members:
            loadgen.receiver(member, group, tally)
    await asyncio.sleep(SETTINGS["settle"])  # let every node subscribe to its rooms
    return await loadgen._measure_groups(opts, groups, conns, tally)


async def run_fanout(opts: loadgen.Options) -> dict[str, Any]:
    return await _rooms(opts, opts.url)


async def run_crossnode(opts: loadgen.Options) -> dict[str, Any]:
    return await _rooms(opts, SETTINGS["url_b"])


def main(argv: list[str]) -> int:
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--broker-pid":
            SETTINGS["broker_pid"] = int(next(args))
        elif arg == "--url-b":
            SETTINGS["url_b"] = next(args)
        elif arg == "--also-pid":
            SETTINGS["also"].append(int(next(args)))
        elif arg == "--settle":
            SETTINGS["settle"] = float(next(args))
        else:
            rest.append(arg)
    loadgen.process_cpu_seconds = tree_cpu_seconds
    loadgen.Window = Window  # type: ignore[misc]
    loadgen.SCENARIOS["fanout"] = run_fanout
    loadgen.SCENARIOS["crossnode"] = run_crossnode
    return loadgen.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

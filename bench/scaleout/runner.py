"""Run the scale-out scenarios against every target and print the table (docs/scaling.md).

Targets: vws on one process with the memory backplane (the baseline), vws on Redis with one
process and with ``--workers 2``, and python-socketio with ``AsyncRedisManager`` on one and
two uvicorn workers. Each measurement starts a fresh private ``redis-server`` and a fresh
server, both pinned to core 0, and the load generator (bench/scaleout/load.py) on core 1:
this machine has two cores, so the workers do not get more CPU than the single process; what
is compared is CPU per delivery, and deliveries per second at that CPU. Runs are interleaved
and the median of each number is shown. ``crossnode`` puts the publishers on one vws (or
socket.io) node and every member on another, so each delivery crosses Redis;
``crossnode-light`` does the same with one room and one frame in flight, so its latencies are
those of one crossing rather than of a queue.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.runner import free_port, pinned, serving

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
VWS_CONFIG = BENCH / "vws_app" / "routes.toml"


@dataclass(frozen=True)
class Target:
    name: str
    dialect: str  # the load generator's: vws or socketio
    redis: bool
    workers: int
    nodes: int = 1  # separate servers on separate ports (crossnode)


TARGETS = (
    Target("vws memory x1", "vws", False, 1),
    Target("vws redis x1", "vws", True, 1),
    Target("vws redis x2 workers", "vws", True, 2),
    Target("socketio redis x1", "socketio", True, 1),
    Target("socketio redis x2 workers", "socketio", True, 2),
)
CROSS = (
    Target("vws redis, 2 nodes", "vws", True, 1, nodes=2),
    Target("socketio redis, 2 nodes", "socketio", True, 1, nodes=2),
)


@dataclass(frozen=True)
class Sizes:
    duration: float
    warmup: float
    rooms: int
    members: int
    fanout_window: int
    broadcast_clients: int
    broadcast_window: int
    concurrency: int


FULL = Sizes(5.0, 1.0, 10, 100, 8, 1000, 4, 100)
QUICK = Sizes(1.0, 0.3, 2, 20, 4, 50, 2, 50)


@contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    folder = tempfile.mkdtemp(prefix="vws-bench-redis-")
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", folder]
    try:
        with serving(pinned(0, command), port, dict(os.environ), 30.0) as pid:
            yield f"redis://127.0.0.1:{port}/0", pid
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def server_command(target: Target, port: int) -> list[str]:
    python = sys.executable
    if target.dialect == "socketio":
        command = [python, "-m", "bench.scaleout.serve_socketio", "--port", str(port)]
        return [*command, "--workers", str(target.workers)]
    command = [python, "-m", "vws.cli", "run", "--config", str(VWS_CONFIG), "--port", str(port)]
    command += ["--log-level", "warning", "--no-watch"]
    return command + (["--workers", str(target.workers)] if target.workers > 1 else [])


def loadgen_args(scenario: str, sizes: Sizes) -> list[str]:
    args = ["--duration", str(sizes.duration), "--warmup", str(sizes.warmup)]
    args += ["--concurrency", str(sizes.concurrency)]
    if scenario == "crossnode-light":  # one frame in flight: the latency of one crossing
        return [*args, "--rooms", "1", "--members", str(sizes.members), "--window", "1"]
    if scenario == "broadcast":
        args += ["--clients", str(sizes.broadcast_clients)]
        return [*args, "--window", str(sizes.broadcast_window)]
    args += ["--rooms", str(sizes.rooms), "--members", str(sizes.members)]
    return [*args, "--window", str(sizes.fanout_window)]


def measure(target: Target, scenario: str, sizes: Sizes) -> dict[str, Any]:
    """One run: fresh Redis (if any), fresh server(s), one load generator."""
    broker = redis_server() if target.redis else nullcontext(("memory://", None))
    with broker as (backplane, broker_pid):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(BENCH / "vws_app"), str(REPO)]),
            "VWS_DISABLE_PLUGIN_AUTOLOAD": "1",
            "VWS_BACKPLANE": backplane,
            "BENCH_REDIS_URL": backplane,
        }
        ports = [free_port() for _ in range(target.nodes)]
        with (
            serving(pinned(0, server_command(target, ports[0])), ports[0], env, 30.0) as pid,
            serving(pinned(0, server_command(target, ports[-1])), ports[-1], env, 30.0)
            if target.nodes > 1
            else nullcontext(None) as pid_b,
        ):
            kind = "crossnode" if scenario.startswith("crossnode") else scenario
            command = [sys.executable, "-m", "bench.scaleout.load", kind, target.dialect]
            command += ["--url", f"ws://127.0.0.1:{ports[0]}", "--server-pid", str(pid)]
            if target.nodes > 1:
                command += ["--url-b", f"ws://127.0.0.1:{ports[1]}", "--also-pid", str(pid_b)]
            if broker_pid:
                command += ["--broker-pid", str(broker_pid)]
            command += loadgen_args(scenario, sizes)
            done = subprocess.run(
                ["taskset", "-c", "1", *command],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=sizes.warmup + sizes.duration + 240,
                check=False,
            )
    if done.returncode != 0:
        raise RuntimeError(f"{scenario} against {target.name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rate = result["rate"]
    if rate and result.get("server_cpu_pct"):
        result["server_us"] = result["server_cpu_pct"] / 100 / rate * 1e6
        # deliveries per second of server CPU: steadier than the raw rate on a busy machine
        result["per_cpu"] = rate / (result["server_cpu_pct"] / 100)
    if rate and result.get("broker_cpu_pct") is not None:
        result["broker_us"] = result["broker_cpu_pct"] / 100 / rate * 1e6
    return result


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def table(results: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    lines = [
        "| target | scenario | deliveries/s | per server CPU-second | server CPU µs/delivery"
        " | Redis CPU µs/delivery | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, scenario), runs in results.items():
        lines.append(
            f"| {name} | {scenario} | {fmt(median(runs, 'rate'))} "
            f"| {fmt(median(runs, 'per_cpu'))} "
            f"| {fmt(median(runs, 'server_us'), 1)} | {fmt(median(runs, 'broker_us'), 1)} "
            f"| {fmt(median(runs, 'p50_ms'), 2)} | {fmt(median(runs, 'p99_ms'), 2)} |"
        )
    return "\n".join(lines)


def goals(results: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    def get(name: str, scenario: str, key: str) -> float | None:
        runs = results.get((name, scenario))
        return median(runs, key) if runs else None

    lines = []
    for scenario in ("fanout", "broadcast"):
        two = get("vws redis x2 workers", scenario, "server_us")
        one = get("vws memory x1", scenario, "server_us")
        if two and one:
            ratio = two / one
            verdict = "met" if ratio <= 1.4 else "NOT met"
            lines.append(
                f"- {scenario}: server CPU per delivery, vws redis x2 workers / vws memory x1 = "
                f"{ratio:.2f} (goal ≤ 1.4: {verdict})"
            )
        for workers in ("x1", "x2 workers"):
            for key, what in (("rate", "deliveries/s"), ("per_cpu", "per server CPU-second")):
                ours = get(f"vws redis {workers}", scenario, key)
                theirs = get(f"socketio redis {workers}", scenario, key)
                if ours and theirs:
                    ratio = ours / theirs
                    verdict = "met" if ratio >= 5 else "NOT met"
                    lines.append(
                        f"- {scenario}: {what}, vws redis {workers} / socketio redis {workers}"
                        f" = {ratio:.1f}x (goal ≥ 5x: {verdict})"
                    )
    return "\n".join(lines)


def report(results: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    return table(results) + "\n\n" + goals(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write every run's numbers here")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=["fanout", "broadcast", "crossnode", "crossnode-light"],
        help="only these (default: all)",
    )
    args = parser.parse_args(argv)
    for tool in ("taskset", "redis-server"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed")
    sizes = QUICK if args.quick else FULL
    plan = [(t, s) for s in ("fanout", "broadcast") for t in TARGETS]
    plan += [(t, s) for s in ("crossnode", "crossnode-light") for t in CROSS]
    if args.scenarios:
        plan = [(t, s) for t, s in plan if s in args.scenarios]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {(t.name, s): [] for t, s in plan}
    for run in range(args.runs):
        for target, scenario in plan:
            print(f"run {run + 1}/{args.runs}: {scenario} on {target.name}", file=sys.stderr)
            results[(target.name, scenario)].append(measure(target, scenario, sizes))
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]} / {k[1]}": v for k, v in results.items()}))
    return 0

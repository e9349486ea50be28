"""Run every scenario against every target, several times, and print the table.

Each measurement starts a fresh server pinned to one core (``taskset -c 0``) and the load
generator pinned to the other (``taskset -c 1``), then stops the server. Runs are interleaved
(run 1 of every target, then run 2, ...) so that noise from other work on the machine spreads
over all targets instead of landing on one. Only ratios within one invocation mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VWS_APP = BENCH / "vws_app"
TARGETS = ("vws", "socketio", "floor", "bare")
SCENARIOS = ("echo", "fanout", "broadcast", "connections")
#: The Redis the ``--recovery`` variants use (``.ci/run`` and the machine start one here).
BENCH_REDIS = os.environ.get("VWS_BENCH_REDIS", "redis://127.0.0.1:6379/0")
#: routes.toml lines that give every room of ``/ws`` a history (recovery on).
HISTORY = '[routes."/ws"]\nhistory_size = 100\nhistory_ttl = "5m"\n'


@dataclass(frozen=True)
class Variant:
    """vws changed one way, measured on one scenario against ``baseline`` in the same run."""

    baseline: str
    scenario: str
    #: Lines added to bench/vws_app/routes.toml.
    toml: str = ""
    #: The backplane, when not the app's memory://.
    backplane: str | None = None


#: ``--plugin``: a no-op ``vws_emit`` (once per send) on echo-emit, and a no-op
#: ``vws_deliver`` (once per receiver) on fanout, against no plugin.
PLUGIN_VARIANTS = {
    "vws+noop-emit": Variant("vws", "echo-emit", '[plugins]\nload = ["noop_emit"]\n'),
    "vws+noop-deliver": Variant("vws", "fanout", '[plugins]\nload = ["noop_deliver"]\n'),
}
#: ``--recovery``: every room with a history, against none, in memory and on Redis.
RECOVERY_VARIANTS = {
    "vws+history": Variant("vws", "fanout", HISTORY),
    "vws@redis+history": Variant("vws@redis", "fanout", HISTORY, BENCH_REDIS),
}
#: Baselines that are not a plain target: vws on Redis, with recovery off.
BASELINES = {"vws@redis": Variant("vws@redis", "fanout", "", BENCH_REDIS)}
VARIANTS = {**PLUGIN_VARIANTS, **RECOVERY_VARIANTS, **BASELINES}
STARTUP_TIMEOUT = 30.0
#: uvicorn's websocket implementations (``--ws``).
WS_IMPLEMENTATIONS = ("websockets-sansio", "websockets", "wsproto")


@dataclass(frozen=True)
class Sizes:
    """Scenario sizes and durations; :data:`FULL` is the issue's, :data:`QUICK` the smoke test's."""

    duration: float
    warmup: float
    echo_clients: int
    rooms: int
    members: int
    fanout_window: int
    broadcast_clients: int
    broadcast_window: int
    idle_clients: int
    concurrency: int


FULL = Sizes(5.0, 1.0, 50, 10, 100, 8, 1000, 4, 5000, 100)
QUICK = Sizes(1.0, 0.3, 10, 2, 20, 4, 50, 2, 200, 50)


def loadgen_args(scenario: str, sizes: Sizes) -> list[str]:
    args = ["--duration", str(sizes.duration), "--warmup", str(sizes.warmup)]
    args += ["--concurrency", str(sizes.concurrency)]
    if scenario == "echo":
        return [*args, "--clients", str(sizes.echo_clients)]
    if scenario == "fanout":
        args += ["--rooms", str(sizes.rooms), "--members", str(sizes.members)]
        return [*args, "--window", str(sizes.fanout_window)]
    if scenario == "broadcast":
        args += ["--clients", str(sizes.broadcast_clients)]
        return [*args, "--window", str(sizes.broadcast_window)]
    return [*args, "--clients", str(sizes.idle_clients)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(core: int | None, command: list[str]) -> list[str]:
    return command if core is None else ["taskset", "-c", str(core), *command]


def server_command(target: str, port: int, workdir: Path, ws: str | None = None) -> list[str]:
    """How to start ``target``; ``ws`` picks uvicorn's websocket implementation (not for vws)."""
    python = sys.executable
    if target == "vws":
        config = VWS_APP / "routes.toml"
    elif target in VARIANTS:
        variant = VARIANTS[target]
        config = workdir / "routes.toml"
        text = (VWS_APP / "routes.toml").read_text()
        if variant.backplane is not None:  # a prefix of its own: runs never share a channel
            text = text.replace('backplane = "memory://"', f'backplane = "{variant.backplane}"')
            text = text.replace("[server]\n", f'[server]\nchannel_prefix = "bench{port}"\n', 1)
        config.write_text(text + "\n" + variant.toml)
    else:
        return [
            python,
            "-m",
            "bench.serve",
            target,
            "--port",
            str(port),
            *(["--ws", ws] if ws else []),
        ]
    run = [python, "-m", "vws.cli", "run", "--config", str(config), "--port", str(port)]
    return [*run, "--log-level", "warning"]


@contextmanager
def running_server(
    target: str, core: int | None, ws: str | None = None
) -> Iterator[tuple[str, int]]:
    """Start a target's server; yield its URL and pid; stop it."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(VWS_APP), str(REPO)]),
        "VWS_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    with tempfile.TemporaryDirectory(prefix="vws-bench-") as workdir:
        command = pinned(core, server_command(target, port, Path(workdir), ws))
        with serving(command, port, env) as pid:
            yield f"ws://127.0.0.1:{port}", pid


@contextmanager
def serving(
    command: list[str], port: int, env: dict[str, str], stop_within: float = 15.0
) -> Iterator[int]:
    """Start a server process and wait until it listens on ``port``; yield its pid; stop it.

    Its error output goes to a file rather than a pipe, which a chatty server could fill and
    then block on; the file is shown if the server exits before it listens.
    """
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
        try:
            _wait_for_port(port, process, errors)
            yield process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(stop_within)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors.seek(0)
            said = errors.read().decode(errors="replace")[-3000:]
            command = shlex.join(process.args)  # type: ignore[arg-type]
            raise RuntimeError(f"{command} exited with {process.returncode}:\n{said}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {STARTUP_TIMEOUT} s")


def measure(
    scenario: str,
    target: str,
    sizes: Sizes,
    *,
    pin: bool = True,
    extra: list[str] | None = None,
    ws: str | None = None,
) -> dict[str, Any]:
    """One run of one scenario against one target, on a fresh server."""
    dialect = "vws" if target.startswith("vws") else target
    with running_server(target, 0 if pin else None, ws) as (url, pid):
        command = [sys.executable, "-m", "bench.loadgen", scenario, dialect, "--url", url]
        command += ["--server-pid", str(pid), *loadgen_args(scenario, sizes), *(extra or [])]
        budget = sizes.warmup + sizes.duration + 180
        done = subprocess.run(
            pinned(1 if pin else None, command),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=budget,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{scenario} against {target} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["target"] = target
    if result.get("server_cpu_pct"):
        # Throughput per second of server CPU: steadier than the raw rate on a busy machine,
        # where the server's core is shared with other work.
        result["rate_per_cpu"] = result["rate"] / (result["server_cpu_pct"] / 100)
    return result


# ---------------------------------------------------------------------------------------------
# The table.


@dataclass(frozen=True)
class Metric:
    scenario: str
    key: str
    label: str
    higher_is_better: bool
    digits: int = 0


METRICS = (
    Metric("echo", "rate", "echo round trips/s", True),
    Metric("echo", "rate_per_cpu", "echo round trips per server CPU-second", True),
    Metric("fanout", "rate", "fanout deliveries/s", True),
    Metric("fanout", "rate_per_cpu", "fanout deliveries per server CPU-second", True),
    Metric("fanout", "p50_ms", "fanout p50 latency (ms)", False, 2),
    Metric("fanout", "p99_ms", "fanout p99 latency (ms)", False, 2),
    Metric("broadcast", "rate", "broadcast deliveries/s", True),
    Metric("broadcast", "rate_per_cpu", "broadcast deliveries per server CPU-second", True),
    Metric("broadcast", "p99_ms", "broadcast p99 latency (ms)", False, 1),
    Metric("connections", "rate", "connects/s (5000 idle)", True),
    Metric("connections", "kib_per_conn", "server KiB per idle connection", False, 1),
)

#: The issue's targets: (metric label, against, required ratio vws/against, "≥" or "≤").
GOALS = (
    ("echo round trips/s", "socketio", 4.0, "≥"),
    ("echo round trips/s", "floor", 0.9, "≥"),
    ("fanout deliveries/s", "socketio", 5.0, "≥"),
    ("fanout deliveries/s", "floor", 0.9, "≥"),
    ("fanout p99 latency (ms)", "socketio", 1 / 3, "≤"),
    ("broadcast deliveries/s", "socketio", 4.0, "≥"),
    ("server KiB per idle connection", "socketio", 0.7, "≤"),
)


def values(results: list[dict[str, Any]], scenario: str, target: str, key: str) -> list[float]:
    return [
        r[key]
        for r in results
        if r["scenario"] == scenario and r["target"] == target and r.get(key) is not None
    ]


def cell(samples: list[float], digits: int) -> str:
    if not samples:
        return "—"
    median = statistics.median(samples)
    if len(samples) == 1:
        return f"{median:,.{digits}f}"
    spread = (max(samples) - min(samples)) / median * 100 if median else 0.0
    return f"{median:,.{digits}f} ±{spread / 2:.0f}%"


def median_of(results: list[dict[str, Any]], metric: Metric, target: str) -> float | None:
    samples = values(results, metric.scenario, target, metric.key)
    return statistics.median(samples) if samples else None


def table(results: list[dict[str, Any]], targets: tuple[str, ...]) -> str:
    """The results as a Markdown table: medians (± half the min-max spread), and the ratios of
    the first target (vws, unless ``--targets`` says otherwise) to each of the others."""
    lines = []
    base, others = targets[0], targets[1:]
    header = ["metric", *targets, *(f"{base} ÷ {other}" for other in others)]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for metric in METRICS:
        if not any(values(results, metric.scenario, t, metric.key) for t in targets):
            continue
        row = [metric.label]
        for target in targets:
            row.append(cell(values(results, metric.scenario, target, metric.key), metric.digits))
        mine = median_of(results, metric, base)
        for other in others:
            theirs = median_of(results, metric, other)
            row.append(f"{mine / theirs:.2f}x" if mine and theirs else "—")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("| CPU% server / load generator (median) | " + " | ".join(targets) + " |")
    lines.append("|---|" + "---|" * len(targets))
    for scenario in SCENARIOS:
        row = [scenario]
        for target in targets:
            server = values(results, scenario, target, "server_cpu_pct")
            client = values(results, scenario, target, "client_cpu_pct")
            if not client:
                row.append("—")
                continue
            shown = f"{statistics.median(server):.0f}" if server else "?"
            row.append(f"{shown} / {statistics.median(client):.0f}")
        if len(row) > 1 and any(c != "—" for c in row[1:]):
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def goals(results: list[dict[str, Any]]) -> str:
    """The issue's targets, judged on the raw medians and, for throughput, per server CPU.

    When the bare ASGI app was measured, the last column gives its own ratio against the same
    target: the most any app served by this uvicorn could show, so whether a target is
    reachable on this stack at all.
    """
    ceiling = any(r["target"] == "bare" for r in results)
    header = "| target | required | vws ratio | met | per server CPU-second | met |"
    lines = [header + (" bare ASGI ratio |" if ceiling else ""), "|---|---|---|---|---|---|"]
    if ceiling:
        lines[1] += "---|"
    by_label = {metric.label: metric for metric in METRICS}
    per_cpu = {m.scenario: m for m in METRICS if m.key == "rate_per_cpu"}
    for label, other, required, sense in GOALS:
        metric = by_label[label]
        ratio = _ratio(results, metric, other)
        if ratio is None:
            continue
        row = [f"{label}, vws ÷ {other}", f"{sense} {required:.2f}x"]
        row += [f"{ratio:.2f}x", _met(ratio, required, sense)]
        normalised = per_cpu.get(metric.scenario) if metric.key == "rate" else None
        cpu_ratio = _ratio(results, normalised, other) if normalised else None
        if cpu_ratio is None:
            row += ["—", "—"]
        else:
            row += [f"{cpu_ratio:.2f}x", _met(cpu_ratio, required, sense)]
        if ceiling:
            bare = _ratio(results, metric, other, mine="bare")
            row.append("—" if bare is None else f"{bare:.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _ratio(
    results: list[dict[str, Any]], metric: Metric, other: str, mine: str = "vws"
) -> float | None:
    ours, theirs = median_of(results, metric, mine), median_of(results, metric, other)
    return ours / theirs if ours and theirs else None


def _met(ratio: float, required: float, sense: str) -> str:
    return "yes" if (ratio >= required if sense == "≥" else ratio <= required) else "NO"


def variant_table(results: list[dict[str, Any]], variants: dict[str, Variant]) -> str:
    """Each variant against its baseline on its scenario: raw and per server CPU-second."""
    lines = [
        "| scenario | target | rate | per server CPU-second |",
        "|---|---|---|---|",
    ]
    for target, variant in variants.items():
        scenario = variant.scenario
        rows = [r for r in results if r["scenario"] == f"{scenario}+{target}"]
        medians: dict[str, tuple[float, float]] = {}
        for name in (variant.baseline, target):
            rates = [r["rate"] for r in rows if r["target"] == name]
            mine = [r for r in rows if r["target"] == name]
            per_cpu = [r["rate_per_cpu"] for r in mine if "rate_per_cpu" in r]
            if rates and per_cpu:
                medians[name] = (statistics.median(rates), statistics.median(per_cpu))
                unit = rows[0]["unit"]
                lines.append(
                    f"| {scenario} | {name} | {cell(rates, 0)} {unit} | {cell(per_cpu, 0)} |"
                )
        if len(medians) == 2:
            (raw_with, cpu_with), (raw_without, cpu_without) = (
                medians[target],
                medians[variant.baseline],
            )
            lines.append(
                f"| {scenario} | {target} ÷ {variant.baseline} | {raw_with / raw_without:.3f}x "
                f"| {cpu_with / cpu_without:.3f}x |"
            )
    return "\n".join(lines)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = ["vws", "uvicorn", "websockets", "litestar", "msgspec", "uvloop", "httptools"]
    names += ["python-socketio", "python-engineio", "picows"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"Python {sys.version.split()[0]}; " + ", ".join(found)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario and target")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument(
        "--plugin",
        action="store_true",
        help="also vws with vs without a no-op plugin: vws_emit on echo-emit, "
        "vws_deliver on fanout",
    )
    parser.add_argument(
        "--recovery",
        action="store_true",
        help="also fanout with every room keeping a history against none, in memory and on "
        f"Redis ({BENCH_REDIS}; VWS_BENCH_REDIS changes it)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes: about 1 s a scenario")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--ws",
        choices=WS_IMPLEMENTATIONS,
        help="serve socketio, floor and bare with this uvicorn websocket implementation "
        "(vws always runs on its own protocol, vws.edge.transport)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    scenarios = [s for s in args.scenarios.split(",") if s]
    targets = tuple(t for t in args.targets.split(",") if t)
    unknown = set(scenarios) - set(SCENARIOS) | set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown scenario or target: {', '.join(sorted(unknown))}")
    if args.ws and (args.plugin or args.recovery or any(t.startswith("vws") for t in targets)):
        parser.error("--ws is for the comparison targets only: add --targets socketio,floor,bare")
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(versions(), file=sys.stderr)
    print(f"pinned: {pin}; runs: {args.runs}; sizes: {sizes}", file=sys.stderr)
    results: list[dict[str, Any]] = []
    failures: list[str] = []

    def record(run: int, scenario: str, target: str, extra: list[str] | None = None) -> None:
        """Measure once; a failure is reported and the other measurements go on."""
        measured = scenario.partition("+")[0]
        try:
            result = measure(
                "echo" if measured == "echo-emit" else measured,
                target,
                sizes,
                pin=pin,
                extra=extra,
                ws=args.ws,
            )
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
            failures.append(f"run {run} {scenario} {target}: {error}")
            print(f"run {run} {scenario} {target} FAILED: {error}", file=sys.stderr, flush=True)
            return
        result["scenario"] = scenario
        results.append(result)
        _progress(run, result)
        if result.get("out_of_order"):
            failures.append(f"run {run} {scenario} {target}: frames out of order or missing")

    for run in range(1, args.runs + 1):
        for scenario in scenarios:
            for target in targets:
                record(run, scenario, target)
        chosen = {**(PLUGIN_VARIANTS if args.plugin else {})}
        chosen.update(RECOVERY_VARIANTS if args.recovery else {})
        for target, variant in chosen.items():
            extra = ["--echo-event", "echo-emit"] if variant.scenario == "echo-emit" else None
            for name in (variant.baseline, target):  # side by side, in the same run
                record(run, f"{variant.scenario}+{target}", name, extra)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print()
    print(table(results, targets))
    if "vws" in targets and len(targets) > 1:
        print()
        print(goals(results))
    if args.plugin:
        print()
        print(variant_table(results, PLUGIN_VARIANTS))
    if args.recovery:
        print()
        print(variant_table(results, RECOVERY_VARIANTS))
    if failures:
        print(f"\n{len(failures)} measurement(s) failed:", *failures, sep="\n", file=sys.stderr)
        return 1
    return 0


def _progress(run: int, result: dict[str, Any]) -> None:
    shown = {k: v for k, v in result.items() if k not in ("scenario", "target", "unit")}
    print(
        f"run {run} {result['scenario']:<11} {result['target']:<14} "
        f"{result['rate']:>10,.0f} {result['unit']:<14} {shown}",
        file=sys.stderr,
        flush=True,
    )

"""The bench cannot rot: each scenario runs for about a second against each target.

This runs ``python -m bench --quick`` (small sizes, one run, no CPU pinning) exactly as a user
would, and checks that every target served every scenario and the table was printed. It asserts
what happened, never how fast: speed is what the bench itself reports (docs/performance.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
TARGETS = {"vws", "socketio", "floor", "bare"}


def python_m(*args: str, timeout: float = 100) -> subprocess.CompletedProcess[str]:
    """``python -m ARGS`` in the repository, as a user runs the bench."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_bench(tmp_path: Path, *args: str) -> tuple[list[dict], str]:
    out = tmp_path / "results.json"
    done = python_m("bench", "--quick", "--runs", "1", "--no-pin", "--json", str(out), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def by_target(results: list[dict], scenario: str) -> dict[str, dict]:
    return {r["target"]: r for r in results if r["scenario"] == scenario}


def test_echo_against_every_target_and_the_plugin_variant(tmp_path: Path) -> None:
    results, table = run_bench(tmp_path, "--scenarios", "echo", "--plugin")
    echo = by_target(results, "echo")
    assert set(echo) == TARGETS
    for result in echo.values():
        assert result["count"] > 0
        assert result["server_cpu_pct"] is not None
    with_emit = by_target(results, "echo-emit+vws+noop-emit")
    assert set(with_emit) == {"vws", "vws+noop-emit"}
    with_deliver = by_target(results, "fanout+vws+noop-deliver")
    assert set(with_deliver) == {"vws", "vws+noop-deliver"}
    assert all(r["count"] > 0 for r in [*with_emit.values(), *with_deliver.values()])
    assert all(r["out_of_order"] == 0 for r in with_deliver.values())
    assert "| echo round trips/s |" in table
    assert "bare ASGI ratio |" in table  # the goals table says what the stack allows at most
    assert "| echo-emit | vws+noop-emit ÷ vws |" in table
    assert "| fanout | vws+noop-deliver ÷ vws |" in table


@pytest.mark.parametrize("scenario", ["fanout", "broadcast"])
def test_deliveries_against_every_target(tmp_path: Path, scenario: str) -> None:
    results, table = run_bench(tmp_path, "--scenarios", scenario)
    found = by_target(results, scenario)
    assert set(found) == TARGETS
    for result in found.values():
        assert result["count"] > 0
        assert 0 < result["p50_ms"] <= result["p99_ms"]
        assert result["out_of_order"] == 0  # sampled frames carried the expected sequence
    assert f"| {scenario} deliveries/s |" in table


def test_idle_connections_against_every_target(tmp_path: Path) -> None:
    results, table = run_bench(tmp_path, "--scenarios", "connections")
    found = by_target(results, "connections")
    assert set(found) == TARGETS
    for result in found.values():
        assert result["count"] == 200  # every client connected and was still open
        assert result["rss_after_mib"] > 0
        assert "kib_per_conn" in result
    assert "| server KiB per idle connection |" in table


def test_the_comparison_targets_on_another_websocket_implementation(tmp_path: Path) -> None:
    results, table = run_bench(
        tmp_path, "--scenarios", "echo", "--targets", "bare,socketio", "--ws", "wsproto"
    )
    assert set(by_target(results, "echo")) == {"bare", "socketio"}
    assert "| metric | bare | socketio | bare ÷ socketio |" in table


def test_vws_is_not_served_on_another_websocket_implementation() -> None:
    done = python_m("bench", "--quick", "--ws", "wsproto", "--targets", "vws", timeout=60)
    assert done.returncode == 2
    assert "--ws is for the comparison targets only" in done.stderr


def test_the_scale_out_bench_runs_every_target(tmp_path: Path) -> None:
    """``python -m bench.scaleout`` (docs/scaling.md) at smoke sizes: it cannot rot either."""
    out = tmp_path / "scaleout.json"
    done = python_m("bench.scaleout", "--quick", "--runs", "1", "--json", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"vws redis x2 workers / fanout", "socketio redis, 2 nodes / crossnode"} <= set(results)
    for name, runs in results.items():
        assert len(runs) == 1, name
        assert runs[0]["count"] > 0, name
    assert "| vws memory x1 | broadcast |" in done.stdout

"""The soak cannot rot: ``python -m bench.soak`` run tiny, and its verdict on made-up series.

The smoke run asserts what happened (every metric sampled, the slow consumer cut, nothing
growing), never how fast: the numbers of a real run are in docs/operations.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # bench/ is the repository's own tool, never installed

from bench.soak import MIN_SAMPLES, Tolerance, growth, judged_rows  # noqa: E402

#: Every sample must carry these, measured (not None).
METRICS = (
    "rss_mib",
    "fds",
    "server_connections",
    "rooms",
    "loop_lag_p99_ms",
    "probe_rtt_p99_ms",
    "delivered_per_s",
    "delivery_p99_ms",
    "errors",
    "unexpected_closes",
    "stray",
    "connect_failures",
)


def test_a_tiny_soak_passes_and_samples_every_metric() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            *("--connections", "50", "--duration", "15", "--rooms", "5", "--churn", "5"),
            *("--slow-every", "5", "--sample", "2", "--rate", "100", "--no-pin"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["reasons"] == []
    samples = summary["samples"]
    assert len(samples) >= MIN_SAMPLES
    for row in samples:
        missing = [key for key in METRICS if row.get(key) is None]
        assert not missing, f"sample at {row['t_s']} s lacks {missing}"
    assert all(row["delivered_per_s"] > 0 for row in samples)
    assert sum(row["opened"] for row in samples) > 0  # churn reopened clients
    assert sum(row["moves"] for row in samples) > 0
    episodes = summary["slow_consumers"]
    assert episodes and all(e["cut"] and e["closed_once_read"] for e in episodes)
    assert set(summary["thirds"]) >= {"rss_mib", "fds", "loop_lag_p99_ms", "delivery_p99_ms"}
    assert "| rss_mib |" in done.stderr  # the human table


RSS = Tolerance(0.20, 50)
LATENCY = Tolerance(0.5, 10, sustained=True)


def test_a_flat_series_does_not_grow() -> None:
    flat = [180.0 + (i * 7 % 5) for i in range(60)]  # noise around 182 MiB, no trend
    verdict = growth(flat, RSS)
    assert not verdict.grows
    assert verdict.limit == pytest.approx(verdict.middle + 50)


def test_a_steady_rise_grows() -> None:
    leaking = [180.0 + 3 * i for i in range(60)]  # 3 MiB a sample, 60 MiB a third
    verdict = growth(leaking, RSS)
    assert verdict.grows
    assert verdict.last > verdict.limit > verdict.middle


def test_a_rise_within_the_tolerance_is_not_growth() -> None:
    creeping = [180.0 + 0.5 * i for i in range(60)]  # 10 MiB a third: under the 50 MiB bound
    assert not growth(creeping, RSS).grows


def test_one_spike_does_not_make_latency_grow_but_a_sustained_rise_does() -> None:
    spike = [5.0] * 59 + [900.0]  # one GC pause in the last window lifts the mean only
    assert not growth(spike, LATENCY).grows
    rising = [5.0 + i for i in range(60)]  # a steady climb from 5 to 64 ms
    assert growth(rising, LATENCY).grows
    stalls = [450.0 if i % 3 == 0 else 12.0 for i in range(60)]  # a collection every 30 s
    assert not growth(stalls, LATENCY).grows


def test_the_warm_up_third_is_not_judged() -> None:
    ramp_then_flat = [20.0 * i for i in range(20)] + [400.0] * 40  # connecting, then steady
    assert not growth(ramp_then_flat, RSS).grows


def test_too_few_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        growth([1.0] * (MIN_SAMPLES - 1), RSS)


def test_latency_is_judged_on_quiet_windows_without_a_collection_and_the_pause_with() -> None:
    rows = [
        {
            "t_s": 10.0 * i,
            "gc_full": i % 2,
            "delivery_p99_ms": 500.0 if i % 2 else 15.0,
            "gc_full_max_ms": 600.0 if i % 2 else 0.0,
            "rss_mib": 180.0,
        }
        for i in range(20)
    ]
    clean, which = judged_rows(rows, "delivery_p99_ms")
    assert which == "quiet, without a full collection"
    assert {row["delivery_p99_ms"] for row in clean} == {15.0}
    pauses, _ = judged_rows(rows, "gc_full_max_ms")
    assert {row["gc_full_max_ms"] for row in pauses} == {600.0}
    assert judged_rows(rows, "rss_mib") == (rows, "all")
    few = rows[:8]  # four clean windows: too few, so every window is judged
    assert judged_rows(few, "delivery_p99_ms") == (few, "all")
    assert judged_rows(few, "gc_full_max_ms")[0] == []  # four pauses: not judged at all
    rows[4]["server_wait_pct"] = 30.0  # a neighbour had the core: not a window about vws
    assert rows[4] not in judged_rows(rows, "delivery_p99_ms")[0]

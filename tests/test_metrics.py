"""``/metrics``: counts that follow real traffic, bounded labels, access, and reloads."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx
import pytest
import websockets
from conftest import APPS, DEMO_APP
from prometheus_client.parser import text_string_to_metric_families
from wsclient import Peer

from vws.ops.metrics import DURATION_BUCKETS, Monitor
from vws.testing import ErrorReply, TestApp

pytestmark = pytest.mark.anyio

KEY = "metrics-test-key-0123456789"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def get(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url, headers=headers)


async def scrape(http: str, **headers: str) -> str:
    response = await get(f"{http}/metrics", **headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def eventually_scraped(http: str, check: Callable[[str], bool], timeout: float = 10.0) -> str:
    """Scrape until ``check(text)`` holds (a disconnect is handled after the socket closes)."""
    with anyio.fail_after(timeout):
        while True:
            text = await scrape(http)
            if check(text):
                return text
            await anyio.sleep(0.02)


async def test_metrics_follow_connections_messages_errors_and_rooms(start_server) -> None:
    server = start_server(DEMO_APP)
    text = await scrape(server.http)
    assert value(text, "vws_connections") == 0
    async with await Peer.connect(server.url + "/ws") as a, await Peer.connect(server.url + "/ws"):
        for n in range(3):
            await a.call("echo", n)
        await a.call("joinRoom", room="lobby")
        await a.call("to_room", {"event": "news", "room": "lobby"})
        await a.request("no-such-event-xyz")
        await a.request("boom")
        text = await scrape(server.http)
        assert value(text, "vws_connections") == 2
        assert value(text, "vws_connections_opened_total") == 2
        assert value(text, "vws_rooms") == 1
        received = "vws_messages_received_total"
        assert value(text, received, route="/ws", event="echo") == 3
        assert value(text, received, route="/ws", event="joinRoom") == 1
        assert value(text, received, route="/ws", event="_unknown") == 1
        assert value(text, received, route="/ws", event="boom") == 1
        assert "no-such-event-xyz" not in text  # never a label
        assert value(text, "vws_errors_total", route="/ws", code="unknown_event") == 1
        assert value(text, "vws_errors_total", route="/ws", code="handler_error") == 1
        assert value(text, "vws_frames_sent_total", route="/ws", kind="room") == 1
        assert value(text, "vws_handler_duration_seconds_count", route="/ws", event="echo") == 3
        assert (
            value(text, "vws_handler_duration_seconds_bucket", route="/ws", event="echo", le="+Inf")
            == 3
        )
        # the sender got 4 acks + the room frame + 2 errors, the other client only its hello
        assert value(text, "vws_frames_written_total") >= 9
    await eventually_scraped(server.http, lambda t: value(t, "vws_connections") == 0)


async def test_refusals_are_counted_and_labels_stay_bounded(start_server) -> None:
    server = start_server(DEMO_APP)
    async with await Peer.connect(server.url + "/ws") as peer:
        await peer.send("not json at all")
        assert (await peer.recv())["payload"]["code"] == "bad_json"
        for n in range(20):
            await peer.request(f"random-{n}")
    for path in ("/nowhere-1", "/nowhere-2"):
        async with websockets.connect(server.url + path) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
    async with websockets.connect(server.url + "/guarded?token=bad") as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    text = await scrape(server.http)
    assert value(text, "vws_messages_received_total", route="/ws", event="_unknown") == 21
    assert value(text, "vws_connections_refused_total", code="4404") == 2
    assert value(text, "vws_connections_refused_total", code="4401") == 1
    assert "random-" not in text and "nowhere" not in text
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "route" in sample.labels
    }
    assert routes == {"/ws"}


async def test_metrics_are_loopback_only_without_a_key_and_need_the_key_with_one(
    start_server,
) -> None:
    server = start_server(DEMO_APP)
    proxied = await get(f"{server.http}/metrics", **{"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403
    keyed = start_server(DEMO_APP + f'\n[admin]\nkey = "{KEY}"\n', name="keyed.toml")
    assert (await get(f"{keyed.http}/metrics")).status_code == 401
    wrong = await get(f"{keyed.http}/metrics", Authorization="Bearer nope")
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert "vws_connections" in await scrape(keyed.http, Authorization=f"Bearer {KEY}")


async def test_reloads_are_counted_and_the_status_shows_the_new_hash(start_server) -> None:
    server = start_server(DEMO_APP)
    config = server.config
    config.write_text(DEMO_APP + '\n[routes."/late".events]\necho = "nope_missing:echo"\n')
    await eventually_scraped(
        server.http, lambda t: value(t, "vws_reloads_total", result="refused") == 1
    )
    config.write_text(DEMO_APP + '\n[routes."/late".events]\necho = "e2e_handlers:echo"\n')
    text = await eventually_scraped(
        server.http, lambda t: value(t, "vws_reloads_total", result="applied") == 1
    )
    assert value(text, "vws_reloads_total", result="refused") == 1
    status = (await get(f"{server.http}/_vws/status")).json()
    assert status["config"]["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert status["config"]["reloads"] == {"applied": 1, "refused": 1}
    assert status["config"]["last_reload"] is not None
    assert "/late" in [route["path"] for route in status["routes"]]


# The same counters, in-process with vws.testing: the exporter's arithmetic.


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestApp]:
    monkeypatch.syspath_prepend(str(APPS))
    async with TestApp.from_toml(DEMO_APP, tmp_path) as running:
        yield running


async def test_flushes_add_only_what_changed_and_histograms_keep_their_buckets(
    app: TestApp,
) -> None:
    monitor = Monitor(app.server)
    client = await app.connect("/ws")
    await client.request("echo", 1)
    first = monitor.scrape()[0].decode()
    assert value(first, "vws_messages_received_total", route="/ws", event="echo") == 1
    for n in range(4):
        await client.request("echo_async", n)
    await client.request("echo", 2)
    text = monitor.scrape()[0].decode()
    assert monitor.scrape()[0].decode() == text  # a flush with nothing new changes nothing
    assert value(text, "vws_messages_received_total", route="/ws", event="echo") == 2
    assert value(text, "vws_messages_received_total", route="/ws", event="echo_async") == 4
    count = value(text, "vws_handler_duration_seconds_count", route="/ws", event="echo_async")
    assert count == 4
    cumulative = [
        value(
            text,
            "vws_handler_duration_seconds_bucket",
            route="/ws",
            event="echo_async",
            le=str(bound),
        )
        for bound in DURATION_BUCKETS
    ]
    assert cumulative == sorted(cumulative) and cumulative[-1] <= 4
    stats = app.server.stats
    assert stats.latency("/ws", "echo_async")["count"] == 4


async def test_a_handler_that_raises_counts_as_an_error_of_its_event(app: TestApp) -> None:
    client = await app.connect("/ws")
    for _ in range(2):
        with pytest.raises(ErrorReply):
            await client.request("boom")
    stats = app.server.stats
    assert stats.failures[("/ws", "boom")] == 2
    assert stats.errors[("/ws", "handler_error")] == 2
    assert stats.durations[("/ws", "boom")][-1] > 0  # timed although it raised


async def test_an_event_a_reload_adds_gets_its_label_and_others_stay_unknown(
    app: TestApp,
) -> None:
    from vws.config import parse_config
    from vws.routing import compile_table

    client = await app.connect("/other")
    with pytest.raises(ErrorReply):
        await client.request("late", 1)
    source = app.server.table.config.source
    text = DEMO_APP + '[routes."/other".events.late]\nhandler = "e2e_handlers:echo"\n'
    app.server.swap(compile_table(parse_config(text, source, environ={})))
    assert await client.request("late", 2) == 2
    with pytest.raises(ErrorReply):
        await client.request("later", 3)
    stats = app.server.stats
    assert stats.received[("/other", "_unknown")] == 2
    assert stats.received[("/other", "late")] == 1
    assert ("/other", "later") not in stats.received
    assert stats.reloads["applied"] == 1


SLOW_APP = """
[server]
send_queue = 4
close_timeout = 30

[routes."/ws".events]
blob = "e2e_handlers:blob"
"""


async def test_a_slow_consumer_disconnect_is_counted(start_server) -> None:
    server = start_server(SLOW_APP)
    url = server.url + "/ws"
    # max_queue=1: the client library stops reading the socket after one frame
    async with (
        await Peer.connect(url, max_queue=1, max_size=None) as slow,
        await Peer.connect(url, max_size=None) as fast,
    ):
        await slow.call("joinRoom", room="firehose")
        await fast.call("joinRoom", room="firehose")
        for _ in range(2000):
            blob = {"room": "firehose", "size": 256 * 1024, "watch": slow.id}
            if not await fast.call("blob", blob):
                break
        text = await scrape(server.http)
        assert value(text, "vws_slow_consumer_disconnects_total") == 1
        assert value(text, "vws_connections") == 1

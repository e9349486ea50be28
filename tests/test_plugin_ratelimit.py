"""The ratelimit plugin: token buckets per connection and per event, ``rate_limited`` refusals
that keep the connection, and a 1008 close for a client that keeps going."""

from __future__ import annotations

import pytest
from wsclient import Peer

from vws.contrib.ratelimit import Bucket, Limit, Offender, Settings

pytestmark = pytest.mark.anyio

# rate is so low that no token comes back during a test: only burst counts
APP = """
[plugins]
load = ["ratelimit"]

[plugins.settings.ratelimit]
rate = 0.001
burst = 3
close_after = 0

[plugins.settings.ratelimit.events.chat]
rate = 0.001
burst = 1

[routes."/ws".events]
echo = "e2e_handlers:echo"
chat = "e2e_handlers:echo"
"""

LIMITED = {"code": "rate_limited", "message": "rate limit exceeded"}


async def test_burst_then_rate_limited_and_the_connection_stays(start_server):
    server = start_server(APP)
    url = server.url + "/ws"
    async with await Peer.connect(url) as a:
        for i in range(3):
            assert await a.call("echo", i) == i
        for _ in range(5):
            reply = await a.request("echo", "over")
            assert (reply["event"], reply["payload"]) == ("error", LIMITED)
        # room events count too
        assert (await a.request("joinRoom", room="r"))["payload"] == LIMITED
        async with await Peer.connect(url) as b:  # every connection has its own bucket
            assert [await b.call("echo", i) for i in range(3)] == [0, 1, 2]


async def test_an_event_limit_applies_on_top_of_the_connection_limit(start_server):
    server = start_server(APP)
    async with await Peer.connect(server.url + "/ws") as a:
        assert await a.call("chat", "one") == "one"
        assert (await a.request("chat", "two"))["payload"] == LIMITED
        # the refused chat took no token from the connection's bucket: 2 echoes remain
        assert await a.call("echo", 1) == 1
        assert await a.call("echo", 2) == 2
        assert (await a.request("echo", 3))["payload"] == LIMITED


async def test_repeated_abuse_closes_with_1008_after_the_error(start_server):
    server = start_server(APP.replace("close_after = 0", "close_after = 3\nwindow = 60"))
    async with await Peer.connect(server.url + "/ws") as a:
        for i in range(3):
            await a.call("echo", i)
        assert (await a.request("echo"))["payload"] == LIMITED
        assert (await a.request("echo"))["payload"] == LIMITED
        await a.send({"event": "echo", "id": "last"})
        code, frames = await a.closed()
    assert code == 1008
    assert frames == [{"event": "error", "id": "last", "payload": LIMITED}]


def test_a_bucket_refills_at_its_rate_up_to_its_burst():
    bucket = Bucket(2, now=0.0)
    assert bucket.refill(rate=1.0, burst=2, now=0.0)
    bucket.tokens = 0.0
    assert not bucket.refill(rate=1.0, burst=2, now=0.5)
    assert bucket.refill(rate=1.0, burst=2, now=1.0)
    assert bucket.refill(rate=1.0, burst=2, now=100.0) and bucket.tokens == 2.0


def test_admit_takes_from_every_bucket_or_none():
    settings = Settings(rate=1.0, burst=2, events={"chat": Limit(rate=1.0, burst=1)})
    offender = Offender(settings, now=0.0)
    assert offender.admit("chat", settings, 0.0)
    assert not offender.admit("chat", settings, 0.0)  # its event bucket is empty
    assert offender.bucket.tokens == 1.0  # and the refusal took nothing from the connection
    assert offender.admit("echo", settings, 0.0)
    assert not offender.admit("echo", settings, 0.0)
    assert offender.admit("chat", settings, 1.0)  # a second later each bucket has refilled


def test_strikes_count_within_the_window_only():
    settings = Settings(close_after=3, window=10.0)
    offender = Offender(settings, now=0.0)
    assert not offender.strike(settings, 0.0)
    assert not offender.strike(settings, 1.0)
    assert not offender.strike(settings, 10.5)  # the first strike has left the window
    assert offender.strike(settings, 10.9)
    never = Settings(close_after=0)
    assert not any(offender.strike(never, float(t)) for t in range(100))

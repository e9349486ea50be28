"""#17 in a real browser: the demo chat's pages resume their rooms after a reconnect by
themselves (vws.js sends where it was), show what they missed like live messages, and say
"some messages may be missing" in a room that could not be caught up.

Debian's Chromium driven by Playwright, against real ``vws run`` processes of the repository's
routes.toml: two nodes on a real Redis, then one node on the memory backplane, whose history
does not outlive the process."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import REPO, RunningServer
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from test_browser import CHROMIUM, CHROMIUM_FLAGS, join, open_page, say

#: The machine's Redis; every test uses a channel_prefix of its own, so none shares a key.
REDIS = "redis://127.0.0.1:6379/0"
MISSING = "some messages may be missing"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Its own Playwright, as in test_browser.py: the plugin's session-wide one would keep an
    event loop running under the async tests collected after this module."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def demo_config(folder: Path, prefix: str) -> Path:
    """The repository's routes.toml in ``folder``, with a channel_prefix of its own, its page
    folder by its absolute path (plugins.chat comes from the repository, on PYTHONPATH), and
    ``small-*`` rooms that keep only their last 2 frames."""
    text = (REPO / "routes.toml").read_text()
    text = text.replace("[server]\n", f'[server]\nchannel_prefix = "{prefix}"\n', 1)
    text = text.replace('directory = "web"', f"directory = {str(REPO / 'web')!r}", 1)
    text += '\n[routes."/ws".rooms."small-*"]\nhistory_size = 2\n'
    config = folder / "routes.toml"
    config.write_text(text)
    return config


class OnRedis:
    """A demo config under a channel_prefix of its own, and the environment that puts it on
    Redis."""

    def __init__(self, folder: Path) -> None:
        self.prefix = "brec" + secrets.token_hex(4)
        self.config = demo_config(folder, self.prefix)
        self.env = {"VWS_BACKPLANE": REDIS}

    def node(self, port: int | None = None) -> RunningServer:
        return RunningServer(self.config, self.env, () if port is None else ("--port", str(port)))

    def forget(self) -> int:
        """Delete every key of the app, its rooms' histories with them: how many there were."""
        with redis.Redis.from_url(REDIS) as client:
            keys = list(client.scan_iter(match=f"{self.prefix}*"))
            return client.delete(*keys) if keys else 0


@pytest.fixture
def on_redis(tmp_path: Path) -> Iterator[OnRedis]:
    app = OnRedis(tmp_path)
    yield app
    app.forget()


def said(page: Page) -> Locator:
    """The chat messages on screen, without the system lines (joins, leaves, the notice)."""
    return page.locator("#messages li:not(.system)")


def missing(page: Page) -> Locator:
    return page.locator("#messages li.missing")


def open_room(page: Page, room: str) -> None:
    page.click(f'#rooms li[data-room="{room}"] button.open')
    expect(page.locator(f'#rooms li[data-room="{room}"]')).to_have_attribute("aria-current", "true")


def say_and_see(page: Page, *texts: str) -> None:
    """Say each text, once the one before is on screen: its position is then taken."""
    for text in texts:
        say(page, text)
        expect(said(page).last).to_have_text(re.compile(f"{re.escape(text)}$"))


def wait_disconnected(page: Page) -> None:
    expect(page.locator("#state")).to_have_attribute(
        "data-state", re.compile("^(disconnected|reconnecting)$")
    )


def test_a_page_back_on_its_restarted_node_shows_what_it_missed_on_redis(
    browser: Browser, on_redis: OnRedis
):
    a, b = on_redis.node(), on_redis.node()
    port = a.port
    try:
        ann = open_page(browser, a.http, "Ann")
        bob = open_page(browser, b.http, "Bob")
        for room in ("small-talk", "lobby"):  # lobby last: the room on screen
            join(ann, room)
            join(bob, room)
        say_and_see(bob, "before")
        expect(said(ann)).to_have_text(["Bobbefore"])  # from node B to node A
        a.stop()
        wait_disconnected(ann)
        say_and_see(bob, "one", "two", "three")
        open_room(bob, "small-talk")  # keeps 2 frames: Ann's place in it will be gone
        say_and_see(bob, "gone 1", "gone 2", "gone 3")  # one more than it keeps
        a = on_redis.node(port)
        expect(ann.locator("body")).to_have_attribute("data-state", "connected")
        # the rejoins were answered before "connected": what they replayed is on screen
        expect(said(ann)).to_have_text(["Bobbefore", "Bobone", "Bobtwo", "Bobthree"])
        expect(missing(ann)).to_have_count(0)
        assert ann.evaluate("window.vwsSocket.position('lobby').offset") > 0
        open_room(bob, "lobby")
        say_and_see(bob, "live again")
        expect(said(ann)).to_have_text(
            ["Bobbefore", "Bobone", "Bobtwo", "Bobthree", "Boblive again"]
        )
        open_room(ann, "small-talk")
        expect(missing(ann)).to_have_text([MISSING])
        expect(missing(ann)).to_have_attribute("data-reason", "not_recovered")
        expect(said(ann)).to_have_count(0)  # nothing of what it missed, and no half of it
        open_room(bob, "small-talk")
        say_and_see(bob, "after")
        expect(said(ann)).to_have_text(["Bobafter"])
        expect(ann.locator("#messages li").last).to_have_text("Bobafter")  # after the notice
        ann.context.close()
        bob.context.close()
    finally:
        a.stop()
        b.stop()


def test_a_history_lost_from_redis_is_told_once_and_its_new_epoch_is_no_gap(
    browser: Browser, on_redis: OnRedis
):
    a, b = on_redis.node(), on_redis.node()
    port = a.port
    try:
        ann = open_page(browser, a.http, "Ann")
        bob = open_page(browser, b.http, "Bob")
        join(ann, "lobby")
        join(bob, "lobby")
        say_and_see(bob, "before")
        expect(said(ann)).to_have_text(["Bobbefore"])
        a.stop()
        wait_disconnected(ann)
        say_and_see(bob, "unheard")
        assert on_redis.forget() > 0  # the room's history with the rest: a new epoch from here
        a = on_redis.node(port)
        expect(ann.locator("body")).to_have_attribute("data-state", "connected")
        expect(missing(ann)).to_have_text([MISSING])
        expect(said(ann)).to_have_text(["Bobbefore"])
        say_and_see(bob, "after")  # offset 1 of the new epoch: both pages follow it
        expect(said(ann)).to_have_text(["Bobbefore", "Bobafter"])
        expect(ann.locator("#messages li").last).to_have_text("Bobafter")
        expect(missing(ann)).to_have_count(1)
        expect(missing(bob)).to_have_count(0)  # Bob, connected all along, missed nothing
        epochs = [page.evaluate("window.vwsSocket.position('lobby').epoch") for page in (ann, bob)]
        assert epochs[0] == epochs[1]
        ann.context.close()
        bob.context.close()
    finally:
        a.stop()
        b.stop()


def test_a_page_back_after_a_restart_on_memory_is_told_that_messages_may_be_missing(
    browser: Browser,
):
    server = RunningServer(REPO / "routes.toml")
    port = server.port
    try:
        ann = open_page(browser, server.http, "Ann")
        bob = open_page(browser, server.http, "Bob")
        join(ann, "lobby")
        join(bob, "lobby")
        say_and_see(bob, "before")
        expect(said(ann)).to_have_text(["Bobbefore"])
        server.stop()  # the memory backplane's history goes with the process
        for page in (ann, bob):
            wait_disconnected(page)
        server = RunningServer(REPO / "routes.toml", args=("--port", str(port)))
        for page in (ann, bob):
            expect(page.locator("body")).to_have_attribute("data-state", "connected")
            expect(missing(page)).to_have_text([MISSING])
            expect(missing(page)).to_have_attribute("data-reason", "not_recovered")
        say_and_see(bob, "after")
        expect(said(ann)).to_have_text(["Bobbefore", "Bobafter"])
        ann.context.close()
        bob.context.close()
    finally:
        server.stop()

"""The status page in a real browser (Debian's Chromium driven by Playwright): it fills in from
``/_vws/status``, follows live traffic, and asks for the admin key when one is set."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from conftest import APPS, DEMO_APP
from playwright.async_api import Browser, Page, async_playwright, expect

from vws.testing import LiveServer

pytestmark = pytest.mark.anyio

#: Debian's Chromium (.ci/run installs it; ``playwright install`` is never run).
CHROMIUM = "/usr/bin/chromium"
KEY = "browser-test-key-0123456789abcdef"
#: The page polls every 2 s: give each expectation a few polls.
POLLS = 10_000
#: Where to save a screenshot of the page (for docs/); nowhere when unset.
SCREENSHOT_ENV = "VWS_STATUS_SCREENSHOT"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            yield browser
        finally:
            await browser.close()


def serve(folder: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.syspath_prepend(str(APPS))
    config = folder / "routes.toml"
    config.write_text(text)
    live = LiveServer(config).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    yield from serve(tmp_path, DEMO_APP + '\n[plugins]\nload = ["e2e_plugins"]\n', monkeypatch)


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    yield from serve(tmp_path, DEMO_APP + f'\n[admin]\nkey = "{KEY}"\n', monkeypatch)


async def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = await browser.new_page(viewport={"width": 1280, "height": 960})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    return page, problems


async def test_the_page_shows_live_connections_traffic_routes_and_rooms(
    chromium: Browser, live: LiveServer
) -> None:
    page, problems = await open_page(chromium, f"{live.http}/_vws")
    await expect(page.locator("#live")).to_have_text("live · every 2 s", timeout=POLLS)
    await expect(page.locator("#connections")).to_have_text("0")
    await expect(page.locator("#plugins")).to_contain_text("e2e_plugins")
    await expect(page.locator("#config")).to_contain_text("routes.toml")

    alice = await live.connect("/ws", name="alice")
    bob = await live.connect("/ws", name="bob")
    carol = await live.connect("/other", name="carol")
    for n in range(5):
        await alice.request("echo", n)
    for client in (alice, bob, carol):
        await client.join("lobby")
    await bob.join("quiet")

    await expect(page.locator("#connections")).to_have_text("3", timeout=POLLS)
    echo = page.locator("#routes tbody tr", has=page.locator("code", has_text="echo")).first
    await expect(echo.locator("td").nth(2)).to_have_text("5", timeout=POLLS)
    await expect(echo.locator("td").nth(6)).to_have_text("5")  # calls timed
    rooms = page.locator("#largest tbody tr")
    await expect(rooms.first).to_contain_text("lobby")
    await expect(rooms.first.locator("td").nth(2)).to_have_text("2")
    await expect(rooms).to_have_count(3)
    await expect(page.locator("#chart polyline.in")).to_have_count(1)
    await expect(page.locator("#backplane")).to_have_text("ok")

    if os.environ.get(SCREENSHOT_ENV):
        await page.screenshot(path=os.environ[SCREENSHOT_ENV], full_page=True)
    await bob.close()
    await expect(page.locator("#connections")).to_have_text("2", timeout=POLLS)
    assert problems == []


async def test_with_an_admin_key_the_page_asks_for_it(chromium: Browser, keyed: LiveServer) -> None:
    page, problems = await open_page(chromium, f"{keyed.http}/_vws")
    await expect(page.locator("#login")).to_be_visible(timeout=POLLS)
    await expect(page.locator("#live")).to_contain_text("admin key needed")
    await page.locator("#login input").fill(KEY)
    await page.locator("#login button").click()
    await expect(page.locator("#live")).to_have_text("live · every 2 s", timeout=POLLS)
    await expect(page.locator("#login")).to_be_hidden()
    await expect(page.locator("#routes")).to_contain_text("/guarded")
    # the 401s before the key was given are the only errors the console saw
    assert all("401" in problem for problem in problems), problems

"""The demo page in a real browser: Debian's Chromium driven by Playwright, against a real
``vws run`` of the repository's routes.toml. Screenshots for docs/browser.md are taken here."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import REPO, RunningServer, free_port
from playwright.sync_api import Browser, BrowserType, Page, Playwright, expect, sync_playwright
from test_first_hour import wait_for_log

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "docs" / "screenshots"
#: Every page is a context of its own (separate storage, like two people's browsers).
CONTEXT: dict[str, Any] = {"viewport": {"width": 1280, "height": 720}}
#: Long enough for a reconnect after a server restart under a loaded CI machine.
WAIT_MS = 20_000

expect.set_options(timeout=WAIT_MS)


# pytest-playwright keeps one Playwright for the whole session, and the sync API keeps an event
# loop running while it lives: every async test collected after this module would then fail
# ("asyncio.run() cannot be called from a running event loop"). These three fixtures narrow it
# to this module; the plugin's launch and context arguments (--headed, --slowmo, ...) still apply.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright) -> BrowserType:
    return playwright.chromium


@pytest.fixture(scope="module")
def browser(
    browser_type: BrowserType, browser_type_launch_args: dict[str, Any]
) -> Iterator[Browser]:
    browser = browser_type.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium (``playwright install`` is never run)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningServer]:
    server = RunningServer(REPO / "routes.toml")
    yield server
    server.stop()


def open_page(browser: Browser, server_http: str, name: str) -> Page:
    """A page of its own (its own browser context), logged in as ``name`` and connected."""
    page = browser.new_context(**CONTEXT).new_page()
    page.goto(server_http + "/")
    page.fill("#name", name)
    page.click("#login button")
    expect(page.locator("body")).to_have_attribute("data-state", "connected")
    return page


def join(page: Page, room: str) -> None:
    page.fill("#room-name", room)
    page.click("#join button")
    expect(page.locator(f'#rooms li[data-room="{room}"]')).to_have_attribute("aria-current", "true")


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def members(page: Page) -> Any:
    return page.locator("#members li")


def test_two_pages_chat_in_a_room(browser: Browser, demo: RunningServer):
    ann = open_page(browser, demo.http, "Ann")
    bob = open_page(browser, demo.http, "Bob")
    join(ann, "lobby")
    join(bob, "lobby")
    say(ann, "Hello Bob!")
    expect(bob.locator("#messages li").last).to_have_text("AnnHello Bob!")
    say(bob, "Hi Ann, how is the router?")
    expect(ann.locator("#messages li").last).to_have_text("BobHi Ann, how is the router?")
    expect(ann.locator("#messages li.mine")).to_have_text(["AnnHello Bob!"])
    # a direct message by client id: Ann clicks Bob in the member list
    ann.locator("#members li", has_text="Bob").click()
    bob_id = bob.evaluate("window.vwsSocket.clientId")
    expect(ann.locator("#direct-to")).to_have_value(bob_id)
    ann.fill("#direct-text", "just between us")
    ann.click("#direct button")
    expect(bob.locator("#directs li")).to_have_text([re.compile("^Ann .*just between us$")])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ann.screenshot(path=SCREENSHOTS / "demo-chat.png")
    ann.context.close()
    bob.context.close()


def test_member_list_follows_joins_and_leaves(browser: Browser, demo: RunningServer):
    ann = open_page(browser, demo.http, "Ann")
    join(ann, "garden")
    expect(members(ann)).to_have_text([re.compile("^Ann")])
    bob = open_page(browser, demo.http, "Bob")
    join(bob, "garden")
    expect(members(ann)).to_have_count(2)
    expect(ann.locator("#member-count")).to_have_text("2")
    expect(ann.locator("#members li", has_text="Bob")).to_be_visible()
    expect(members(bob)).to_have_count(2)
    bob.click('#rooms li[data-room="garden"] button.leave')
    expect(members(ann)).to_have_text([re.compile("^Ann")])
    expect(ann.locator("#messages li.system").last).to_have_text("Bob left")
    join(bob, "garden")
    expect(members(ann)).to_have_count(2)
    bob.context.close()  # a closed tab leaves its rooms too
    expect(members(ann)).to_have_count(1)
    ann.context.close()


def test_typing_indicator_appears_and_clears(browser: Browser, demo: RunningServer):
    ann = open_page(browser, demo.http, "Ann")
    bob = open_page(browser, demo.http, "Bob")
    join(ann, "porch")
    join(bob, "porch")
    typing = ann.locator("#typing")
    expect(typing).to_have_attribute("data-state", "idle")
    bob.locator("#text").press_sequentially("I am wri")
    expect(typing).to_have_attribute("data-state", "typing")
    expect(typing).to_have_text("Bob is typing…")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ann.screenshot(path=SCREENSHOTS / "demo-typing.png")
    bob.locator("#text").press_sequentially("ting")
    bob.press("#text", "Enter")  # sending a message ends typing
    expect(typing).to_have_attribute("data-state", "idle")
    expect(typing).to_have_text("")
    bob.locator("#text").press_sequentially("again")
    expect(typing).to_have_attribute("data-state", "typing")
    bob.fill("#text", "")  # clearing the field ends typing too
    expect(typing).to_have_attribute("data-state", "idle")
    ann.context.close()
    bob.context.close()


def test_pages_reconnect_after_a_restart_and_are_back_in_their_rooms(browser: Browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    server = RunningServer(REPO / "routes.toml")
    port = server.port
    try:
        ann = open_page(browser, server.http, "Ann")
        bob = open_page(browser, server.http, "Bob")
        join(ann, "lobby")
        join(bob, "lobby")
        join(bob, "kitchen")
        first_id = ann.evaluate("window.vwsSocket.clientId")
        server.stop()
        for page in (ann, bob):
            expect(page.locator("#state")).to_have_attribute(
                "data-state", re.compile("^(disconnected|reconnecting)$")
            )
        ann.screenshot(path=SCREENSHOTS / "demo-reconnecting.png")
        server = RunningServer(REPO / "routes.toml", args=("--port", str(port)))
        for page in (ann, bob):
            expect(page.locator("body")).to_have_attribute("data-state", "connected")
        assert ann.evaluate("window.vwsSocket.clientId") != first_id
        assert sorted(bob.evaluate("[...window.vwsSocket.rooms]")) == ["kitchen", "lobby"]
        expect(members(bob)).to_have_text([re.compile("^Bob")])  # kitchen, Bob's open room
        bob.click('#rooms li[data-room="lobby"] button.open')
        for page in (ann, bob):
            expect(members(page)).to_have_count(2)
        say(bob, "back again")
        expect(ann.locator("#messages li").last).to_have_text("Bobback again")
        ann.context.close()
        bob.context.close()
    finally:
        server.stop()


class ForeignSite(BaseHTTPRequestHandler):
    """Another origin's page that tries to open the vws server's /ws."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def foreign_site(demo: RunningServer) -> Iterator[str]:
    port = free_port()
    handler = type("Site", (ForeignSite,), {"page": _foreign_page(demo).encode()})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _foreign_page(demo: RunningServer) -> str:
    return f"""<!doctype html><body data-state="loading"><script type="module">
import {{ connect }} from "{demo.http}/_vws/vws.js";
const socket = connect("{demo.url}/ws", {{ reconnect: false }});
socket.on("connected", () => (document.body.dataset.state = "connected"));
socket.on("disconnected", (d) => (document.body.dataset.state = "refused " + d.code));
</script></body>"""


def test_a_page_from_a_foreign_origin_cannot_connect(
    browser: Browser, demo: RunningServer, foreign_site: str
):
    page = browser.new_context().new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(foreign_site + "/")
    # vws.js loaded from the vws server (it is served to any origin), but the handshake failed
    expect(page.locator("body")).to_have_attribute("data-state", "refused 1006")
    assert f"WebSocket connection to '{demo.url}/ws' failed" in "\n".join(console)
    assert "Unexpected response code: 403" in "\n".join(console)
    # the line is read from the server's pipe by another thread: it may come after the page's
    refused = f"refused origin={foreign_site} status=403 setting=allowed_origins"
    assert wait_for_log(demo, refused), demo.log()
    page.context.close()

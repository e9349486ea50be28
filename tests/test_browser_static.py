"""What a browser fetches over HTTP: the ``[static]`` mount of routes.toml and /_vws/vws.js,
beside WebSocket routes that keep working on the same server."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer, ServerFactory
from wsclient import Peer

from vws.config import StaticConfig, parse_config
from vws.edge.static_files import client_file, find_file
from vws.errors import ConfigError

pytestmark = pytest.mark.anyio

APP = """
[static]
directory = "site"
prefix = "{prefix}"

[routes."/ws".events]
echo = "e2e_handlers:echo"

[routes."/app/ws".events]
echo = "e2e_handlers:echo"
"""


def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    (folder / "docs").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>home</h1>")
    (folder / "docs" / "index.html").write_text("<h1>docs</h1>")
    (folder / "app.js").write_text("export const x = 1;")
    (folder / "logo.svg").write_text("<svg/>")
    (folder / "data.bin").write_bytes(b"\x00\x01")
    (folder / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("not served")
    return folder


@pytest.fixture
def served(tmp_path: Path, start_server: ServerFactory) -> RunningServer:
    site(tmp_path)
    return start_server(APP.format(prefix="/"))


async def test_files_are_served_with_their_types(served: RunningServer):
    async with httpx.AsyncClient(base_url=served.http) as http:
        home = await http.get("/")
        assert (home.status_code, home.text) == (200, "<h1>home</h1>")
        assert home.headers["content-type"] == "text/html; charset=utf-8"
        assert home.headers["cache-control"] == "no-cache"
        assert home.headers["x-content-type-options"] == "nosniff"
        assert (await http.get("/index.html")).text == "<h1>home</h1>"
        assert (await http.get("/docs/")).text == "<h1>docs</h1>"
        script = await http.get("/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert (await http.get("/logo.svg")).headers["content-type"].startswith("image/svg+xml")
        binary = await http.get("/data.bin")
        assert binary.headers["content-type"] == "application/octet-stream"
        assert binary.content == b"\x00\x01"
        head = await http.head("/app.js")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len("export const x = 1;"))


async def test_an_unchanged_file_answers_304(served: RunningServer):
    async with httpx.AsyncClient(base_url=served.http) as http:
        first = await http.get("/app.js")
        again = await http.get("/app.js", headers={"if-none-match": first.headers["etag"]})
        assert (again.status_code, again.content) == (304, b"")
        stale = await http.get("/app.js", headers={"if-none-match": '"other"'})
        assert stale.status_code == 200


async def test_nothing_outside_the_folder_or_hidden_is_served(served: RunningServer):
    async with httpx.AsyncClient(base_url=served.http) as http:
        for path in ("/.env", "/../outside.txt", "/%2e%2e/outside.txt", "/docs/../../outside.txt"):
            answer = await http.get(path)
            assert answer.status_code == 404, path
            assert "not served" not in answer.text and "SECRET" not in answer.text
        assert (await http.get("/missing.html")).status_code == 404
        assert (await http.post("/index.html")).status_code == 404


async def test_websocket_paths_still_route_beside_the_mount(served: RunningServer):
    async with httpx.AsyncClient(base_url=served.http) as http:
        upgrade = await http.get("/ws")
        assert upgrade.status_code == 426 and upgrade.headers["upgrade"] == "websocket"
    async with await Peer.connect(served.url + "/ws") as peer:
        assert await peer.call("echo", "hi") == "hi"


async def test_a_prefix_mount(tmp_path: Path, start_server: ServerFactory):
    site(tmp_path)
    server = start_server(APP.format(prefix="/app"))
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.get("/app/")).text == "<h1>home</h1>"
        assert (await http.get("/app/docs/")).text == "<h1>docs</h1>"
        moved = await http.get("/app?x=1")
        assert moved.status_code == 308 and moved.headers["location"] == "/app/?x=1"
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/index.html")).status_code == 404
    async with await Peer.connect(server.url + "/app/ws") as peer:  # a route under the prefix
        assert await peer.call("echo", 1) == 1


async def test_the_client_script_is_served(served: RunningServer):
    async with httpx.AsyncClient(base_url=served.http) as http:
        script = await http.get("/_vws/vws.js", headers={"origin": "http://elsewhere.test"})
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert script.headers["access-control-allow-origin"] == "*"
        assert script.content == client_file().read_bytes()
        cached = await http.get("/_vws/vws.js", headers={"if-none-match": script.headers["etag"]})
        assert cached.status_code == 304
        assert (await http.post("/_vws/vws.js")).status_code == 405


def test_the_client_script_is_small():
    size = len(gzip.compress(client_file().read_bytes(), compresslevel=9))
    print(f"vws.js: {size} bytes gzipped")
    assert size <= 4096


def test_the_mount_follows_a_reload(tmp_path: Path, start_server: ServerFactory):
    site(tmp_path)
    server = start_server(APP.format(prefix="/"))
    assert httpx.get(server.http + "/app.js").status_code == 200
    server.config.write_text(APP.format(prefix="/files"))
    _eventually(lambda: httpx.get(server.http + "/files/app.js").status_code == 200)
    assert httpx.get(server.http + "/app.js").status_code == 404


def _eventually(condition, tries: int = 200) -> None:
    import time

    for _ in range(tries):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("the condition never held")


# the config


def test_static_config_errors_are_located(tmp_path: Path):
    source = tmp_path / "routes.toml"
    text = '[static]\ndirectory = "nowhere"\nprefix = "files"\nindex = "a/b.html"\n'
    with pytest.raises(ConfigError) as error:
        parse_config(text, str(source), environ={})
    assert [str(issue) for issue in error.value.issues] == [
        f"{source}:3: static.prefix: a URL prefix must start with '/'",
        f"{source}:2: static.directory: no such folder: {tmp_path / 'nowhere'}",
        f"{source}:4: static.index: expected a file name, like index.html",
    ]
    with pytest.raises(ConfigError) as error:
        parse_config('[static]\ndirectory = "."\nprefix = "/_vws"\n', str(source), environ={})
    assert str(error.value.issues[0]).endswith(
        "static.prefix: /_vws is vws's own: choose another prefix"
    )
    with pytest.raises(ConfigError) as error:
        parse_config('[static]\nfolder = "."\n', str(source), environ={})
    assert [str(issue) for issue in error.value.issues] == [
        f"{source}:2: static.folder: unknown key"
    ]
    with pytest.raises(ConfigError) as error:
        parse_config('[static]\nprefix = "/"\n', str(source), environ={})
    assert [str(issue) for issue in error.value.issues] == [
        f"{source}:1: static: object missing required field directory"
    ]


def test_find_file_refuses_links_out_of_the_folder(tmp_path: Path):
    folder = site(tmp_path)
    (folder / "escape").symlink_to(tmp_path / "outside.txt")
    static = StaticConfig(directory="site")
    assert find_file(static, tmp_path, "/escape") is None
    assert find_file(static, tmp_path, "/app.js") == (folder / "app.js").resolve()

"""The auth plugin: HS256 tokens from the query or the Authorization header, 4401/4403
refusals, claims in client.state, per-room grants, and ``vws token``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import websockets
from conftest import APPS, REPO, RunningServer
from wsclient import Peer

from vws.config import parse_config
from vws.contrib.auth import InvalidToken, Settings, mint, verify
from vws.errors import ConfigError
from vws.hooks import create_manager

pytestmark = pytest.mark.anyio

SECRET = "auth-test-secret-0123456789abcdefghij"
APP = f"""
[plugins]
load = ["auth"]

[plugins.settings.auth]
secret = "{SECRET}"
paths = ["/ws*"]
paths_claim = "paths"
rooms_claim = "rooms"

[routes."/ws".events]
state = "plugin_handlers:state"
[routes."/ws-admin".events]
state = "plugin_handlers:state"
[routes."/open".events]
state = "plugin_handlers:state"
"""


def token(secret: str = SECRET, **claims: Any) -> str:
    claims.setdefault("exp", int(time.time()) + 600)
    claims.setdefault("paths", ["/ws", "/open"])
    return mint(claims, secret)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("auth") / "routes.toml"
    config.write_text(APP)
    running = RunningServer(config)
    yield running
    running.stop()


async def refused(url: str, **options: Any) -> tuple[int, str]:
    async with websockets.connect(url, **options) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_valid_token_puts_its_claims_in_state(server: RunningServer):
    good = token(sub="ann", rooms=["team-*"])
    async with await Peer.connect(f"{server.url}/ws?token={good}") as a:
        claims = (await a.call("state"))["claims"]
        assert claims["sub"] == "ann" and claims["rooms"] == ["team-*"]
    header = {"Authorization": f"Bearer {token(sub='bob')}"}
    async with await Peer.connect(f"{server.url}/ws", additional_headers=header) as b:
        assert (await b.call("state"))["claims"]["sub"] == "bob"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: None, "a token is required"),
        (lambda: "not-a-token", "invalid token: malformed token"),
        (
            lambda: token(secret="another-secret-0123456789abcdefghijk"),
            "invalid token: bad signature",
        ),
        (lambda: token(exp=int(time.time()) - 5), "invalid token: the token has expired"),
        (
            lambda: mint({"sub": "x", "paths": ["/ws"]}, SECRET),
            "invalid token: the token has no exp claim",
        ),
        (lambda: token(nbf=int(time.time()) + 600), "invalid token: the token is not valid yet"),
    ],
)
async def test_no_or_bad_token_is_refused_with_4401(server: RunningServer, make, reason: str):
    value = make()
    url = f"{server.url}/ws" + (f"?token={value}" if value else "")
    assert await refused(url) == (4401, reason)


async def test_the_none_algorithm_is_refused(server: RunningServer):
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none'})}.{part({'sub': 'eve', 'exp': 2**40})}."
    assert await refused(f"{server.url}/ws?token={unsigned}") == (
        4401,
        "invalid token: only HS256 tokens are accepted",
    )


async def test_a_token_not_granted_the_path_is_refused_with_4403(server: RunningServer):
    assert await refused(f"{server.url}/ws-admin?token={token()}") == (
        4403,
        "the token does not allow /ws-admin",
    )
    admin = token(paths=["/ws*"])
    async with await Peer.connect(f"{server.url}/ws-admin?token={admin}") as a:
        assert await a.call("state")


async def test_rooms_are_joined_only_as_the_token_grants(server: RunningServer):
    async with await Peer.connect(f"{server.url}/ws?token={token(rooms=['team-*', 'lobby'])}") as a:
        assert await a.call("joinRoom", room="team-red") == {"room": "team-red"}
        assert await a.call("joinRoom", room="lobby") == {"room": "lobby"}
        reply = await a.request("joinRoom", room="admins")
        assert reply["payload"] == {
            "code": "join_denied",
            "message": "the token does not allow room 'admins'",
        }
    async with await Peer.connect(f"{server.url}/ws?token={token()}") as b:  # no rooms claim
        assert (await b.request("joinRoom", room="lobby"))["payload"]["code"] == "join_denied"


async def test_an_open_path_needs_no_token_but_refuses_a_bad_one(server: RunningServer):
    async with await Peer.connect(f"{server.url}/open") as a:
        assert await a.call("state") == {}
        assert await a.call("joinRoom", room="anything") == {"room": "anything"}
    assert (await refused(f"{server.url}/open?token=garbage"))[0] == 4401


def vws_token(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "vws"), "token", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)])},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_vws_token_mints_a_token_the_server_accepts(server: RunningServer):
    claims = ["--claim", 'rooms=["cli-*"]', "--claim", 'paths=["/ws"]', "--claim", "team=blue"]
    result = await anyio.to_thread.run_sync(
        lambda: vws_token("--sub", "cli-user", *claims, cwd=server.config.parent)
    )
    assert result.returncode == 0, result.stderr
    minted = result.stdout.strip()
    async with await Peer.connect(f"{server.url}/ws?token={minted}") as a:
        claims = (await a.call("state"))["claims"]
        assert (claims["sub"], claims["team"], claims["rooms"]) == ("cli-user", "blue", ["cli-*"])
        assert claims["exp"] - claims["iat"] == 3600
        assert await a.call("joinRoom", room="cli-1") == {"room": "cli-1"}


def test_vws_token_without_a_secret_says_how_to_give_one(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "VWS_AUTH_SECRET"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vws"), "token", "--sub", "x"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "pass --secret, set VWS_AUTH_SECRET" in result.stderr


def settings(**changes: Any) -> Settings:
    return Settings(secret=SECRET, **changes)


def test_verify_checks_issuer_audience_and_leeway():
    now = 1_000_000.0
    strict = settings(issuer="vws", audience="chat")
    good = mint({"exp": now + 10, "iss": "vws", "aud": ["chat", "other"]}, SECRET)
    assert verify(good, strict, now)["iss"] == "vws"
    with pytest.raises(InvalidToken, match="wrong issuer"):
        verify(mint({"exp": now + 10, "iss": "x", "aud": "chat"}, SECRET), strict, now)
    with pytest.raises(InvalidToken, match="wrong audience"):
        verify(mint({"exp": now + 10, "iss": "vws", "aud": "x"}, SECRET), strict, now)
    late = mint({"exp": now - 5}, SECRET)
    with pytest.raises(InvalidToken, match="expired"):
        verify(late, settings(), now)
    assert verify(late, settings(leeway=10), now)["exp"] == now - 5
    with pytest.raises(InvalidToken, match="malformed"):
        verify("a." * 5000 + "b", settings(), now)
    long_claims = {"exp": now + 10, "filler": "x" * 200}
    assert verify(mint(long_claims, SECRET), settings(), now)["filler"] == "x" * 200
    with pytest.raises(InvalidToken, match="malformed"):
        verify(mint(long_claims, SECRET), settings(max_token_length=200), now)
    with pytest.raises(InvalidToken, match="bad signature"):
        verify(good[:-4] + "AAAA", settings(), now)


def test_the_secret_is_required_and_checked_at_load(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("VWS_AUTH_SECRET", raising=False)
    text = '[plugins]\nload = ["auth"]\n[plugins.settings.auth]\nleeway = 1\n'
    source = tmp_path / "routes.toml"
    config = parse_config(text, str(source), environ={})
    with pytest.raises(ConfigError) as raised:
        create_manager(config, autoload=False)
    assert [str(i) for i in raised.value.issues] == [
        f"{source}:3: plugins.settings.auth: set secret, or the environment variable "
        "VWS_AUTH_SECRET"
    ]
    monkeypatch.setenv("VWS_AUTH_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32 characters"):
        create_manager(config, autoload=False)
    monkeypatch.setenv("VWS_AUTH_SECRET", SECRET)
    assert create_manager(config, autoload=False).settings["auth"].secret == SECRET

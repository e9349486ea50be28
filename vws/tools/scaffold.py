"""The files ``vws init`` writes: a project that ``vws run`` serves at once.

routes.toml is rendered with tomli-w, section by section, each under a comment that says what
the section is for, so the file is both valid and a short tutorial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from vws.config import ServerConfig

_SECTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "# routes.toml: the WebSocket routes of this app. `vws run` serves it, and edits apply\n"
        "# to the running server. `vws check` validates it; `vws routes` shows the table.\n"
        "\n"
        "# [server]: where to listen and the limits every connection gets. Every key is\n"
        "# optional (these are the defaults); VWS_HOST and VWS_PORT override host and port.\n",
        {
            "server": {
                name: getattr(ServerConfig(), name)
                for name in (
                    "host",
                    "port",
                    "max_message_bytes",
                    "max_rooms_per_client",
                    "send_queue",
                    "slow_consumer",
                    "allowed_origins",
                    "backplane",
                )
            }
        },
    ),
    (
        "# [plugins]: plugins to load (their hooks see every connect, join, leave, message and\n"
        "# outgoing frame): every *.py of `dir`, and modules or installed plugins named in\n"
        "# `load`. [plugins.settings.NAME] is handed to plugin NAME.\n",
        {"plugins": {"dir": "plugins", "settings": {"hello": {"greeting": "welcome"}}}},
    ),
    (
        '# [routes."/ws"]: one WebSocket path. Middleware runs at the handshake and may refuse\n'
        '# the client; broadcast = "route" would keep this path\'s broadcasts to itself.\n',
        {"routes": {"/ws": {"middleware": [], "broadcast": "server"}}},
    ),
    (
        '# Its events: a client frame {"event": NAME, "payload": ...} calls the function named\n'
        "# here with (client, payload). connect/disconnect are called with (client).\n",
        {
            "routes": {
                "/ws": {
                    "events": {
                        "connect": "handlers:on_connect",
                        "message": "handlers:on_message",
                    }
                }
            }
        },
    ),
    (
        "# The long form adds a schema: the payload is validated and converted first.\n",
        {
            "routes": {
                "/ws": {
                    "events": {"chat": {"handler": "handlers:on_chat", "schema": "handlers:Chat"}}
                }
            }
        },
    ),
]

HANDLERS = '''\
"""The handlers routes.toml points at: plain functions taking (client, payload)."""

from __future__ import annotations

import msgspec

from vws import Client


class Chat(msgspec.Struct):
    """The payload of a chat event; a bad one never reaches on_chat (invalid_payload)."""

    room: str
    text: str


def on_connect(client: Client) -> None:
    client.emit("welcome", {"client_id": client.client_id, "note": client.state.get("greeting")})


def on_message(client: Client, payload: object) -> dict[str, bool]:
    client.broadcast("message", {"from": client.client_id, "payload": payload})
    return {"ok": True}  # sent back as the ack when the frame had an "id"


def on_chat(client: Client, chat: Chat) -> dict[str, int]:
    client.to_room("chat", chat.room, {"from": client.client_id, "text": chat.text})
    return {"length": len(chat.text)}
'''

PLUGIN = '''\
"""An example plugin: it greets every client and refuses rooms whose name starts with "_".

Hooks are plain (or async) functions named after the hook, marked with vws.hookimpl.
"""

from __future__ import annotations

import msgspec

from vws import Client, Deny, hookimpl


class Settings(msgspec.Struct):
    """[plugins.settings.hello] in routes.toml, validated at load."""

    greeting: str = "hello"


@hookimpl
def vws_connect(client: Client, settings: Settings) -> None:
    client.state["greeting"] = settings.greeting


@hookimpl
def vws_join_room(client: Client, room: str) -> None:
    if room.startswith("_"):
        raise Deny("rooms starting with _ are private")
'''

TEST = '''\
"""Testing a handler: call it with a stand-in client and look at what it sent."""

from __future__ import annotations

from handlers import Chat, on_chat


class FakeClient:
    client_id = "client-1"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []

    def to_room(self, event: str, room: str, payload: object = None) -> None:
        self.sent.append((event, room, payload))


def test_on_chat_sends_to_the_room_and_answers_the_length() -> None:
    client = FakeClient()
    assert on_chat(client, Chat(room="lobby", text="hi")) == {"length": 2}
    assert client.sent == [("chat", "lobby", {"from": "client-1", "text": "hi"})]
'''

#: pytest finds this file from any folder of the project and makes its folder the rootdir, so
#: `pytest` imports the handlers (pythonpath) and finds the tests wherever it is started.
PYTEST_INI = """\
[pytest]
# `pytest` in this folder runs tests/; in tests/ too. The project's modules import as top-level
# names (handlers, plugins), as `vws run` imports them.
testpaths = tests
pythonpath = .
"""


def routes_toml() -> str:
    """The commented routes.toml of a new project."""
    return "\n".join(comment + tomli_w.dumps(data) for comment, data in _SECTIONS)


def files() -> dict[str, str]:
    """Every file of a new project, by path relative to its folder."""
    return {
        "routes.toml": routes_toml(),
        "handlers.py": HANDLERS,
        "plugins/hello.py": PLUGIN,
        "tests/test_handlers.py": TEST,
        "pytest.ini": PYTEST_INI,
    }


def write(folder: Path) -> list[Path]:
    """Write a new project into ``folder``; refuses to overwrite an existing file.

    Raises:
        FileExistsError: one of the files exists already (nothing is written then).
    """
    planned = {folder / name: text for name, text in files().items()}
    existing = [path for path in planned if path.exists()]
    if existing:
        raise FileExistsError(", ".join(str(p) for p in existing))
    for path, text in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(planned)

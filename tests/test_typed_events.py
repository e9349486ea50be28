"""Typed events and the AsyncAPI document: any msgspec type as a schema, validated at the edge."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import RunningServer
from test_cli import vws
from wsclient import Peer

VALIDATOR = Path(__file__).parent / "asyncapi"

TYPED = """
[server]
port = 8123

[routes."/typed".events]
plain = "e2e_handlers:describe"

[routes."/typed".events.point]
handler = "e2e_handlers:describe"
schema = "e2e_handlers:Point"

[routes."/typed".events.size]
handler = "e2e_handlers:describe"
schema = "e2e_handlers:Size"

[routes."/typed".events.move]
handler = "e2e_handlers:describe"
schema = "e2e_handlers:Move"

[routes."/typed".events.numbers]
handler = "e2e_handlers:describe"
schema = "e2e_handlers:Numbers"

[routes."/private"]
broadcast = "route"
[routes."/private".events]
plain = "e2e_handlers:describe"
"""


@pytest.fixture(scope="module")
def typed_server(tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("typed") / "routes.toml"
    config.write_text(TYPED)
    server = RunningServer(config)
    yield server
    server.stop()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        ("point", {"x": 1, "y": 2}, {"type": "Point", "value": {"x": 1, "y": 2}}),
        ("size", {"width": 3, "height": 4}, {"type": "dict", "value": {"width": 3, "height": 4}}),
        ("move", {"dx": 5}, {"type": "Move", "value": [5, 0]}),
        ("numbers", [1, 2], {"type": "list", "value": [1, 2]}),
        ("plain", {"any": ["json"]}, {"type": "dict", "value": {"any": ["json"]}}),
    ],
)
async def test_the_handler_receives_the_converted_value(typed_server, event, payload, expected):
    async with await Peer.connect(typed_server.url + "/typed") as a:
        reply = await a.call(event, payload)
        if event == "point":  # a Struct is sent back as its fields
            assert reply == {"type": "Point", "value": {"x": 1, "y": 2}}
        else:
            assert reply == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("event", "payload", "where"),
    [
        ("point", {"x": 1, "y": "2"}, "$.y"),
        ("size", {"width": 3}, "height"),
        ("move", {"dx": "far"}, "$.dx"),
        ("numbers", [1, "two"], "$[1]"),
        ("numbers", "not a list", "array"),
    ],
)
async def test_invalid_payload_names_the_failing_path(typed_server, event, payload, where):
    async with await Peer.connect(typed_server.url + "/typed") as a:
        reply = await a.request(event, payload)
        assert reply["payload"]["code"] == "invalid_payload"
        assert where in reply["payload"]["message"]


def test_check_reports_a_schema_that_is_not_a_type(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(
        '[routes."/x".events.e]\nhandler = "e2e_handlers:echo"\nschema = "e2e_handlers:echo"\n'
    )
    result = vws("check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith('routes.toml:3: routes."/x".events.e.schema: ')
    assert "is not a type" in result.stderr


def validate(document: Path) -> dict:
    node = shutil.which("node")
    assert node, "Node.js is needed to validate AsyncAPI documents"
    assert (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "the AsyncAPI parser is not installed: run `npm ci --prefix tests/asyncapi` (.ci/run does)"
    )
    result = subprocess.run(
        [node, str(VALIDATOR / "validate.mjs"), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=VALIDATOR,
    )
    report = json.loads(result.stdout)
    report["exit"] = result.returncode
    return report


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_the_asyncapi_document_validates_with_the_official_parser(tmp_path: Path, form: str):
    (tmp_path / "routes.toml").write_text(TYPED)
    result = vws("asyncapi", "--format", form, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = tmp_path / f"asyncapi.{form}"
    document.write_text(result.stdout)
    report = validate(document)
    assert report["exit"] == 0 and report["valid"], report["diagnostics"]
    assert report["version"] == "3.0.0"
    assert report["channels"] == ["/typed", "/private"]
    if form == "json":
        data = json.loads(result.stdout)
        messages = data["channels"]["typed"]["messages"]
        assert {
            "point",
            "size",
            "move",
            "numbers",
            "plain",
            "joinRoom",
            "leftRoom",
            "join-room",
            "left-room",
            "connected",
            "ack",
            "error",
        } <= set(messages)
        point = messages["point"]["payload"]["properties"]["payload"]
        assert point == {"$ref": "#/components/schemas/Point"}
        assert data["components"]["schemas"]["Point"]["required"] == ["x", "y"]


def test_the_validator_rejects_a_broken_document(tmp_path: Path):
    (tmp_path / "routes.toml").write_text(TYPED)
    data = json.loads(vws("asyncapi", cwd=tmp_path).stdout)
    del data["operations"]["typed.receive"]["action"]
    document = tmp_path / "broken.json"
    document.write_text(json.dumps(data))
    report = validate(document)
    assert report["exit"] == 1 and not report["valid"]

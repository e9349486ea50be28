"""Unit tests for vws.routing.compile_table: references resolve, errors are located."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent
from types import MappingProxyType
from typing import Any

import msgspec
import pytest

from vws.config import parse_config
from vws.errors import ConfigError, ConfigIssue
from vws.routing import DispatchTable, compile_table


@dataclass
class Project:
    """A folder holding a routes.toml and the throwaway modules it references."""

    root: Path

    def module(self, source: str, name: str | None = None) -> str:
        """Write a module with a name no other test uses; return that name."""
        name = name or f"mod_{uuid.uuid4().hex}"
        (self.root / f"{name}.py").write_text(dedent(source), encoding="utf-8")
        return name

    def package(self, files: dict[str, str]) -> str:
        name = f"pkg_{uuid.uuid4().hex}"
        folder = self.root / name
        folder.mkdir()
        (folder / "__init__.py").write_text("", encoding="utf-8")
        for file, source in files.items():
            (folder / f"{file}.py").write_text(dedent(source), encoding="utf-8")
        return name

    def compile(self, toml: str) -> DispatchTable:
        source = self.root / "routes.toml"
        source.write_text(toml, encoding="utf-8")
        return compile_table(parse_config(toml, str(source), environ={}))

    def issues(self, toml: str) -> list[ConfigIssue]:
        with pytest.raises(ConfigError) as info:
            self.compile(toml)
        issues = info.value.issues
        assert issues
        assert all(i.file == str(self.root / "routes.toml") for i in issues)
        assert "Traceback" not in str(info.value)
        return issues

    def issue(self, toml: str) -> ConfigIssue:
        issues = self.issues(toml)
        assert len(issues) == 1, issues
        return issues[0]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    path = list(sys.path)
    modules = set(sys.modules)
    yield Project(tmp_path)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


HANDLERS = """\
import msgspec

class Point(msgspec.Struct):
    x: int
    y: int

def on_message(client, payload):
    return payload

async def on_async(client, payload):
    return payload

def on_connect(client):
    pass

async def on_disconnect(client):
    pass

def middleware(client):
    pass

def flexible(*args, **kwargs):
    pass

def with_default(client, payload=None, extra=1):
    pass

class Handlers:
    @staticmethod
    def nested(client, payload):
        return "nested"

class AsyncCallable:
    async def __call__(self, client, payload):
        return None

async_callable = AsyncCallable()
"""


def test_module_colon_attribute_resolves(project: Project) -> None:
    mod = project.module(HANDLERS)
    table = project.compile(
        dedent(
            f"""\
            [routes."/ws"]
            middleware = ["{mod}:middleware"]
            [routes."/ws".events]
            message = "{mod}:on_message"
            nested = "{mod}:Handlers.nested"
            connect = "{mod}:on_connect"
            disconnect = "{mod}:on_disconnect"
            [routes."/ws".events.point]
            handler = "{mod}:on_async"
            schema = "{mod}:Point"
            """
        )
    )
    module = sys.modules[mod]
    route = table.routes["/ws"]
    assert route.path == "/ws"
    assert set(route.events) == {"message", "nested", "point"}  # lifecycle is kept apart
    message = route.events["message"]
    assert message.name == "message"
    assert message.handler.function is module.on_message
    assert message.handler.reference == f"{mod}:on_message"
    assert message.schema is None
    assert route.events["nested"].handler.function is module.Handlers.nested
    point = route.events["point"]
    assert point.handler.function is module.on_async
    assert point.schema is module.Point
    assert point.schema_reference == f"{mod}:Point"
    assert [m.function for m in route.middleware] == [module.middleware]
    assert route.on_connect is not None and route.on_connect.function is module.on_connect
    assert route.on_disconnect is not None
    assert route.on_disconnect.function is module.on_disconnect
    assert route.broadcast == "server"
    assert table.config.routes["/ws"].events["message"].handler == f"{mod}:on_message"


def test_module_dot_attribute_uses_the_longest_importable_prefix(project: Project) -> None:
    pkg = project.package({"chat": HANDLERS})
    table = project.compile(
        dedent(
            f"""\
            [routes."/ws".events]
            message = "{pkg}.chat.on_message"
            nested = "{pkg}.chat.Handlers.nested"
            explicit = "{pkg}.chat:on_async"
            [routes."/ws".events.point]
            handler = "{pkg}.chat.on_message"
            schema = "{pkg}.chat.Point"
            """
        )
    )
    module = sys.modules[f"{pkg}.chat"]
    events = table.routes["/ws"].events
    assert events["message"].handler.function is module.on_message
    assert events["nested"].handler.function is module.Handlers.nested
    assert events["explicit"].handler.function is module.on_async
    assert events["point"].schema is module.Point


def test_the_folder_of_routes_toml_is_importable(project: Project) -> None:
    mod = project.module(HANDLERS)
    assert str(project.root) not in sys.path
    table = project.compile(f'[routes."/ws".events]\nmessage = "{mod}:on_message"\n')
    assert str(project.root.resolve()) in sys.path
    assert table.routes["/ws"].events["message"].handler.function(None, 5) == 5


def test_lifecycle_handlers_are_not_events(project: Project) -> None:
    mod = project.module(HANDLERS)
    table = project.compile(f'[routes."/ws".events]\nconnect = "{mod}:on_connect"\n')
    route = table.routes["/ws"]
    assert "connect" not in route.events
    assert route.on_connect is not None
    assert route.on_connect.is_async is False
    assert route.on_disconnect is None


def test_async_handlers_are_marked(project: Project) -> None:
    mod = project.module(HANDLERS)
    table = project.compile(
        dedent(
            f"""\
            [routes."/ws"]
            middleware = ["{mod}:middleware"]
            [routes."/ws".events]
            sync = "{mod}:on_message"
            coro = "{mod}:on_async"
            callable = "{mod}:async_callable"
            disconnect = "{mod}:on_disconnect"
            """
        )
    )
    route = table.routes["/ws"]
    assert route.events["sync"].handler.is_async is False
    assert route.events["coro"].handler.is_async is True
    assert route.events["callable"].handler.is_async is True
    assert route.middleware[0].is_async is False
    assert route.on_disconnect is not None and route.on_disconnect.is_async is True


def test_flexible_signatures_are_accepted(project: Project) -> None:
    mod = project.module(HANDLERS)
    table = project.compile(
        dedent(
            f"""\
            [routes."/ws".events]
            a = "{mod}:flexible"
            b = "{mod}:with_default"
            connect = "{mod}:flexible"
            disconnect = "{mod}:with_default"
            """
        )
    )
    assert set(table.routes["/ws"].events) == {"a", "b"}


def test_tables_are_immutable(project: Project) -> None:
    mod = project.module(HANDLERS)
    table = project.compile(f'[routes."/ws".events]\nmessage = "{mod}:on_message"\n')
    assert isinstance(table.routes, MappingProxyType)
    assert isinstance(table.routes["/ws"].events, MappingProxyType)
    routes: Any = table.routes
    events: Any = table.routes["/ws"].events
    with pytest.raises(TypeError):
        routes["/new"] = table.routes["/ws"]
    with pytest.raises(TypeError):
        events["other"] = events["message"]
    with pytest.raises(AttributeError):
        table.routes = {}  # type: ignore[misc]


def test_route_scoped_lists_paths_with_route_broadcast(project: Project) -> None:
    mod = project.module(HANDLERS)
    table = project.compile(
        dedent(
            f"""\
            [routes."/ws".events]
            message = "{mod}:on_message"
            [routes."/private"]
            broadcast = "route"
            [routes."/also"]
            broadcast = "route"
            [routes."/public"]
            broadcast = "server"
            """
        )
    )
    assert table.route_scoped == frozenset({"/private", "/also"})
    assert table.routes["/private"].broadcast == "route"
    assert table.routes["/private"].events == {}


def test_no_routes_gives_an_empty_table(project: Project) -> None:
    table = project.compile("[server]\nport = 1\n")
    assert dict(table.routes) == {}
    assert table.route_scoped == frozenset()


# --- located errors ------------------------------------------------------------------------


def test_module_that_does_not_import(project: Project) -> None:
    missing = f"missing_{uuid.uuid4().hex}"
    issue = project.issue(f'[routes."/ws".events]\n\nmessage = "{missing}:on_message"\n')
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.message')
    assert missing in issue.message
    assert "import" in issue.message


def test_dotted_reference_to_nothing_importable(project: Project) -> None:
    missing = f"missing_{uuid.uuid4().hex}"
    issue = project.issue(f'[routes."/ws".events]\nmessage = "{missing}.sub.fn"\n')
    assert (issue.line, issue.key) == (2, 'routes."/ws".events.message')
    assert missing in issue.message


def test_missing_attribute(project: Project) -> None:
    mod = project.module(HANDLERS)
    issue = project.issue(
        f'[routes."/ws".events]\nok = "{mod}:on_message"\nmessage = "{mod}:nope"\n'
    )
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.message')
    assert "nope" in issue.message
    assert mod in issue.message


def test_missing_nested_attribute(project: Project) -> None:
    mod = project.module(HANDLERS)
    issue = project.issue(f'[routes."/ws".events]\nmessage = "{mod}:Handlers.nope"\n')
    assert issue.line == 2
    assert "Handlers.nope" in issue.message


def test_module_whose_import_raises(project: Project) -> None:
    mod = project.module("raise RuntimeError('database is down')\n")
    issue = project.issue(f'[routes."/ws".events]\nmessage = "{mod}:on_message"\n')
    assert (issue.line, issue.key) == (2, 'routes."/ws".events.message')
    assert "RuntimeError" in issue.message
    assert "database is down" in issue.message
    assert "Traceback" not in issue.message
    assert 'File "' not in issue.message


def test_module_with_a_syntax_error(project: Project) -> None:
    mod = project.module("def broken(:\n")
    issue = project.issue(f'[routes."/ws".events]\nmessage = "{mod}:broken"\n')
    assert issue.line == 2
    assert "SyntaxError" in issue.message
    assert "Traceback" not in issue.message


def test_module_whose_import_fails_on_a_missing_dependency(project: Project) -> None:
    dependency = f"dep_{uuid.uuid4().hex}"
    mod = project.module(f"import {dependency}\n")
    issue = project.issue(f'[routes."/ws".events]\nmessage = "{mod}:fn"\n')
    assert issue.line == 2
    assert dependency in issue.message


def test_not_callable(project: Project) -> None:
    mod = project.module("VALUE = 3\n")
    issue = project.issue(f'[routes."/ws".events]\n\n\nmessage = "{mod}:VALUE"\n')
    assert (issue.line, issue.key) == (4, 'routes."/ws".events.message')
    assert "not callable" in issue.message


@pytest.mark.parametrize(
    "signature", ["client", "", "client, payload, extra", "*, client, payload"]
)
def test_handler_that_cannot_take_client_and_payload(project: Project, signature: str) -> None:
    mod = project.module(f"def handler({signature}):\n    pass\n")
    issue = project.issue(f'[routes."/ws".events]\nmessage = "{mod}:handler"\n')
    assert (issue.line, issue.key) == (2, 'routes."/ws".events.message')
    assert "(client, payload)" in issue.message


def test_long_form_handler_error_points_at_the_handler_key(project: Project) -> None:
    mod = project.module("def handler(client):\n    pass\n")
    issue = project.issue(f'[routes."/ws".events.chat]\n# comment\nhandler = "{mod}:handler"\n')
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.chat.handler')


def test_inline_long_form_handler_error(project: Project) -> None:
    mod = project.module("def handler(client):\n    pass\n")
    issue = project.issue(f'[routes."/ws".events]\n\nchat = {{ handler = "{mod}:handler" }}\n')
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.chat.handler')


@pytest.mark.parametrize("name", ["connect", "disconnect"])
def test_lifecycle_handlers_take_only_the_client(project: Project, name: str) -> None:
    mod = project.module(HANDLERS)
    issue = project.issue(f'[routes."/ws".events]\n{name} = "{mod}:on_message"\n')
    assert (issue.line, issue.key) == (2, f'routes."/ws".events.{name}')
    assert "(client)" in issue.message


def test_middleware_takes_only_the_client(project: Project) -> None:
    mod = project.module(HANDLERS)
    issue = project.issue(
        f'[routes."/ws"]\nmiddleware = [\n  "{mod}:middleware",\n  "{mod}:on_message",\n]\n'
    )
    assert (issue.line, issue.key) == (4, 'routes."/ws".middleware[1]')
    assert "(client)" in issue.message


def test_middleware_that_does_not_import(project: Project) -> None:
    missing = f"missing_{uuid.uuid4().hex}"
    issue = project.issue(f'[routes."/ws"]\nmiddleware = ["{missing}:check"]\n')
    assert (issue.line, issue.key) == (2, 'routes."/ws".middleware[0]')


@pytest.mark.parametrize("value", ["3", "'Point'", "lambda x: x"])
def test_schema_that_is_not_a_type(project: Project, value: str) -> None:
    mod = project.module(f"NotAType = {value}\n\ndef handler(client, payload):\n    pass\n")
    issue = project.issue(
        f'[routes."/ws".events.chat]\nhandler = "{mod}:handler"\nschema = "{mod}:NotAType"\n'
    )
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.chat.schema')
    assert "NotAType" in issue.message


def test_schema_that_does_not_resolve(project: Project) -> None:
    mod = project.module(HANDLERS)
    issue = project.issue(
        f'[routes."/ws".events.chat]\nhandler = "{mod}:on_message"\nschema = "{mod}:Nope"\n'
    )
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.chat.schema')
    assert "Nope" in issue.message


def test_plain_types_are_valid_schemas(project: Project) -> None:
    mod = project.module(HANDLERS + "\nIntList = list[int]\n")
    table = project.compile(
        dedent(
            f"""\
            [routes."/ws".events.n]
            handler = "{mod}:on_message"
            schema = "builtins:int"
            [routes."/ws".events.nums]
            handler = "{mod}:on_message"
            schema = "{mod}:IntList"
            """
        )
    )
    events = table.routes["/ws"].events
    assert events["n"].schema is int
    assert msgspec.convert([1, 2], events["nums"].schema) == [1, 2]


def test_every_bad_reference_is_reported_together(project: Project) -> None:
    mod = project.module(HANDLERS + "\nVALUE = 1\n")
    missing = f"missing_{uuid.uuid4().hex}"
    toml = dedent(
        f"""\
        [routes."/a"]
        middleware = ["{missing}:m"]
        [routes."/a".events]
        good = "{mod}:on_message"
        bad = "{mod}:VALUE"
        connect = "{mod}:on_message"

        [routes."/b".events.chat]
        handler = "{mod}:nope"
        schema = "{mod}:VALUE"
        """
    )
    issues = project.issues(toml)
    assert [(i.line, i.key) for i in issues] == [
        (2, 'routes."/a".middleware[0]'),
        (5, 'routes."/a".events.bad'),
        (6, 'routes."/a".events.connect'),
        (9, 'routes."/b".events.chat.handler'),
        (10, 'routes."/b".events.chat.schema'),
    ]


def test_a_lifecycle_handler_takes_no_schema(tmp_path: Path) -> None:
    from vws.config import parse_config

    text = '[routes."/ws".events.connect]\nhandler = "builtins:print"\nschema = "builtins:int"\n'
    config = parse_config(text, str(tmp_path / "routes.toml"), environ={})
    with pytest.raises(ConfigError) as info:
        compile_table(config)
    [issue] = info.value.issues
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.connect.schema')
    assert issue.message == "connect takes no payload, so no schema"

"""Unit tests for vws.config: routes.toml → typed config, and located errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from textwrap import dedent

import msgspec
import pytest

from vws.config import (
    Config,
    EventConfig,
    PluginsConfig,
    RouteConfig,
    ServerConfig,
    load_config,
    parse_config,
)
from vws.errors import ConfigError, ConfigIssue
from vws.routing import compile_table

SOURCE = "conf/routes.toml"

FULL = dedent(
    """\
    [server]
    host = "0.0.0.0"
    port = 9001
    max_message_bytes = 4096
    max_rooms_per_client = 7
    send_queue = 64
    slow_consumer = "drop_oldest"
    allowed_origins = ["https://app.example.com", "http://localhost:3000"]
    backplane = "memory://bus"

    [plugins]
    load = ["presence"]
    [plugins.settings.presence]
    notify = true

    [routes."/ws"]
    middleware = ["app.auth:require_token"]
    broadcast = "server"

    [routes."/ws".events]
    message = "app.chat:on_message"
    connect = "app.chat:on_connect"
    disconnect = "app.chat:on_disconnect"

    [routes."/ws".events.chat]
    handler = "app.chat:on_chat"
    schema = "app.models:ChatMessage"

    [routes."/admins"]
    broadcast = "route"

    [routes."/admins".events]
    admin-message = "app.admin:on_admin_message"
    """
)


def parse(text: str, environ: Mapping[str, str] | None = None) -> Config:
    return parse_config(text, SOURCE, environ={} if environ is None else environ)


def issues_of(text: str, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse(text, environ)
    issues = info.value.issues
    assert issues, "a ConfigError must carry at least one issue"
    assert str(info.value) == "\n".join(str(issue) for issue in issues)
    return issues


def only_issue(text: str, environ: Mapping[str, str] | None = None) -> ConfigIssue:
    issues = issues_of(text, environ)
    assert len(issues) == 1, issues
    return issues[0]


# --- valid files ---------------------------------------------------------------------------


def test_full_file_converts_to_typed_values() -> None:
    config = parse(FULL)
    assert config.source == SOURCE
    assert config.server == ServerConfig(
        host="0.0.0.0",
        port=9001,
        max_message_bytes=4096,
        max_rooms_per_client=7,
        send_queue=64,
        slow_consumer="drop_oldest",
        allowed_origins=("https://app.example.com", "http://localhost:3000"),
        backplane="memory://bus",
    )
    assert isinstance(config.server.allowed_origins, tuple)
    assert config.plugins == PluginsConfig(
        load=("presence",), settings={"presence": {"notify": True}}
    )
    assert list(config.routes) == ["/ws", "/admins"]
    ws = config.routes["/ws"]
    assert ws.middleware == ("app.auth:require_token",)
    assert ws.broadcast == "server"
    assert ws.events == {
        "message": EventConfig(handler="app.chat:on_message"),
        "connect": EventConfig(handler="app.chat:on_connect"),
        "disconnect": EventConfig(handler="app.chat:on_disconnect"),
        "chat": EventConfig(handler="app.chat:on_chat", schema="app.models:ChatMessage"),
    }
    assert config.routes["/admins"] == RouteConfig(
        broadcast="route",
        events={"admin-message": EventConfig(handler="app.admin:on_admin_message")},
    )


def test_defaults_for_an_empty_file() -> None:
    config = parse("")
    server = config.server
    assert server.host == "127.0.0.1"
    assert server.port == 8000
    assert server.max_message_bytes == 65536
    assert server.max_rooms_per_client == 100
    assert server.send_queue == 1024
    assert server.slow_consumer == "disconnect"
    assert server.allowed_origins == ()
    assert server.backplane == "memory://"
    assert config.plugins.load == ()
    assert config.plugins.settings == {}
    assert config.routes == {}


def test_defaults_for_keys_left_out() -> None:
    config = parse('[server]\nport = 1234\n[routes."/ws"]\n')
    assert config.server.port == 1234
    assert config.server.host == "127.0.0.1"
    assert config.server.send_queue == 1024
    assert config.routes["/ws"] == RouteConfig()
    assert config.routes["/ws"].broadcast == "server"
    assert config.routes["/ws"].middleware == ()
    assert config.routes["/ws"].events == {}


def test_inline_long_form_and_dotted_references() -> None:
    config = parse(
        '[routes."/ws".events]\n'
        'chat = { handler = "app.chat.on_chat", schema = "app.models:Chat" }\n'
        'plain = "app.chat.on_plain"\n'
    )
    events = config.routes["/ws"].events
    assert events["chat"] == EventConfig(handler="app.chat.on_chat", schema="app.models:Chat")
    assert events["plain"] == EventConfig(handler="app.chat.on_plain")


@pytest.mark.parametrize("name", ["connect", "disconnect"])
def test_lifecycle_names_may_be_declared(name: str) -> None:
    config = parse(f'[routes."/ws".events]\n{name} = "app:on_{name}"\n')
    assert config.routes["/ws"].events[name].handler == f"app:on_{name}"


def test_event_name_of_128_characters_is_allowed() -> None:
    name = "e" * 128
    config = parse(f'[routes."/ws".events]\n{name} = "a:b"\n')
    assert name in config.routes["/ws"].events


def test_root_is_the_folder_of_the_file(tmp_path: Path) -> None:
    config = parse_config("", str(tmp_path / "routes.toml"), environ={})
    assert config.root == tmp_path.resolve()


# --- error format --------------------------------------------------------------------------


def test_issue_str_is_file_line_key_message() -> None:
    issue = only_issue('[server]\nhost = "h"\nport = "x"\n')
    assert issue == ConfigIssue(SOURCE, 3, "server.port", issue.message)
    assert "int" in issue.message and "str" in issue.message
    assert str(issue) == f"{SOURCE}:3: server.port: {issue.message}"


def test_toml_syntax_error_takes_the_line_from_tomllib() -> None:
    issue = only_issue('[server]\nhost = "h"\n\nport = \nsend_queue = 3\n')
    assert issue.file == SOURCE
    assert issue.line == 4
    assert issue.key == ""
    assert issue.message.startswith("invalid TOML")
    assert str(issue).startswith(f"{SOURCE}:4: invalid TOML")


def test_toml_syntax_error_duplicate_key() -> None:
    issue = only_issue('[server]\nport = 1\nhost = "h"\nport = 2\n')
    assert issue.line == 4
    assert issue.message.startswith("invalid TOML")


def test_toml_syntax_error_at_end_of_document() -> None:
    issue = only_issue('[server]\nhost = """\nabc\n\n')
    assert issue.message.startswith("invalid TOML")
    assert "at end of document" not in issue.message
    assert issue.line == 5  # the last line of the text


def test_unknown_top_level_key() -> None:
    issue = only_issue("[server]\nport = 1\n\n[sever]\nport = 2\n")
    assert (issue.file, issue.line, issue.key) == (SOURCE, 4, "sever")
    assert "unknown key" in issue.message
    assert str(issue).startswith(f"{SOURCE}:4: sever: unknown key")


def test_unknown_top_level_plain_key() -> None:
    issue = only_issue('name = "demo"\n[server]\n')
    assert (issue.line, issue.key) == (1, "name")


def test_unknown_key_inside_server() -> None:
    issue = only_issue('[server]\nhost = "h"\nprot = 8000\n')
    assert (issue.line, issue.key, issue.message) == (
        3,
        "server.prot",
        "unknown key; did you mean port?",
    )
    assert str(issue) == f"{SOURCE}:3: server.prot: unknown key; did you mean port?"


def test_unknown_key_inside_a_route() -> None:
    issue = only_issue('[routes."/ws"]\nbroadcast = "route"\nmidleware = []\n')
    assert (issue.line, issue.key, issue.message) == (
        3,
        ('routes."/ws".midleware'),
        "unknown key; did you mean middleware?",
    )


def test_wrong_type_for_port() -> None:
    issue = only_issue('[server]\nport = "x"\n')
    assert (issue.line, issue.key) == (2, "server.port")
    assert issue.message == "expected int, got str"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("port = 70000", "server.port"),
        ("port = -1", "server.port"),
        ("port = true", "server.port"),
        ("host = 1", "server.host"),
        ("send_queue = 0", "server.send_queue"),
        ("max_rooms_per_client = 1.5", "server.max_rooms_per_client"),
        ('allowed_origins = "*"', "server.allowed_origins"),
        ("backplane = 3", "server.backplane"),
    ],
)
def test_wrong_values_in_server(line: str, key: str) -> None:
    issue = only_issue(f"[server]\n# line 2\n{line}\n")
    assert (issue.line, issue.key) == (3, key)


def test_bad_enum() -> None:
    issue = only_issue('[server]\n\nslow_consumer = "nope"\n')
    assert (issue.line, issue.key) == (3, "server.slow_consumer")
    assert "nope" in issue.message


def test_bad_broadcast_enum_in_route() -> None:
    issue = only_issue('[routes."/ws"]\nbroadcast = "everyone"\n')
    assert (issue.line, issue.key) == (2, 'routes."/ws".broadcast')
    assert "everyone" in issue.message


def test_wrong_type_inside_an_array_names_the_index() -> None:
    issue = only_issue('[plugins]\nload = [\n  "a",\n  2,\n]\n')
    assert (issue.line, issue.key) == (4, "plugins.load[1]")


@pytest.mark.parametrize(
    "name", ["joinRoom", "leftRoom", "join-room", "left-room", "connected", "ack", "error"]
)
def test_reserved_event_names_are_errors(name: str) -> None:
    issue = only_issue(f'[routes."/ws".events]\nok = "a:b"\n"{name}" = "a:b"\n')
    assert (issue.line, issue.key) == (3, f'routes."/ws".events.{name}')
    assert "reserved" in issue.message


def test_reserved_event_name_in_long_form_points_at_its_header() -> None:
    issue = only_issue(
        '[routes."/ws".events]\nok = "a:b"\n[routes."/ws".events.ack]\nhandler = "a:b"\n'
    )
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.ack')


def test_event_name_too_long() -> None:
    name = "e" * 129
    issue = only_issue(f'[routes."/ws".events]\nok = "a:b"\n{name} = "a:b"\n')
    assert (issue.line, issue.key) == (3, f'routes."/ws".events.{name}')


@pytest.mark.parametrize("path", ["ws", "", "http://x/ws"])
def test_route_path_must_start_with_a_slash(path: str) -> None:
    issue = only_issue(f'[server]\nport = 1\n[routes."{path}".events]\nx = "a:b"\n')
    assert issue.line == 3
    assert issue.key.startswith("routes.")
    assert path in issue.key
    assert "/" in issue.message


def test_route_path_error_key_is_quoted_like_toml() -> None:
    issue = only_issue('[routes."ws"]\n')
    assert issue.key == "routes.ws"
    issue = only_issue('[routes."chat room"]\n')
    assert issue.key == 'routes."chat room"'


def test_unknown_key_in_long_form_event() -> None:
    issue = only_issue(
        '[routes."/ws".events.chat]\nhandler = "a:b"\nschema = "c:d"\nshema = "c:d"\n'
    )
    assert (issue.line, issue.key, issue.message) == (
        4,
        'routes."/ws".events.chat.shema',
        "unknown key; did you mean schema?",
    )


def test_unknown_key_in_inline_long_form_event() -> None:
    issue = only_issue('[routes."/ws".events]\nok = "a:b"\nchat = { handler = "a:b", x = 1 }\n')
    assert (issue.line, issue.key, issue.message) == (
        3,
        'routes."/ws".events.chat.x',
        "unknown key",
    )


def test_long_form_event_without_handler() -> None:
    issue = only_issue('[routes."/ws".events.chat]\nschema = "c:d"\n')
    assert issue.line == 1
    assert issue.key.startswith('routes."/ws".events.chat')
    assert "handler" in issue.message


def test_event_that_is_neither_a_reference_nor_a_table() -> None:
    issue = only_issue('[routes."/ws".events]\nok = "a:b"\nbad = 3\n')
    assert (issue.line, issue.key) == (3, 'routes."/ws".events.bad')


def test_malformed_middleware_reference() -> None:
    issue = only_issue('[routes."/ws"]\nmiddleware = [\n  "a:b",\n  "not a ref",\n]\n')
    assert (issue.line, issue.key) == (4, 'routes."/ws".middleware[1]')


def test_events_must_be_a_table() -> None:
    issue = only_issue('[routes."/ws"]\nbroadcast = "route"\nevents = 3\n')
    assert (issue.line, issue.key) == (3, 'routes."/ws".events')


def test_routes_must_be_a_table() -> None:
    issue = only_issue("# routes\n\nroutes = 3\n[server]\nport = 1\n")
    assert (issue.line, issue.key) == (3, "routes")


def test_bad_backplane_scheme() -> None:
    issue = only_issue('[server]\nport = 1\nbackplane = "ftp://broker"\n')
    assert (issue.line, issue.key) == (3, "server.backplane")
    assert "ftp://broker" in issue.message
    assert "memory://" in issue.message


def test_errors_in_different_sections_are_reported_together() -> None:
    text = dedent(
        """\
        [server]
        port = "x"

        [plugins]
        load = [1]

        [routes."/ws"]
        broadcast = "nope"

        [routes."/ws".events]
        ack = "a:b"

        [routes."nope".events]
        x = "a:b"

        [extra]
        """
    )
    issues = issues_of(text)
    assert [(i.line, i.key) for i in issues] == [
        (2, "server.port"),
        (5, "plugins.load[0]"),
        (8, 'routes."/ws".broadcast'),
        (11, 'routes."/ws".events.ack'),
        (13, "routes.nope"),
        (16, "extra"),
    ]
    assert all(i.file == SOURCE for i in issues)
    with pytest.raises(ConfigError) as info:
        parse(text)
    lines = str(info.value).splitlines()
    assert len(lines) == 6
    assert lines[0].startswith(f"{SOURCE}:2: server.port: ")
    assert lines[3].startswith(f'{SOURCE}:11: routes."/ws".events.ack: ')


def test_several_routes_with_errors_are_all_reported() -> None:
    issues = issues_of(
        '[routes."/a".events]\nerror = "a:b"\n[routes."/b".events]\nconnected = "a:b"\n'
    )
    assert [(i.line, i.key) for i in issues] == [
        (2, 'routes."/a".events.error'),
        (4, 'routes."/b".events.connected'),
    ]


# --- environment ---------------------------------------------------------------------------


def test_environment_overrides_the_file() -> None:
    config = parse(
        '[server]\nhost = "10.0.0.1"\nport = 1234\nbackplane = "memory://file"\n',
        {"VWS_HOST": "0.0.0.0", "VWS_PORT": "9999", "VWS_BACKPLANE": "memory://env"},
    )
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 9999
    assert config.server.backplane == "memory://env"


def test_environment_overrides_defaults_and_leaves_the_rest() -> None:
    config = parse("[server]\nsend_queue = 5\n", {"VWS_PORT": "8123"})
    assert config.server.port == 8123
    assert config.server.host == "127.0.0.1"
    assert config.server.send_queue == 5


def test_empty_environment_values_do_not_override() -> None:
    config = parse(
        '[server]\nhost = "h"\nport = 1\n', {"VWS_HOST": "", "VWS_PORT": "", "VWS_BACKPLANE": ""}
    )
    assert (config.server.host, config.server.port, config.server.backplane) == (
        "h",
        1,
        "memory://",
    )


def test_unrelated_environment_is_ignored() -> None:
    config = parse("[server]\nport = 1\n", {"PORT": "5", "VWS_SEND_QUEUE": "3"})
    assert config.server.port == 1
    assert config.server.send_queue == 1024


@pytest.mark.parametrize("value", ["abc", "80x", "-1", "99999", "1.5"])
def test_bad_vws_port_is_a_clear_error(value: str) -> None:
    issue = only_issue("[server]\nport = 1\n", {"VWS_PORT": value})
    assert issue.key == "VWS_PORT"
    assert repr(value) in issue.message
    assert "port" in issue.message
    assert "VWS_PORT" in str(issue)


def test_bad_vws_backplane_is_refused() -> None:
    issues = issues_of("", {"VWS_BACKPLANE": "ftp://broker"})
    assert len(issues) == 1
    assert "ftp://broker" in issues[0].message


def test_bad_vws_port_is_reported_with_file_errors() -> None:
    issues = issues_of('[server]\nslow_consumer = "x"\n', {"VWS_PORT": "nope"})
    assert {i.key for i in issues} == {"server.slow_consumer", "VWS_PORT"}


# --- load_config ---------------------------------------------------------------------------


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(FULL, encoding="utf-8")
    config = load_config(path, environ={})
    assert config.source == str(path)
    assert config.server.port == 9001
    assert config.root == tmp_path.resolve()


def test_load_config_uses_the_given_environment(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text("[server]\nport = 1\n", encoding="utf-8")
    assert load_config(path, environ={"VWS_PORT": "4321"}).server.port == 4321


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text("[server]\n\nbogus = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}:3: server.bogus: unknown key"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "routes.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    [issue] = info.value.issues
    assert issue.file == str(path)
    assert "cannot read" in issue.message
    assert str(info.value).startswith(str(path))
    assert "Traceback" not in str(info.value)
    assert info.value.__cause__ is None


def test_a_folder_instead_of_a_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert info.value.issues[0].file == str(tmp_path)


def test_a_bad_backplane_in_the_environment_is_reported_as_environment() -> None:
    issue = only_issue("", {"VWS_BACKPLANE": "ftp://x"})
    assert str(issue) == (
        "environment: VWS_BACKPLANE: unsupported backplane 'ftp://x': "
        "expected memory://, nats://, redis://"
    )


def test_a_bad_short_form_reference_is_located_at_its_own_key() -> None:
    issue = only_issue('[routes."/ws".events]\nm = "not a ref!"\n')
    assert str(issue) == (
        f'{SOURCE}:2: routes."/ws".events.m: expected a reference "package.module:attribute"'
    )


@pytest.mark.parametrize(
    ("server", "hosts"),
    [
        ({}, ("localhost", "127.0.0.1", "::1")),
        ({"host": "localhost"}, ("localhost", "127.0.0.1", "::1")),
        ({"host": "127.0.0.2"}, ("localhost", "127.0.0.1", "::1")),
        ({"host": "::1"}, ("localhost", "127.0.0.1", "::1")),
        ({"host": "0.0.0.0"}, ("*",)),
        ({"host": "10.1.2.3"}, ("*",)),
        ({"host": "0.0.0.0", "allowed_hosts": ["chat.example"]}, ("chat.example",)),
    ],
)
def test_allowed_hosts_default_to_what_host_implies(server, hosts) -> None:
    assert msgspec.convert(server, ServerConfig).hosts() == hosts


def test_handler_timeouts_come_from_the_event_then_the_route_then_the_server(tmp_path) -> None:
    text = """
[server]
handler_timeout = 7.0

[routes."/a"]
handler_timeout = 3.0
[routes."/a".events]
plain = "operator:add"
own = { handler = "operator:add", timeout = 0.5 }

[routes."/b".events]
plain = "operator:add"
"""
    table = compile_table(parse_config(text, "routes.toml", environ={}))
    a, b = table.routes["/a"], table.routes["/b"]
    assert (a.events["plain"].timeout, a.events["own"].timeout, a.timeout) == (3.0, 0.5, 3.0)
    assert (b.events["plain"].timeout, b.timeout) == (7.0, 7.0)


@pytest.mark.parametrize("bad", ["handler_timeout = 0", "handler_timeout = -1"])
def test_a_handler_timeout_must_be_positive(bad) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(f"[server]\n{bad}\n", "routes.toml", environ={})
    assert error.value.issues[0].key == "server.handler_timeout"


def test_room_history_patterns_convert_and_their_errors_name_the_pattern() -> None:
    config = parse(
        '[routes."/ws"]\nhistory_size = 10\nhistory_skip = ["typing"]\n'
        '[routes."/ws".rooms."news-*"]\nhistory_size = 500\nhistory_ttl = "1h"\n'
        '[routes."/ws".events]\necho = "app.handlers:echo"\n'
    )
    route = config.routes["/ws"]
    assert (route.history_size, route.history_ttl, route.history_skip) == (10, "5m", ("typing",))
    assert route.rooms["news-*"].history_size == 500
    issue = only_issue(
        '[routes."/ws".rooms."news-*"]\nhistory_size = "x"\n'
        '[routes."/ws".events]\necho = "app.handlers:echo"\n'
    )
    assert (issue.line, issue.key) == (2, 'routes."/ws".rooms."news-*".history_size')
    assert issue.message == "expected int, got str"

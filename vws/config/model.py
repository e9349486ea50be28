"""routes.toml → typed configuration.

The file is parsed once with tomllib and converted section by section into frozen msgspec
Structs, so that one bad section does not hide the errors of the others. Every problem is
reported as a :class:`~vws.errors.ConfigIssue` that names the file, the line (found with
:mod:`vws.config.lines`, since msgspec reports paths but not lines) and the key path.
References to Python objects are only checked for shape here; :mod:`vws.routing` imports them.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
import msgspec.inspect
from msgspec import Meta, Struct

from vws import backplane
from vws.backplane import BackplaneOptions
from vws.config.lines import KeyPath, key_lines, line_of
from vws.errors import ConfigError, ConfigIssue
from vws.protocol import MAX_EVENT_LENGTH, PROTOCOL_EVENTS

Port = Annotated[int, Meta(ge=0, le=65535)]
#: A rate: ``"100/s"``, ``"600/m"``, ``"3600/h"``; ``"0"`` or ``"off"`` turns the limit off.
Rate = Annotated[str, Meta(pattern=r"^(\d+(\.\d+)?/[smh]|0|off)$")]
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}


#: A duration: seconds as a number, or ``"100ms"``, ``"5s"``, ``"2m"``, ``"1h"``.
Duration = Annotated[float, Meta(ge=0)] | Annotated[str, Meta(pattern=r"^\d+(\.\d+)?(ms|s|m|h)$")]
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(duration: float | str) -> float:
    """A :data:`Duration` in seconds."""
    if not isinstance(duration, str):
        return float(duration)
    match = re.fullmatch(r"([\d.]+)(ms|s|m|h)", duration)
    assert match is not None  # the pattern of Duration
    return float(match[1]) * _UNIT[match[2]]


def per_second(rate: str) -> float:
    """A :data:`Rate` as messages per second (0.0: no limit)."""
    if rate in {"0", "off"}:
        return 0.0
    count, _, unit = rate.partition("/")
    return float(count) / _PER[unit]


Reference = Annotated[str, Meta(min_length=1, pattern=r"^[A-Za-z_][\w.]*(:[\w.]+)?$")]


#: The names a loopback server answers to; a Host outside them is a DNS-rebinding page's.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class ServerConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[server]`` table: where to listen and every per-connection limit."""

    host: str = "127.0.0.1"
    port: Port = 8000
    #: Largest message a client may send; bigger ones close the socket with 1009.
    max_message_bytes: Annotated[int, Meta(ge=128)] = 65536
    max_rooms_per_client: Annotated[int, Meta(ge=0)] = 100
    #: Frames queued per client before the slow-consumer policy may act.
    send_queue: Annotated[int, Meta(ge=1)] = 1024
    slow_consumer: Literal["disconnect", "drop_oldest"] = "disconnect"
    allowed_origins: tuple[str, ...] = ()
    #: Host header values served (HTTP and handshakes); empty: what ``host`` implies.
    allowed_hosts: tuple[Annotated[str, Meta(min_length=1)], ...] = ()
    #: Seconds an async handler (or a join's hooks) may run before ``handler_timeout``.
    handler_timeout: Annotated[float, Meta(gt=0)] = 30.0
    #: A plain ``def`` handler running longer than this (seconds) is named in a warning.
    slow_handler: Annotated[float, Meta(gt=0)] = 0.1
    backplane: str = "memory://"
    #: Keepalive ping interval and the time a pong may take (seconds; 0 turns pings off).
    ping_interval: Annotated[float, Meta(ge=0)] = 20.0
    ping_timeout: Annotated[float, Meta(ge=0)] = 20.0
    #: How long a close frame may wait behind a socket that is not draining (seconds).
    close_timeout: Annotated[float, Meta(gt=0)] = 5.0
    #: Seconds from TCP accept to a completed upgrade (or an HTTP request's whole headers).
    handshake_timeout: Annotated[float, Meta(gt=0)] = 10.0
    #: A request's line and headers, in bytes, and its number of headers (431 past either).
    max_header_bytes: Annotated[int, Meta(ge=1024)] = 16384
    max_headers: Annotated[int, Meta(ge=8)] = 100
    #: Open TCP connections (503 past it); 0: the file-descriptor limit less a margin.
    max_connections: Annotated[int, Meta(ge=0)] = 0
    #: Open TCP connections from one client address (503 past it); 0: no limit.
    max_connections_per_ip: Annotated[int, Meta(ge=0)] = 0
    #: A header naming the client address, believed only from ``trusted_proxies``.
    proxy_header: str = ""
    trusted_proxies: tuple[str, ...] = ()
    #: Seconds without a frame from the client before it is closed (1001); 0: never.
    idle_timeout: Annotated[float, Meta(ge=0)] = 0.0
    #: Continuation frames in one message, and frames of any kind per second (1008 past).
    max_fragments: Annotated[int, Meta(ge=1)] = 100
    max_frame_rate: Annotated[int, Meta(ge=1)] = 2000
    #: Messages per connection: a token bucket refilled at ``rate``, ``burst`` deep.
    rate: Rate = "100/s"
    burst: Annotated[int, Meta(ge=1)] = 200
    #: Amplification guards: members of one room, rooms on the node, frames one handler
    #: call may fan out.
    max_room_members: Annotated[int, Meta(ge=1)] = 10000
    max_rooms: Annotated[int, Meta(ge=1)] = 100000
    max_fanout: Annotated[int, Meta(ge=1)] = 10000
    #: Broker backplanes (redis://, nats://): see vws.backplane.BackplaneOptions.
    channel_prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "vws"
    publish_queue: Annotated[int, Meta(ge=1)] = 10000
    publish_timeout: Annotated[float, Meta(gt=0)] = 5.0
    node_timeout: Annotated[float, Meta(gt=0)] = 10.0
    reconnect_max_delay: Annotated[float, Meta(gt=0)] = 2.0

    def hosts(self) -> tuple[str, ...]:
        """The Host names served: ``allowed_hosts``, or the loopback names when ``host`` is a
        loopback address, or ``"*"`` (any) for a wildcard or network address."""
        if self.allowed_hosts:
            return self.allowed_hosts
        if self.host in LOOPBACK_HOSTS or self.host.startswith("127."):
            return LOOPBACK_HOSTS
        return ("*",)

    def backplane_options(self) -> BackplaneOptions:
        """The settings a broker backplane takes."""
        return BackplaneOptions(
            channel_prefix=self.channel_prefix,
            publish_queue=self.publish_queue,
            publish_timeout=self.publish_timeout,
            node_timeout=self.node_timeout,
            reconnect_max_delay=self.reconnect_max_delay,
        )


#: A plugin to load: a module reference, or the name of an installed entry point (may hold "-"),
#: either of them marked with what it is (``entry-point:NAME``, ``module:REFERENCE``).
PluginReference = Annotated[
    str,
    Meta(min_length=1, pattern=r"^(entry-point:|module:)?[A-Za-z_][\w.-]*(:[\w.]+)?$"),
]


class PluginsConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[plugins]`` table: which plugins to load or block, and their settings."""

    load: tuple[PluginReference, ...] = ()
    #: Plugin names never loaded, whatever their source (an entry point, load, a plugins dir).
    block: tuple[str, ...] = ()
    #: A folder (relative to routes.toml) whose every ``*.py`` is loaded as a plugin.
    dir: str | None = None
    settings: dict[str, dict[str, Any]] = {}


class AdminConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[admin]`` table: who may see ``/_vws`` and ``/metrics``, and the publish API.

    Without a key the status page and the metrics are served to loopback clients only and the
    publish API is off; with one, all three need ``Authorization: Bearer KEY``.
    """

    #: The admin key; ``VWS_ADMIN_KEY`` in the environment overrides it.
    key: str = ""
    #: Largest request body ``POST /_vws/api/publish`` accepts (bytes).
    max_publish_bytes: Annotated[int, Meta(ge=64)] = 1_048_576
    #: Most messages one publish request may carry.
    max_publish_batch: Annotated[int, Meta(ge=1)] = 1000


class StaticConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[static]`` table: a folder of files served over HTTP at a URL prefix, so an app
    ships its web page beside its routes (WebSocket handshakes still go to the routes)."""

    #: The folder, relative to the folder holding routes.toml.
    directory: Annotated[str, Meta(min_length=1)]
    #: The URL prefix the folder is served under; "/" serves it at the root.
    prefix: str = "/"
    #: The file served for a folder's URL.
    index: str = "index.html"


class EventConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One event of a route, in its long form (the short form is just the handler)."""

    handler: Reference
    schema: Reference | None = None
    #: Seconds this event's handler may run; unset: the route's, then the server's.
    timeout: Annotated[float, Meta(gt=0)] | None = None
    #: Run this ``def`` handler in a worker thread (frames are still handled in order).
    thread: bool = False


class TaskConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[tasks]`` entry: a function of ``(server)`` run in the background."""

    handler: Reference
    #: Run every so often; unset: run once, as a long-running task.
    every: Duration | None = None
    #: Wait this long before running it again after it raised (or returned, when long-running).
    retry: Duration = 1.0


class RoomsConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[routes."PATH".rooms."PATTERN"]``: the history of the rooms whose names match."""

    #: Frames kept per room, for clients that resume (0: these rooms keep none).
    history_size: Annotated[int, Meta(ge=0, le=100_000)]
    #: How long a frame is kept; unset: the route's ``history_ttl``.
    history_ttl: Duration | None = None


class RouteConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[routes."PATH"]`` table."""

    middleware: tuple[Reference, ...] = ()
    broadcast: Literal["server", "route"] = "server"
    #: Seconds this route's handlers may run; unset: ``[server] handler_timeout``.
    handler_timeout: Annotated[float, Meta(gt=0)] | None = None
    #: This route's message rate limit; unset: ``[server] rate`` and ``burst``.
    rate: Rate | None = None
    burst: Annotated[int, Meta(ge=1)] | None = None
    #: Frames kept per room of this route, so that a client that reconnects gets what it
    #: missed (docs/delivery.md); 0 keeps none, and room frames carry no position.
    history_size: Annotated[int, Meta(ge=0, le=100_000)] = 0
    #: How long a frame is kept; a room idle this long loses its history (a new epoch).
    #: 0 keeps frames until ``history_size`` pushes them out.
    history_ttl: Duration = "5m"
    #: Events whose room frames are sent live only: not kept, and carrying no position (a
    #: typing indicator, a presence notice: they describe the moment, not the room).
    history_skip: tuple[Annotated[str, Meta(min_length=1)], ...] = ()
    #: Room-name patterns (shell patterns, first match wins) with a history of their own.
    rooms: dict[str, RoomsConfig] = {}
    events: dict[str, EventConfig] = {}


class Config(Struct, frozen=True, kw_only=True):
    """A whole routes.toml, validated, with what is needed to locate its keys later."""

    source: str
    server: ServerConfig = ServerConfig()
    plugins: PluginsConfig = PluginsConfig()
    admin: AdminConfig = AdminConfig()
    static: StaticConfig | None = None
    routes: dict[str, RouteConfig] = {}
    tasks: dict[str, TaskConfig] = {}
    lines: dict[KeyPath, int] = {}

    @property
    def root(self) -> Path:
        """The folder holding routes.toml: importable, so a project's own modules resolve."""
        return Path(self.source).resolve().parent

    def issue(self, path: KeyPath, message: str) -> ConfigIssue:
        """A located issue for the key at ``path``."""
        return ConfigIssue(self.source, line_of(self.lines, path), dotted(path), message)

    def convert(self, value: Any, type_: Any, at: KeyPath) -> tuple[Any, list[ConfigIssue]]:
        """``msgspec.convert`` of the value found at ``at``, failures as located issues.

        Returns the converted value (None on failure) and the issues.
        """
        issues: list[ConfigIssue] = []
        result = _convert(value, type_, at, lambda path, m: issues.append(self.issue(path, m)))
        return result, issues


_TOP_LEVEL = {
    "server": ServerConfig,
    "plugins": PluginsConfig,
    "admin": AdminConfig,
    "static": StaticConfig,
}
#: The patterns whose mismatch reads "expected a reference": only reference-typed keys. Any
#: other pattern (a plugin's own setting, [server] channel_prefix) keeps msgspec's message,
#: which shows the pattern.
_REFERENCE_PATTERNS = tuple(
    meta.pattern
    for meta in (*get_args(Reference)[1:], *get_args(PluginReference)[1:])
    if isinstance(meta, Meta) and meta.pattern is not None
)
_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)|\(at end of document\)")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dotted(path: KeyPath) -> str:
    """Write a key path the way TOML would: ``routes."/ws".events.chat``."""
    out = ""
    for part in path:
        if part.isdigit() and out:
            out += f"[{part}]"
        else:
            out += ("." if out else "") + (part if _BARE_KEY.match(part) else f'"{part}"')
    return out


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a routes.toml.

    Args:
        path: the routes.toml to read.
        environ: where ``VWS_HOST``, ``VWS_PORT``, ``VWS_BACKPLANE`` and ``VWS_ADMIN_KEY`` are
            looked up
            (``os.environ`` by default); they override the file.

    Raises:
        ConfigError: with one located issue per problem found.
    """
    source = os.fspath(path)
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        problem = ConfigIssue(source, 1, "", f"cannot read the file: {exc.strerror}")
        raise ConfigError([problem]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = ConfigIssue(source, line, "", f"invalid UTF-8 (byte {exc.start}): TOML is UTF-8")
        raise ConfigError([problem]) from None
    return parse_config(text, source, environ=os.environ if environ is None else environ)


def parse_config(text: str, source: str, *, environ: Mapping[str, str]) -> Config:
    """Validate the text of a routes.toml (see :func:`load_config`)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_issue(exc, text, source)]) from None
    lines = key_lines(text)
    issues: list[ConfigIssue] = []

    def issue(path: KeyPath, message: str) -> None:
        issues.append(ConfigIssue(source, line_of(lines, path), dotted(path), message))

    sections: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _TOP_LEVEL:
            sections[key] = _convert(value, _TOP_LEVEL[key], (key,), issue)
        elif key == "routes":
            sections[key] = _convert_routes(value, issue)
        elif key == "tasks":
            sections[key] = _convert_tasks(value, issue)
        else:
            known = "server, plugins, admin, static, routes, tasks"
            issue((key,), f"unknown key: expected one of {known}")

    server = sections.get("server") or ServerConfig()
    # The file's backplane must name a known scheme even when VWS_BACKPLANE overrides it, but
    # its client library matters only for the backplane that will run.
    overridden = bool(environ.get("VWS_BACKPLANE"))
    problem = _backplane_problem(server.backplane, needs_client=not overridden)
    if problem:
        issue(("server", "backplane"), problem)
    server = _apply_environment(server, environ, issues)
    if sections.get("static"):
        _check_static(sections["static"], Path(source).resolve().parent, issue)
    if issues:
        raise ConfigError(issues)
    return Config(
        source=source,
        server=server,
        plugins=sections.get("plugins") or PluginsConfig(),
        admin=_admin_environment(sections.get("admin") or AdminConfig(), environ),
        static=sections.get("static"),
        routes=sections.get("routes") or {},
        tasks=sections.get("tasks") or {},
        lines=lines,
    )


def _convert(value: Any, type_: Any, at: KeyPath, issue: Any) -> Any:
    """msgspec.convert with its error turned into a located issue (None on failure)."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_PATH.match(str(exc))
        assert match is not None
        message, sub = match["message"], match["path"] or ""
        rel = tuple(name or index for name, index in _PATH_PART.findall(sub))
        unknown = re.match(r"Object contains unknown field `(.+)`", message)
        if unknown:
            close = difflib.get_close_matches(unknown[1], _keys_at(type_, rel), n=1, cutoff=0.75)
            rel = (*rel, unknown[1])
            message = f"unknown key; did you mean {close[0]}?" if close else "unknown key"
        issue((*at, *rel), _plain(message))
        return None


def _keys_at(type_: Any, rel: KeyPath) -> list[str]:
    """The keys the table at ``rel`` inside ``type_`` may hold, for a misspelt key's "did you
    mean" (an empty list where the path does not lead to a Struct)."""
    info: Any = msgspec.inspect.type_info(type_)
    for part in (*rel, None):
        while True:  # see through Annotated metadata and Optional
            if isinstance(info, msgspec.inspect.Metadata):
                info = info.type
            elif isinstance(info, msgspec.inspect.UnionType):
                structs = [t for t in info.types if isinstance(t, msgspec.inspect.StructType)]
                if not structs:
                    return []
                info = structs[0]
            else:
                break
        if part is None:
            break
        if isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == part), None)
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return []
    if isinstance(info, msgspec.inspect.StructType):
        return [field.encode_name for field in info.fields]
    return []


def _plain(message: str) -> str:
    """msgspec's wording, made to read as a sentence for a routes.toml author."""
    message = message.replace("`", "")
    if "matching regex" in message and "ms|s|m|h" in message:
        return 'expected a duration: seconds, or a string like "100ms", "5s", "2m"'
    if "matching regex" in message and "/[smh]" in message:
        return 'expected a rate like "100/s" or "600/m", or "off"'
    if any(repr(pattern) in message for pattern in _REFERENCE_PATTERNS):
        return 'expected a reference "package.module:attribute"'
    if message.startswith("Expected "):
        return "expected " + message[len("Expected ") :]
    return message[:1].lower() + message[1:]


def _convert_routes(value: Any, issue: Any) -> dict[str, RouteConfig] | None:
    if not isinstance(value, dict):
        issue(("routes",), f"expected a table of paths, got {type(value).__name__}")
        return None
    routes: dict[str, RouteConfig] = {}
    for path, table in value.items():
        at: KeyPath = ("routes", path)
        if not path.startswith("/"):
            issue(at, "a route path must start with '/'")
            continue
        if not isinstance(table, dict):
            issue(at, f"expected a table, got {type(table).__name__}")
            continue
        events_raw = table.get("events", {})
        rooms_raw = table.get("rooms", {})
        rest = {k: v for k, v in table.items() if k not in ("events", "rooms")}
        route = _convert(rest, RouteConfig, at, issue)
        events = _convert_events(events_raw, (*at, "events"), issue)
        rooms = _convert_rooms(rooms_raw, (*at, "rooms"), issue)
        if route is not None and events is not None and rooms is not None:
            routes[path] = msgspec.structs.replace(route, events=events, rooms=rooms)
    return routes


def _convert_rooms(value: Any, at: KeyPath, issue: Any) -> dict[str, RoomsConfig] | None:
    """Each ``[routes."PATH".rooms."PATTERN"]`` on its own, so an error names its pattern
    (msgspec shows a dict's key as ``[...]``)."""
    if not isinstance(value, dict):
        issue(at, f"expected a table of room-name patterns, got {type(value).__name__}")
        return None
    rooms: dict[str, RoomsConfig] = {}
    ok = True
    for pattern, spec in value.items():
        converted = _convert(spec, RoomsConfig, (*at, pattern), issue)
        if converted is None:
            ok = False
        else:
            rooms[pattern] = converted
    return rooms if ok else None


def _convert_tasks(value: Any, issue: Any) -> dict[str, TaskConfig] | None:
    if not isinstance(value, dict):
        issue(("tasks",), f"expected a table of tasks, got {type(value).__name__}")
        return None
    tasks: dict[str, TaskConfig] = {}
    for name, spec in value.items():
        if isinstance(spec, str):
            spec = {"handler": spec}
        task = _convert(spec, TaskConfig, ("tasks", name), issue)
        if task is not None:
            tasks[name] = task
    return tasks


def _convert_events(value: Any, at: KeyPath, issue: Any) -> dict[str, EventConfig] | None:
    if not isinstance(value, dict):
        issue(at, f"expected a table of events, got {type(value).__name__}")
        return None
    events: dict[str, EventConfig] = {}
    ok = True
    for name, spec in value.items():
        where = (*at, name)
        if not 1 <= len(name) <= MAX_EVENT_LENGTH:
            issue(where, f"an event name must be 1 to {MAX_EVENT_LENGTH} characters")
            ok = False
            continue
        if name in PROTOCOL_EVENTS:
            issue(where, "reserved event name: the protocol handles it")
            ok = False
            continue
        if isinstance(spec, str):
            if _convert(spec, Reference, where, issue) is None:
                ok = False
                continue
            spec = {"handler": spec}
        elif not isinstance(spec, dict):
            issue(where, 'expected "module:function" or a table with handler (and schema)')
            ok = False
            continue
        event = _convert(spec, EventConfig, where, issue)
        if event is None:
            ok = False
        else:
            events[name] = event
    return events if ok else None


def _apply_environment(
    server: ServerConfig, environ: Mapping[str, str], issues: list[ConfigIssue]
) -> ServerConfig:
    changes: dict[str, Any] = {}
    if environ.get("VWS_HOST"):
        changes["host"] = environ["VWS_HOST"]
    if environ.get("VWS_BACKPLANE"):
        changes["backplane"] = environ["VWS_BACKPLANE"]
        problem = _backplane_problem(changes["backplane"])
        if problem:
            issues.append(ConfigIssue("environment", 0, "VWS_BACKPLANE", problem))
    port = environ.get("VWS_PORT")
    if port:
        if port.isdigit() and int(port) <= 65535:
            changes["port"] = int(port)
        else:
            issues.append(
                ConfigIssue("environment", 0, "VWS_PORT", f"expected a port number, got {port!r}")
            )
    return msgspec.structs.replace(server, **changes) if changes else server


def _admin_environment(admin: AdminConfig, environ: Mapping[str, str]) -> AdminConfig:
    """``VWS_ADMIN_KEY`` overrides ``[admin] key``, so the key need not live in the file."""
    key = environ.get("VWS_ADMIN_KEY")
    return msgspec.structs.replace(admin, key=key) if key else admin


def _check_static(static: StaticConfig, root: Path, issue: Any) -> None:
    if not static.prefix.startswith("/"):
        issue(("static", "prefix"), "a URL prefix must start with '/'")
    elif static.prefix.rstrip("/") == "/_vws" or static.prefix.startswith("/_vws/"):
        issue(("static", "prefix"), "/_vws is vws's own: choose another prefix")
    if not (root / static.directory).is_dir():
        issue(("static", "directory"), f"no such folder: {root / static.directory}")
    if not static.index or "/" in static.index:
        issue(("static", "index"), "expected a file name, like index.html")


def _backplane_problem(url: str, *, needs_client: bool = True) -> str | None:
    if url.partition("://")[0] in backplane.SCHEMES:
        return backplane.missing_client(url) if needs_client else None
    expected = ", ".join(f"{scheme}://" for scheme in sorted(backplane.SCHEMES))
    return f"unsupported backplane {url!r}: expected {expected}"


def _syntax_issue(exc: tomllib.TOMLDecodeError, text: str, source: str) -> ConfigIssue:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    line = text.count("\n") + 1
    if match and match[1]:
        line = int(match[1])
    reason = _TOML_POSITION.sub("", message).strip()
    return ConfigIssue(source, line, "", f"invalid TOML: {reason[:1].lower()}{reason[1:]}")

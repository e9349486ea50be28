"""Shared fixtures: a real ``vws run`` in a subprocess, and the anyio backend."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"
REPO = Path(__file__).parent.parent
STARTUP_TIMEOUT = 30.0
#: The demo's admin route is off without a token in the environment; the tests give it this.
DEMO_ADMIN_TOKEN = "test-admin-token-4f1c"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _limit_files(nofile: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))


class RunningServer:
    """A ``vws run`` subprocess on 127.0.0.1 and the lines it has logged so far."""

    def __init__(
        self,
        config: Path,
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        *,
        ready: str | None = "Uvicorn running on",
        nofile: int | None = None,
        command: tuple[str, ...] | None = None,
    ) -> None:
        """Start it; wait until it logs ``ready`` (``None``: the test waits for what it needs).
        ``nofile`` lowers the process's file-descriptor limit (RLIMIT_NOFILE) from its start.
        ``command`` replaces ``vws run`` (another server of the app; ``{port}`` is the port)."""
        self.config = config
        self._ready_line = ready
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.http = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._ready = threading.Event()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)])}
        env.update(extra_env or {})
        vws_run = (sys.executable, "-m", "vws.cli", "run", "--config", str(config))
        vws_run += ("--port", "{port}", "--log-level", "info", *args)
        self.process = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in command or vws_run],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=config.parent,
            preexec_fn=None if nofile is None else lambda: _limit_files(nofile),
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if ready is None:
            return
        if not self._ready.wait(STARTUP_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("vws run did not start:\n" + "".join(self.lines))

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if self._ready_line is not None and self._ready_line in line:
                self._ready.set()
        self._ready.set()

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Workers(RunningServer):
    """``vws run --workers N``: a supervisor and its worker processes.

    The constructor does not wait: tests wait until every worker has logged "Application
    startup complete", which no single line of the supervisor's tells.
    """

    def __init__(
        self,
        config: Path,
        count: int,
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(config, extra_env, ("--workers", str(count), *args), ready=None)

    def pids(self) -> list[int]:
        """The workers' pids, as the supervisor logged them."""
        found = re.search(r"workers started \(pids ([\d, ]+)\)", self.log())
        return [int(pid) for pid in found[1].split(", ")] if found else []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        code = super().stop(sig, timeout)
        if code == -signal.SIGKILL:  # the supervisor had to be killed: its workers go too
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return code


ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start ``vws run`` on a routes.toml given as text (handlers live in tests/apps)."""
    running: list[RunningServer] = []

    def start(
        toml: str,
        *,
        env: dict[str, str] | None = None,
        name: str = "routes.toml",
        args: tuple[str, ...] = (),
    ) -> RunningServer:
        config = tmp_path / name
        config.write_text(toml)
        server = RunningServer(config, env, args)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


DEMO_APP = """
[server]
send_queue = 64
max_rooms_per_client = 3
max_message_bytes = 4096

[routes."/ws"]
[routes."/ws".events]
connect = "e2e_handlers:on_connect"
disconnect = "e2e_handlers:on_disconnect"
echo = "e2e_handlers:echo"
echo_async = "e2e_handlers:echo_async"
emit = "e2e_handlers:emit"
to_room = "e2e_handlers:to_room"
to = "e2e_handlers:to"
broadcast = "e2e_handlers:broadcast"
burst = "e2e_handlers:burst"
join = "e2e_handlers:join"
leave = "e2e_handlers:leave"
rooms = "e2e_handlers:rooms"
boom = "e2e_handlers:boom"
deny = "e2e_handlers:deny"
close = "e2e_handlers:close"
whoami = "e2e_handlers:whoami"
bad_return = "e2e_handlers:bad_return"
blob = "e2e_handlers:blob"

[routes."/ws".events.typed]
handler = "e2e_handlers:typed"
schema = "e2e_handlers:Point"

[routes."/other".events]
echo = "e2e_handlers:echo"
to_room = "e2e_handlers:to_room"
to = "e2e_handlers:to"
broadcast = "e2e_handlers:broadcast"
whoami = "e2e_handlers:whoami"

[routes."/private"]
broadcast = "route"
[routes."/private".events]
broadcast = "e2e_handlers:broadcast"
whoami = "e2e_handlers:whoami"

[routes."/guarded"]
middleware = ["e2e_handlers:first_middleware", "e2e_handlers:require_token"]
[routes."/guarded".events]
connect = "e2e_handlers:on_connect"
whoami = "e2e_handlers:whoami"
"""


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the protocol tests of a module (its clients never share rooms)."""
    config = tmp_path_factory.mktemp("demo") / "routes.toml"
    config.write_text(DEMO_APP)
    server = RunningServer(config)
    yield server
    server.stop()

"""``vws run --workers N``: N worker processes serving one port, so a machine's cores add up.

Each worker is a full ``vws run`` in its own process, with its own node id, listening on the
same address with ``SO_REUSEPORT``: the kernel spreads new connections over the workers, and
the workers reach each other's clients through the broker backplane, exactly as separate
machines would. The supervisor only starts them, restarts one that dies, forwards SIGHUP
(reload) and, on SIGTERM or SIGINT, stops them all and waits for them.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time

#: A worker that exits with an error this soon after it started failed to start (a bad
#: configuration, a port it cannot use): restarting it would not help. One killed by a signal
#: is restarted whenever it dies.
EARLY_EXIT = 5.0
#: Wait before a worker that died after running a while is started again.
RESTART_DELAY = 1.0


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` that other processes may bind too."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def log(message: str) -> None:
    print(f"vws: {message}", file=sys.stderr, flush=True)


class Supervisor:
    """Runs ``count`` copies of ``command`` until told to stop."""

    def __init__(self, command: list[str], count: int, stop_timeout: float) -> None:
        self.command = command
        self.count = count
        self.stop_timeout = stop_timeout
        self.workers: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        #: worker number → when to start it again.
        self.restarts: dict[int, float] = {}
        self.signals: list[int] = []

    def _start(self, number: int) -> None:
        process = subprocess.Popen(self.command)
        self.workers[number] = (process, time.monotonic())

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit code of the whole group."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous_fd = signal.set_wakeup_fd(wake_write)
        handlers = {
            sig: signal.signal(sig, lambda signum, _: self.signals.append(signum))
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            for number in range(self.count):
                self._start(number)
            log(f"{self.count} workers started (pids {self._pids()})")
            return self._watch(wake_read)
        finally:
            self._stop_all()
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            os.close(wake_read)
            os.close(wake_write)

    def _pids(self) -> str:
        return ", ".join(str(process.pid) for process, _ in self.workers.values())

    def _watch(self, wake_read: int) -> int:
        while True:
            select.select([wake_read], [], [], 0.5)
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 512)
            while self.signals:
                signum = self.signals.pop(0)
                if signum == signal.SIGHUP:
                    for process, _ in self.workers.values():
                        process.send_signal(signal.SIGHUP)
                    continue
                log(f"{signal.Signals(signum).name}: stopping {len(self.workers)} workers")
                return 0
            now = time.monotonic()
            for number, (process, started) in list(self.workers.items()):
                code = process.poll()
                if code is None:
                    continue
                del self.workers[number]
                if now - started < EARLY_EXIT and code > 0:  # not killed: it gave up
                    log(f"worker {number} (pid {process.pid}) failed to start (exit code {code})")
                    return code
                log(f"worker {number} (pid {process.pid}) exited with code {code}; restarting")
                self.restarts[number] = now + RESTART_DELAY
            for number, when in list(self.restarts.items()):
                if when <= now:
                    del self.restarts[number]
                    self._start(number)

    def _stop_all(self) -> None:
        for process, _ in self.workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for process, _ in self.workers.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"worker pid {process.pid} did not stop in time: killing it")
                process.kill()
                process.wait()
        self.workers.clear()

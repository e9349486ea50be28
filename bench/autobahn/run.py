"""Autobahn|Testsuite's fuzzingclient against one echo server, with a pass-or-fail verdict.

``python -m bench.autobahn.run --server-cmd "python -m bench.autobahn.vws_echo --port {port}"``
(or ``--baseline``) from the repository root. The suite is the reference for RFC 6455
conformance, but it is Python 2.7 software, so this script:

1. builds, once, a Python 2.7 virtualenv with ``wstest`` under ``bench/autobahn/.py27/`` from
   the pinned ``requirements-py27.txt``, using pyenv's 2.7 (``--python27`` to name another), and
   rebuilds it only when the interpreter or a requirements file changes;
2. starts the server command (``{port}`` becomes a free 127.0.0.1 port) in its own process
   group and waits, bounded, until the port accepts TCP;
3. writes a fuzzingclient spec for cases 1.* to 10.* (``--exclude`` drops some) and runs
   ``wstest -m fuzzingclient``, bounded by ``--timeout``;
4. stops the server, reads ``reports/servers/index.json`` and prints what each behavior and
   each case group scored, and every case that did not pass with its behaviorClose.

It exits 0 only when every case that the suite said it would run is in the report and is OK,
NON-STRICT or INFORMATIONAL (UNIMPLEMENTED passes only in groups 12 and 13, the
permessage-deflate ones, which are not run by default); 1 when a case failed or is missing; 2
when the harness itself could not do its work (no Python 2.7, the server never listened,
wstest timed out or wrote no report). Everything binds and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PY27_DIR = HERE / ".py27"
REQUIREMENTS = HERE / "requirements-py27.txt"
BOOTSTRAP_REQUIREMENTS = HERE / "requirements-py27-bootstrap.txt"
DEFAULT_REPORTS = HERE / "reports"

#: the case groups that issue #14 asks for; there is no group 8 in the suite, the pattern
#: simply matches nothing, and 12/13 (permessage-deflate) are left out on purpose
DEFAULT_CASES = [f"{group}.*" for group in range(1, 11)]
PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
#: groups where UNIMPLEMENTED is the honest answer of a server without permessage-deflate
UNIMPLEMENTED_ALLOWED = frozenset({12, 13})

#: the baseline: the bare ASGI echo on uvicorn with the choices of vws.cli.run.UVICORN_SPEED
#: (websockets-sansio, whose parser vws's own transport uses too; uvloop; httptools; no
#: deflate), but a message limit that lets cases 9.* send their 16 MiB; ``{ws}`` is
#: --baseline-ws, websockets-sansio unless told otherwise
BASELINE_CMD = (
    f"{shlex.quote(sys.executable)} -m uvicorn bench.autobahn.asgi_echo:app"
    " --host 127.0.0.1 --port {port} --ws {ws} --loop uvloop --http httptools"
    " --ws-per-message-deflate false --ws-max-size 33554432 --lifespan on"
    " --log-level warning --no-access-log"
)
BASELINE_WS = ("websockets-sansio", "websockets", "wsproto")

#: seconds allowed for each step of building the 2.7 environment (pip builds wsaccel from source)
INSTALL_STEP_TIMEOUT = 900.0
#: seconds between SIGTERM and SIGKILL when stopping a process group
STOP_GRACE = 10.0


class HarnessError(Exception):
    """The harness could not produce a verdict (exit status 2), as opposed to a failed case."""


def log(message: str) -> None:
    print(f"[autobahn] {message}", file=sys.stderr, flush=True)


# --- the Python 2.7 environment -------------------------------------------------------------


def find_python27(explicit: str | None) -> Path:
    """Pick the 2.7 interpreter: the one named, else pyenv's newest 2.7, else python2.7 on PATH.

    pyenv first because a system python2.7 is rare today and pyenv's is the one the project's
    machines have (/root/.pyenv/versions/2.7.18).
    """
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise HarnessError(f"--python27 {explicit}: no such file")
        return path
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(
        (pyenv_root / "versions").glob("2.7*/bin/python2.7"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
    )
    if found:
        return found[-1]
    on_path = shutil.which("python2.7")
    if on_path:
        return Path(on_path)
    raise HarnessError(
        "no Python 2.7 found (looked in $PYENV_ROOT/versions/2.7*, ~/.pyenv and PATH);"
        " install one with `pyenv install 2.7.18` or pass --python27"
    )


def py27_fingerprint(python27: Path) -> str:
    """What the cached environment was built from: rebuilding when this changes keeps it honest."""
    digest = hashlib.sha256(str(python27.resolve()).encode())
    for path in (BOOTSTRAP_REQUIREMENTS, REQUIREMENTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def py27_env() -> dict[str, str]:
    """The environment for 2.7 processes, without this 3.11 venv's variables leaking into them."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_step(argv: Sequence[str | Path], logfile: IO[str], env: dict[str, str]) -> None:
    """Run one install step with its output in the install log, bounded in time."""
    line = " ".join(shlex.quote(str(a)) for a in argv)
    logfile.write(f"\n$ {line}\n")
    logfile.flush()
    try:
        result = subprocess.run(
            [str(a) for a in argv],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=INSTALL_STEP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"timed out after {INSTALL_STEP_TIMEOUT:.0f} s: {line}") from exc
    if result.returncode != 0:
        raise HarnessError(f"exit {result.returncode}: {line} (see {logfile.name})")


def prepare_py27(python27: Path, *, rebuild: bool = False) -> Path:
    """Build (once) the 2.7 virtualenv with wstest and return wstest's path.

    virtualenv itself goes into ``.py27/bootstrap`` with ``pip install --target`` and runs from
    there through PYTHONPATH, so the pyenv interpreter's own site-packages is never changed;
    its app-data cache is kept inside ``.py27`` too, so nothing is left in the home folder.
    The venv then gets the pinned set and a ``pip check``, and ``wstest --autobahnversion``
    proves that it imports.
    """
    venv = PY27_DIR / "venv"
    wstest = venv / "bin" / "wstest"
    stamp = PY27_DIR / "fingerprint"
    fingerprint = py27_fingerprint(python27)
    built = wstest.is_file() and stamp.is_file()
    if not rebuild and built and stamp.read_text().strip() == fingerprint:
        return wstest
    log(f"building the Python 2.7 environment in {PY27_DIR} with {python27} (about a minute)")
    if PY27_DIR.exists():
        shutil.rmtree(PY27_DIR)
    PY27_DIR.mkdir(parents=True)
    env = py27_env()
    install_log = PY27_DIR / "install.log"
    started = time.monotonic()
    bootstrap = PY27_DIR / "bootstrap"
    get_virtualenv: list[str | Path] = [python27, "-m", "pip", "install", "--quiet"]
    get_virtualenv += ["--no-warn-script-location", "--target", bootstrap]
    get_virtualenv += ["-r", BOOTSTRAP_REQUIREMENTS]
    make_venv: list[str | Path] = [python27, "-m", "virtualenv", "--no-periodic-update"]
    make_venv.append(venv)
    # the env var, not --app-data: with the flag virtualenv still creates its default folder
    # under ~/.local/share before it reads the flag
    venv_env = env | {
        "PYTHONPATH": str(bootstrap),
        "VIRTUALENV_OVERRIDE_APP_DATA": str(PY27_DIR / "app-data"),
    }
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip"]
    with install_log.open("w") as logfile:
        run_step(get_virtualenv, logfile, env)
        run_step(make_venv, logfile, venv_env)
        run_step([*pip, "install", "--quiet", "-r", REQUIREMENTS], logfile, env)
        run_step([*pip, "check"], logfile, env)
        run_step([wstest, "--autobahnversion"], logfile, env)
    stamp.write_text(fingerprint + "\n")
    log(f"Python 2.7 environment ready in {time.monotonic() - started:.0f} s (log: {install_log})")
    return wstest


# --- the server under test ------------------------------------------------------------------


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def group_alive(proc: subprocess.Popen[Any]) -> bool:
    """Whether any process is left in the group led by ``proc`` (the leader reaped first)."""
    proc.poll()
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # only someone else's process could be refusing us
        return False
    return True


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group the harness started, then SIGKILL what is left of it.

    The group, because a shell command's server may be the shell's child: signalling the
    shell alone would leave the server running, and the shell can exit before its child has
    finished shutting down. So the wait is for the whole group to be gone, bounded by
    STOP_GRACE. The group id is the pid we started, nothing broader.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_alive(proc):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and group_alive(proc):
            time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_GRACE)


def wait_for_tcp(port: int, proc: subprocess.Popen[Any], timeout: float) -> None:
    """Return once 127.0.0.1:port accepts a connection; fail early if the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"the server exited with status {proc.returncode} before listening")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise HarnessError(f"the server did not accept TCP on 127.0.0.1:{port} within {timeout:.0f} s")


@contextlib.contextmanager
def serving(command: str, port: int, logpath: Path, startup_timeout: float) -> Iterator[Any]:
    """Run the server command for the duration of the block, output to ``logpath``."""
    log(f"server: {command}")
    with logpath.open("w") as logfile:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                wait_for_tcp(port, proc, startup_timeout)
            except HarnessError as exc:
                logfile.flush()
                tail = logpath.read_text(errors="replace").splitlines()[-10:]
                shown = "".join(f"\n    {line}" for line in tail)
                raise HarnessError(f"{exc}; the end of {logpath}:{shown}") from None
            yield proc
        finally:
            stop_group(proc)


# --- wstest and its report ------------------------------------------------------------------


def write_spec(
    path: Path, *, url: str, agent: str, outdir: Path, cases: list[str], exclude: list[str]
) -> None:
    """The fuzzingclient spec: one server, the cases asked for, the suite's default options."""
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": url}],
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    path.write_text(json.dumps(spec, indent=2) + "\n")


def run_wstest(wstest: Path, spec: Path, cwd: Path, logpath: Path, timeout: float) -> int:
    """Run the fuzzingclient to its end, or kill it at the deadline; return its exit status."""
    argv = [str(wstest), "-m", "fuzzingclient", "-s", str(spec)]
    log(f"wstest: {shlex.join(argv)} (log: {logpath})")
    with logpath.open("w") as logfile:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=py27_env(),
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"wstest did not finish within {timeout:.0f} s") from exc
        finally:
            stop_group(proc)


def expected_case_count(wstest_log: Path) -> int | None:
    """How many cases wstest said it would run: the report must hold that many.

    wstest gives up on the remaining cases when it cannot connect (a server that died
    mid-run), and still writes a report of those it ran, so the count is the only way to
    notice cases that silently went missing.
    """
    match = re.search(r"Ok, will run (\d+) test cases", wstest_log.read_text(errors="replace"))
    return int(match.group(1)) if match else None


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def case_passes(case_id: str, behavior: str) -> bool:
    if behavior in PASSING:
        return True
    return behavior == "UNIMPLEMENTED" and case_key(case_id)[0] in UNIMPLEMENTED_ALLOWED


@dataclass
class Verdict:
    """What the report says, and whether it is a pass."""

    results: dict[str, dict[str, Any]]
    expected: int | None
    #: the server's exit status if it died during the run (a crash is a failure, whatever
    #: the cases said before it)
    server_exit: int | None = None

    @property
    def failures(self) -> list[str]:
        return [c for c in self.ordered if not case_passes(c, self.results[c]["behavior"])]

    @property
    def ordered(self) -> list[str]:
        return sorted(self.results, key=case_key)

    @property
    def missing(self) -> int:
        return max(0, (self.expected or 0) - len(self.results))

    @property
    def passed(self) -> bool:
        return (
            bool(self.results)
            and not self.failures
            and not self.missing
            and self.server_exit is None
        )


def read_report(index: Path, agent: str) -> dict[str, dict[str, Any]]:
    if not index.is_file():
        raise HarnessError(f"wstest wrote no report at {index}")
    report: dict[str, dict[str, dict[str, Any]]] = json.loads(index.read_text())
    if agent not in report:
        raise HarnessError(f"the report at {index} has no agent {agent!r} (has {list(report)})")
    return report[agent]


def summary(verdict: Verdict, agent: str) -> str:
    """The summary table: counts per behavior, per case group, and every case that failed."""
    results = verdict.results
    behaviors = Counter(r["behavior"] for r in results.values())
    closes = Counter(r["behaviorClose"] for r in results.values())
    names = sorted(behaviors, key=lambda b: (b not in PASSING, b))
    lines = [f"Autobahn fuzzingclient: agent {agent!r}, {len(results)} cases in the report"]
    if verdict.expected is not None:
        lines[0] += f" (wstest said it would run {verdict.expected})"
    lines.append("")
    lines.append("behavior        cases")
    lines += [f"{name:<15} {behaviors[name]:>5}" for name in names]
    lines.append("")
    lines.append("behaviorClose   cases")
    lines += [f"{name:<15} {count:>5}" for name, count in sorted(closes.items())]
    lines.append("")
    groups: dict[int, Counter[str]] = {}
    for case_id, result in results.items():
        groups.setdefault(case_key(case_id)[0], Counter())[result["behavior"]] += 1
    header = f"{'group':<6} {'cases':>5} " + " ".join(f"{n:>13}" for n in names)
    lines.append(header)
    for group in sorted(groups):
        counts = groups[group]
        row = f"{group:<6} {sum(counts.values()):>5} "
        lines.append(row + " ".join(f"{counts[n]:>13}" for n in names))
    lines.append("")
    for name in names:
        if name in PASSING and name != "OK":
            cases = [c for c in verdict.ordered if results[c]["behavior"] == name]
            lines.append(f"{name} (passes): {' '.join(cases)}")
    if any(n in PASSING and n != "OK" for n in names):
        lines.append("")
    failures = verdict.failures
    if failures:
        lines.append(f"{len(failures)} cases did not pass:")
        lines.append(f"{'case':<10} {'behavior':<15} {'behaviorClose':<15} remoteCloseCode")
        for case_id in failures:
            r = results[case_id]
            lines.append(
                f"{case_id:<10} {r['behavior']:<15} {r['behaviorClose']:<15}"
                f" {r.get('remoteCloseCode')}"
            )
        lines.append("")
    if verdict.missing:
        lines.append(f"{verdict.missing} cases are missing from the report (did the server die?)")
    if verdict.server_exit is not None:
        lines.append(f"the server exited with status {verdict.server_exit} during the run")
    lines.append("PASS" if verdict.passed else "FAIL")
    return "\n".join(lines)


# --- the command line -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.autobahn.run",
        description="Run Autobahn|Testsuite's fuzzingclient (cases 1-10) against an echo server.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--server-cmd",
        help="shell command that serves a websocket echo on 127.0.0.1:{port}"
        " (run from the repository root; {port} is replaced)",
    )
    target.add_argument(
        "--baseline",
        action="store_true",
        help="serve bench/autobahn/asgi_echo.py on uvicorn with websockets-sansio",
    )
    target.add_argument(
        "--prepare-only",
        action="store_true",
        help="build the Python 2.7 environment and exit",
    )
    parser.add_argument(
        "--baseline-ws",
        choices=BASELINE_WS,
        default=BASELINE_WS[0],
        help="uvicorn's websocket implementation for --baseline (default websockets-sansio)",
    )
    parser.add_argument("--path", default="/", help="URL path of the echo route (default /)")
    parser.add_argument("--agent", help="name in the report (default: baseline or server)")
    parser.add_argument(
        "--cases", nargs="+", default=DEFAULT_CASES, help="case patterns (default 1.* .. 10.*)"
    )
    parser.add_argument(
        "--exclude", nargs="+", default=[], help="case patterns to leave out, e.g. 9.*"
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds for the whole wstest run (900)"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=30.0, help="seconds for the server to listen"
    )
    parser.add_argument("--python27", help="the Python 2.7 interpreter (default: pyenv's 2.7)")
    parser.add_argument(
        "--rebuild", action="store_true", help="rebuild the Python 2.7 environment first"
    )
    parser.add_argument(
        "--reports",
        type=Path,
        default=DEFAULT_REPORTS,
        help="directory for spec, logs and reports (default bench/autobahn/reports)",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    wstest = prepare_py27(find_python27(args.python27), rebuild=args.rebuild)
    if args.prepare_only:
        log(f"wstest is {wstest}")
        return 0
    command_template: str = (
        BASELINE_CMD.replace("{ws}", args.baseline_ws) if args.baseline else args.server_cmd
    )
    if "{port}" not in command_template:
        raise HarnessError("--server-cmd must contain {port}")
    baseline_agent = f"baseline-{args.baseline_ws}"
    agent: str = args.agent or (baseline_agent if args.baseline else "server")
    reports: Path = args.reports.resolve()
    outdir = reports / "servers"
    if outdir.exists():  # never read a previous run's verdict
        shutil.rmtree(outdir)
    reports.mkdir(parents=True, exist_ok=True)
    port = free_port()
    path = args.path if args.path.startswith("/") else "/" + args.path
    spec = reports / "spec.json"
    write_spec(
        spec,
        url=f"ws://127.0.0.1:{port}{path}",
        agent=agent,
        outdir=outdir,
        cases=args.cases,
        exclude=args.exclude,
    )
    wstest_log = reports / "wstest.log"
    started = time.monotonic()
    with serving(
        command_template.replace("{port}", str(port)),
        port,
        reports / "server.log",
        args.startup_timeout,
    ) as server:
        status = run_wstest(wstest, spec, reports, wstest_log, args.timeout)
        server_status = server.poll()
    elapsed = time.monotonic() - started
    if status != 0:
        raise HarnessError(f"wstest exited with status {status} (see {wstest_log})")
    verdict = Verdict(
        read_report(outdir / "index.json", agent), expected_case_count(wstest_log), server_status
    )
    print(summary(verdict, agent))
    print(f"wstest ran for {elapsed:.0f} s; HTML report: {outdir / 'index.html'}")
    return 0 if verdict.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except HarnessError as exc:
        log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

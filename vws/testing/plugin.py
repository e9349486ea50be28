"""The pytest plugin (entry point ``pytest11``): the ``vws_config``, ``vws_app`` and ``vws_live``
fixtures and the ``vws_config``/``vws_timeout`` ini options. It needs pytest:
``pip install 'vws[testing]'``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from vws.testing.clients import DEFAULT_TIMEOUT
from vws.testing.servers import LiveServer, TestApp


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "vws_config", "routes.toml of the vws_app and vws_live fixtures", default="routes.toml"
    )
    parser.addini(
        "vws_timeout",
        "seconds a vws.testing client waits for a frame",
        default=str(DEFAULT_TIMEOUT),
    )


def _timeout(config: pytest.Config) -> float:
    return float(config.getini("vws_timeout"))


@pytest.fixture
def vws_config(request: pytest.FixtureRequest) -> Path:
    """The routes.toml to serve: the ``vws_config`` ini option, relative to the rootdir.

    Override this fixture to serve another file (return its path).
    """
    return Path(request.config.rootpath) / str(request.config.getini("vws_config"))


@pytest.fixture
async def vws_app(
    vws_config: Path, anyio_backend: Any, request: pytest.FixtureRequest
) -> AsyncIterator[TestApp]:
    """The app of ``vws_config``, started; connect in-process clients with ``connect``."""
    async with TestApp(vws_config, timeout=_timeout(request.config)) as app:
        yield app


@pytest.fixture
def vws_live(vws_config: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The app of ``vws_config`` served on 127.0.0.1 (``.url``, ``.http``, ``connect``)."""
    live = LiveServer(vws_config, timeout=_timeout(request.config)).start()
    try:
        yield live
    finally:
        live.stop()

"""Apps of other frameworks that serve vws beside their own routes (tests/test_embed.py).

The routes.toml comes from ``VWS_EMBED_CONFIG``; uvicorn serves ``starlette_app`` or
``litestar_app`` from this module.
"""

from __future__ import annotations

import os

from litestar import Litestar, get
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from vws.edge.embed import VwsPlugin, asgi_app

CONFIG = os.environ.get("VWS_EMBED_CONFIG", "routes.toml")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello from starlette")


def make_starlette() -> Starlette:
    realtime = asgi_app(CONFIG)
    return Starlette(
        routes=[Route("/hello", hello), Mount("/rt", app=realtime)], lifespan=realtime.lifespan
    )


@get("/hello", sync_to_thread=False)
def litestar_hello() -> str:
    return "hello from litestar"


def make_litestar() -> Litestar:
    return Litestar(route_handlers=[litestar_hello], plugins=[VwsPlugin(CONFIG, path="/rt")])

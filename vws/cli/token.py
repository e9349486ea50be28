"""``vws token``: mint an HS256 token for the bundled auth plugin, for development.

The secret comes from ``--secret``, else from ``[plugins.settings.auth]`` of routes.toml (its
``secret``, or the environment variable its ``secret_env`` names), else ``VWS_AUTH_SECRET``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from vws.cli import add_command
from vws.config import load_config


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = add_command(
        commands, "token", "mint a signed token for the auth plugin (development)", token_command
    )
    sub.add_argument("--secret", help="the HS256 secret (default: from routes.toml or env)")
    sub.add_argument("--sub", help="the subject (sub claim), e.g. a user name")
    sub.add_argument(
        "--ttl",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime, written as the exp claim (default 3600; 0 for no exp)",
    )
    sub.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another claim; VALUE is read as JSON when it parses (rooms='[\"lobby\"]')",
    )
    sub.add_argument(
        "--new-secret", action="store_true", help="print a fresh random secret and exit"
    )


def token_command(args: argparse.Namespace) -> int:
    from vws.contrib.auth import MIN_SECRET_LENGTH, mint

    if args.new_secret:
        print(secrets.token_urlsafe(48))
        return 0
    secret = args.secret or _configured_secret(args.config)
    if not secret:
        print(
            "vws token: no secret: pass --secret, set VWS_AUTH_SECRET, or configure "
            "[plugins.settings.auth] in routes.toml",
            file=sys.stderr,
        )
        return 1
    if len(secret) < MIN_SECRET_LENGTH:
        print(
            f"vws token: the secret must be at least {MIN_SECRET_LENGTH} characters",
            file=sys.stderr,
        )
        return 1
    now = int(time.time())
    claims: dict[str, Any] = {"iat": now}
    if args.ttl:
        claims["exp"] = now + args.ttl
    if args.sub:
        claims["sub"] = args.sub
    for item in args.claim:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"vws token: --claim expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        try:
            claims[key] = json.loads(value)
        except ValueError:
            claims[key] = value
    print(mint(claims, secret))
    return 0


def _configured_secret(config_path: str) -> str:
    settings: dict[str, Any] = {}
    if Path(config_path).exists():
        settings = load_config(config_path).plugins.settings.get("auth", {})
    secret = settings.get("secret")
    if isinstance(secret, str) and secret:
        return secret
    return os.environ.get(str(settings.get("secret_env") or "VWS_AUTH_SECRET"), "")

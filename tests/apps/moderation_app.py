"""The test app of vws-moderation (tests/test_plugin_moderation.py): who a client is."""

from __future__ import annotations

from vws import Client


def identify(client: Client) -> None:
    """Middleware: ``?user=NAME`` is who the client is; without it the client is anonymous."""
    client.user = client.query.get("user") or None

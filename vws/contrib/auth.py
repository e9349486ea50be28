"""Token authentication at connect, and per-room authorisation from a claim.

A client presents an HS256 JWT in the ``Authorization: Bearer ...`` header or the ``token``
query parameter. On a protected path a client without a valid token is refused with 4401; a
token whose paths claim does not cover the path is refused with 4403. The verified claims land in
``client.state["claims"]``, and the ``sub`` claim (``user_claim``) becomes ``client.user``.
With ``rooms_claim`` set, a join is allowed only to rooms matching one of the claim's patterns
(``join_denied`` otherwise).

JWTs are verified with the standard library only: HS256 is an HMAC-SHA256 over
``header.payload``, and every other algorithm (``none`` included) is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from fnmatch import fnmatchcase
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from vws import Client, Deny, hookimpl

#: Close codes: no valid token, and a valid token that does not allow this path.
NOT_AUTHENTICATED = 4401
NOT_ALLOWED = 4403
#: Shortest secret accepted: HS256 keys should carry at least 256 bits.
MIN_SECRET_LENGTH = 32


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.settings.auth]``."""

    #: The HS256 key. Leave empty to read it from the ``secret_env`` environment variable.
    secret: str = ""
    secret_env: str = "VWS_AUTH_SECRET"
    #: Route paths (shell patterns) on which a token is required.
    paths: tuple[str, ...] = ("*",)
    query_param: str = "token"
    #: Seconds of clock skew tolerated for ``exp`` and ``nbf``.
    leeway: Annotated[float, Meta(ge=0)] = 0.0
    #: Refuse tokens without an ``exp`` claim.
    require_exp: bool = True
    #: When set, the ``iss`` claim must equal it / the ``aud`` claim must contain it.
    issuer: str = ""
    audience: str = ""
    #: ``client.state`` key the claims are stored under.
    state_key: str = "claims"
    #: The claim that names the user, set as ``client.user`` (a string claim; others are
    #: ignored). Empty leaves ``client.user`` alone.
    user_claim: str = "sub"
    #: When set, the claim listing the path patterns a token may connect to (else 4403).
    paths_claim: str = ""
    #: When set, the claim listing the room patterns a token may join (else join_denied).
    rooms_claim: str = ""
    #: Longest token accepted, so a client cannot make the server decode megabytes.
    max_token_length: Annotated[int, Meta(ge=64)] = 8192

    def __post_init__(self) -> None:
        if not self.secret:
            self.secret = os.environ.get(self.secret_env, "")
        if not self.secret:
            raise ValueError(f"set secret, or the environment variable {self.secret_env}")
        if len(self.secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the secret must be at least {MIN_SECRET_LENGTH} characters")


class InvalidToken(Exception):
    """A token that does not verify; the message says why (never the token itself)."""


def _b64decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed token") from None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT carrying ``claims``, signed with ``secret``."""
    header = _b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64encode(signature)}"


def verify(token: str, settings: Settings, now: float | None = None) -> dict[str, Any]:
    """The claims of a valid token.

    Raises:
        InvalidToken: malformed, not HS256, a bad signature, expired, not yet valid, or the
            wrong issuer or audience.
    """
    if len(token) > settings.max_token_length or token.count(".") != 2:
        raise InvalidToken("malformed token")
    header_part, body_part, signature_part = token.split(".")
    try:
        header = json.loads(_b64decode(header_part))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise InvalidToken("only HS256 tokens are accepted")
    expected = hmac.new(
        settings.secret.encode(), f"{header_part}.{body_part}".encode(), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, _b64decode(signature_part)):
        raise InvalidToken("bad signature")
    try:
        claims = json.loads(_b64decode(body_part))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    now = time.time() if now is None else now
    exp = claims.get("exp")
    if exp is None and settings.require_exp:
        raise InvalidToken("the token has no exp claim")
    if exp is not None and (not _number(exp) or now > exp + settings.leeway):
        raise InvalidToken("the token has expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not _number(nbf) or now + settings.leeway < nbf):
        raise InvalidToken("the token is not valid yet")
    if settings.issuer and claims.get("iss") != settings.issuer:
        raise InvalidToken("wrong issuer")
    if settings.audience:
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.audience not in audiences:
            raise InvalidToken("wrong audience")
    return claims


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _token(client: Client, settings: Settings) -> str | None:
    authorization = client.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return client.query.get(settings.query_param) or None


def allows(patterns: Any, name: str) -> bool:
    """Whether a claim (a pattern or a list of them) covers ``name``."""
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list):
        return False
    return any(isinstance(p, str) and fnmatchcase(name, p) for p in patterns)


def _protected(path: str, settings: Settings) -> bool:
    return any(fnmatchcase(path, pattern) for pattern in settings.paths)


@hookimpl(tryfirst=True)
def vws_connect(client: Client, settings: Settings) -> None:
    """Verify the token before any other plugin sees the client, so they can use its claims."""
    token = _token(client, settings)
    if token is None:
        if _protected(client.path, settings):
            raise Deny("a token is required", code=NOT_AUTHENTICATED)
        return
    try:
        claims = verify(token, settings)
    except InvalidToken as exc:
        raise Deny(f"invalid token: {exc}", code=NOT_AUTHENTICATED) from None
    if settings.paths_claim and not allows(claims.get(settings.paths_claim), client.path):
        raise Deny(f"the token does not allow {client.path}", code=NOT_ALLOWED)
    client.state[settings.state_key] = claims
    user = claims.get(settings.user_claim) if settings.user_claim else None
    if isinstance(user, str) and user:
        client.user = user


@hookimpl
def vws_join_room(client: Client, room: str, settings: Settings) -> None:
    if not settings.rooms_claim:
        return
    claims = client.state.get(settings.state_key)
    if claims is None and not _protected(client.path, settings):
        return  # an anonymous client of an open path: rooms are not this plugin's business
    grants = claims.get(settings.rooms_claim) if isinstance(claims, dict) else None
    if not allows(grants, room):
        raise Deny(f"the token does not allow room {room!r}")

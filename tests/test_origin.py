"""Unit tests for vws.edge.origin: the browser Origin check at the handshake."""

from __future__ import annotations

import pytest

from vws.edge.origin import normalise, origin_allowed


def test_no_origin_is_allowed() -> None:
    assert origin_allowed(None, "example.com", ()) is True
    assert origin_allowed(None, None, ()) is True


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://example.com", "example.com"),
        ("http://example.com", "example.com:80"),
        ("http://example.com:80", "example.com"),
        ("https://example.com", "example.com"),
        ("https://example.com:443", "example.com"),
        ("https://example.com", "example.com:443"),
        ("http://example.com:8000", "example.com:8000"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("http://localhost:3000", "localhost:3000"),
        ("http://[::1]:8000", "[::1]:8000"),
    ],
)
def test_same_host_and_port_is_allowed(origin: str, host: str) -> None:
    assert origin_allowed(origin, host, ()) is True


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://example.com:8080", "example.com"),
        ("http://example.com", "example.com:8080"),
        ("http://example.com:8000", "example.com:8001"),
        ("https://example.com", "example.com:80"),  # https defaults to 443
        ("http://example.com:443", "example.com:80"),
        ("http://localhost:3000", "localhost:8000"),
    ],
)
def test_different_port_is_refused(origin: str, host: str) -> None:
    assert origin_allowed(origin, host, ()) is False


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.com",
        "http://example.com.evil.com",
        "http://evilexample.com",
        "http://sub.example.com",
        "http://127.0.0.1",
    ],
)
def test_foreign_host_is_refused(origin: str) -> None:
    assert origin_allowed(origin, "example.com", ()) is False


def test_null_origin_is_refused() -> None:
    assert origin_allowed("null", "example.com", ()) is False
    assert origin_allowed("null", "example.com", ("http://example.com",)) is False


@pytest.mark.parametrize("origin", ["", "garbage", "http://", "http://example.com:abc"])
def test_unreadable_origin_is_refused(origin: str) -> None:
    assert origin_allowed(origin, "example.com", ()) is False


def test_missing_host_header_only_allows_listed_origins() -> None:
    assert origin_allowed("http://example.com", None, ()) is False
    assert origin_allowed("http://example.com", "", ()) is False
    assert origin_allowed("http://example.com", None, ("http://example.com",)) is True


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", ("https://app.example.com",)),
        ("https://app.example.com", ("https://app.example.com:443",)),
        ("https://app.example.com:443", ("https://app.example.com",)),
        ("http://app.example.com", ("http://app.example.com:80",)),
        ("http://localhost:3000", ("https://other.example", "http://localhost:3000")),
        ("https://app.example.com", ("https://app.example.com/",)),
    ],
)
def test_listed_origins_are_allowed(origin: str, allowed: tuple[str, ...]) -> None:
    assert origin_allowed(origin, "api.example.com", allowed) is True


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://app.example.com", ("https://app.example.com",)),  # scheme differs
        ("https://app.example.com:8443", ("https://app.example.com",)),
        ("https://evil.example.com", ("https://app.example.com",)),
        ("http://localhost:3001", ("http://localhost:3000",)),
    ],
)
def test_origins_not_listed_are_refused(origin: str, allowed: tuple[str, ...]) -> None:
    assert origin_allowed(origin, "api.example.com", allowed) is False


@pytest.mark.parametrize("origin", ["http://evil.com", "https://x.y:1234", "null"])
def test_star_allows_any(origin: str) -> None:
    assert origin_allowed(origin, "example.com", ("*",)) is True
    assert origin_allowed(origin, "example.com", ("https://a.example", "*")) is True


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("HTTP://EXAMPLE.COM", "example.com", ()),
        ("http://Example.Com:8000", "EXAMPLE.com:8000", ()),
        ("https://APP.example.com", "api.example.com", ("https://app.EXAMPLE.com",)),
        ("https://app.example.com", "api.example.com", ("HTTPS://APP.EXAMPLE.COM",)),
    ],
)
def test_hosts_compare_case_insensitively(origin: str, host: str, allowed: tuple[str, ...]) -> None:
    assert origin_allowed(origin, host, allowed) is True


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("wss://example.com", "wss://example.com:443"),
        ("ws://example.com", "ws://example.com:80"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("HTTPS://Example.COM:443", "https://example.com:443"),
        ("  http://example.com  ", "http://example.com:80"),
        ("http://example.com/", "http://example.com:80"),
    ],
)
def test_normalise(origin: str, expected: str) -> None:
    assert normalise(origin) == expected


@pytest.mark.parametrize("origin", ["null", "", "example.com", "http://", "http://x:99999"])
def test_normalise_unreadable_is_none(origin: str) -> None:
    assert normalise(origin) is None

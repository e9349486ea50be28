"""Unit tests for vws.config.lines: the scanner that finds the line of every key of a TOML text."""

from __future__ import annotations

import tomllib
from textwrap import dedent

import pytest

from vws.config.lines import KeyPath, key_lines, line_of


def scan(text: str) -> dict[KeyPath, int]:
    """key_lines of a text that tomllib accepts (the scanner assumes a valid document)."""
    tomllib.loads(text)
    return key_lines(text)


def test_table_headers_and_their_keys() -> None:
    lines = scan(
        dedent(
            """\
            [server]
            host = "127.0.0.1"
            port = 8000

            [plugins]
            load = ["a"]
            """
        )
    )
    assert lines[("server",)] == 1
    assert lines[("server", "host")] == 2
    assert lines[("server", "port")] == 3
    assert lines[("plugins",)] == 5
    assert lines[("plugins", "load")] == 6


def test_quoted_keys_in_headers_give_every_prefix_the_header_line() -> None:
    lines = scan(
        dedent(
            """\
            [server]
            port = 1

            [routes."/ws".events]
            message = "app.chat:on_message"

            [routes."/ws".events.chat]
            handler = "app.chat:on_chat"
            schema = "app.models:Chat"

            [routes.'/admin'.events]
            "admin-message" = "app.admin:on"
            """
        )
    )
    assert lines[("routes",)] == 4  # first written on the first routes header
    assert lines[("routes", "/ws")] == 4
    assert lines[("routes", "/ws", "events")] == 4
    assert lines[("routes", "/ws", "events", "message")] == 5
    assert lines[("routes", "/ws", "events", "chat")] == 7
    assert lines[("routes", "/ws", "events", "chat", "handler")] == 8
    assert lines[("routes", "/ws", "events", "chat", "schema")] == 9
    assert lines[("routes", "/admin")] == 11
    assert lines[("routes", "/admin", "events", "admin-message")] == 12


def test_quoted_key_with_dot_and_escape_is_one_part() -> None:
    lines = scan('[t]\n"a.b" = 1\n"q\\"x" = 2\n\'lit.key\' = 3\n')
    assert lines[("t", "a.b")] == 2
    assert lines[("t", 'q"x')] == 3
    assert lines[("t", "lit.key")] == 4
    assert ("t", "a") not in lines


def test_spaces_inside_a_header_are_ignored() -> None:
    lines = scan('[ routes . "/ws" . events ]\nx = "a:b"\n')
    assert lines[("routes", "/ws", "events")] == 1
    assert lines[("routes", "/ws", "events", "x")] == 2


def test_dotted_keys_record_every_prefix() -> None:
    lines = scan('[routes."/ws"]\nbroadcast = "route"\nevents.chat.handler = "a:b"\n')
    assert lines[("routes", "/ws", "broadcast")] == 2
    assert lines[("routes", "/ws", "events")] == 3
    assert lines[("routes", "/ws", "events", "chat")] == 3
    assert lines[("routes", "/ws", "events", "chat", "handler")] == 3


def test_top_level_dotted_key_with_quoted_part() -> None:
    lines = scan('\n\nserver.port = 1\nroutes."/x".broadcast = "server"\n')
    assert lines[("server",)] == 3
    assert lines[("server", "port")] == 3
    assert lines[("routes", "/x", "broadcast")] == 4


def test_inline_table_keys_map_to_the_line_of_the_table() -> None:
    lines = scan(
        dedent(
            """\
            [routes."/ws".events]
            message = "a:b"
            chat = { handler = "a:b", schema = "c:d" }
            nested = { inner = { deep = 1 } }
            """
        )
    )
    chat = ("routes", "/ws", "events", "chat")
    assert lines[chat] == 3
    assert lines[(*chat, "handler")] == 3
    assert lines[(*chat, "schema")] == 3
    nested = ("routes", "/ws", "events", "nested")
    assert lines[(*nested, "inner")] == 4
    assert lines[(*nested, "inner", "deep")] == 4


def test_multi_line_array_elements_have_their_own_lines() -> None:
    lines = scan(
        dedent(
            """\
            [server]
            allowed_origins = [
                "http://a.example",  # the first
                # a comment line
                "http://b.example",

                "http://c.example", "http://d.example",
            ]
            port = 1
            """
        )
    )
    key = ("server", "allowed_origins")
    assert lines[key] == 2
    assert lines[(*key, "0")] == 3
    assert lines[(*key, "1")] == 5
    assert lines[(*key, "2")] == 7
    assert lines[(*key, "3")] == 7
    assert lines[("server", "port")] == 9


def test_inline_tables_inside_an_array() -> None:
    lines = scan("[t]\nitems = [\n  { a = 1 },\n  { b = 2 },\n]\n")
    assert lines[("t", "items", "0")] == 3
    assert lines[("t", "items", "0", "a")] == 3
    assert lines[("t", "items", "1", "b")] == 4


def test_multi_line_strings_with_brackets_and_equals_do_not_confuse_the_scanner() -> None:
    text = dedent(
        '''\
        [server]
        host = """
        [fake]
        port = 1
        """
        note = \'\'\'
        [[also.fake]]
        x = "y"
        \'\'\'
        quotes = """ends with two quotes"""""
        port = 8000

        [plugins]
        load = []
        '''
    )
    lines = scan(text)
    assert lines[("server", "host")] == 2
    assert lines[("server", "note")] == 6
    assert lines[("server", "quotes")] == 10
    assert lines[("server", "port")] == 11
    assert lines[("plugins",)] == 13
    assert lines[("plugins", "load")] == 14
    assert set(lines) == {
        ("server",),
        ("server", "host"),
        ("server", "note"),
        ("server", "quotes"),
        ("server", "port"),
        ("plugins",),
        ("plugins", "load"),
    }


def test_single_line_strings_with_brackets_hashes_and_escaped_quotes() -> None:
    lines = scan('[t]\na = "x\\" [y] = # z"\nb = \'[c] = #\'\nc = 3\n')
    assert lines[("t", "a")] == 2
    assert lines[("t", "b")] == 3
    assert lines[("t", "c")] == 4
    assert ("y",) not in lines and ("c",) not in lines


def test_comments_are_skipped() -> None:
    lines = scan(
        dedent(
            """\
            # [server]
            # port = 1
            [server] # a header comment with [brackets] and = signs
            port = 2 # trailing = [x]
            #host = "nowhere"
            host = "h"
            """
        )
    )
    assert lines == {("server",): 3, ("server", "port"): 4, ("server", "host"): 6}


def test_array_of_tables() -> None:
    lines = scan("[[arr]]\nx = 1\n[[arr]]\ny = 2\n")
    assert lines[("arr",)] == 1
    assert lines[("arr", "x")] == 2
    assert lines[("arr", "y")] == 4


def test_first_appearance_wins() -> None:
    lines = scan('[routes."/a"]\nbroadcast = "server"\n[routes."/b"]\nbroadcast = "route"\n')
    assert lines[("routes",)] == 1
    assert lines[("routes", "/a", "broadcast")] == 2
    assert lines[("routes", "/b")] == 3
    assert lines[("routes", "/b", "broadcast")] == 4


def test_crlf_line_endings() -> None:
    lines = scan('[server]\r\nport = 1\r\n\r\nhost = "h"\r\n')
    assert lines[("server", "port")] == 2
    assert lines[("server", "host")] == 4


def test_empty_document() -> None:
    assert key_lines("") == {}
    assert key_lines("# only a comment\n\n") == {}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("routes", "/ws", "events", "chat", "schema"), 4),  # exact
        (("routes", "/ws", "events", "chat", "nope"), 3),  # longest prefix: the chat header
        (("routes", "/ws", "events", "missing", "handler"), 1),  # falls back to events
        (("server", "port"), 7),
        (("server", "host"), 6),  # not written: the [server] header
        (("server", "allowed_origins", "0"), 6),
        (("nothing",), 1),  # nothing matches at all
        ((), 1),
    ],
)
def test_line_of_falls_back_to_the_longest_known_prefix(path: KeyPath, expected: int) -> None:
    lines = scan(
        dedent(
            """\
            [routes."/ws".events]
            message = "a:b"
            [routes."/ws".events.chat]
            schema = "c:d"

            [server]
            port = 1
            """
        )
    )
    assert line_of(lines, path) == expected


def test_line_of_prefers_the_deepest_match() -> None:
    lines: dict[KeyPath, int] = {("a",): 10, ("a", "b"): 20, ("a", "b", "c"): 30}
    assert line_of(lines, ("a", "b", "c", "d")) == 30
    assert line_of(lines, ("a", "b", "x")) == 20
    assert line_of(lines, ("a", "x", "c")) == 10


def test_escaped_quotes_inside_a_multi_line_basic_string() -> None:
    text = '[server]\nhost = """a\\"""b"""\nport = "x"\n'
    assert tomllib.loads(text)["server"]["host"] == 'a"""b'
    assert key_lines(text)[("server", "port")] == 3

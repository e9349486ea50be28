"""vws.tools.tomledit: each edit changes only its own lines of a routes.toml full of comments."""

from __future__ import annotations

import difflib
import tomllib

import pytest

from vws.tools.tomledit import EditError, add_event, add_route, remove_event, remove_route

COMMENTED = """\
# Our chat service.   (odd   spacing and comments must survive)
[server]
port   =   9000        # not the default

# ---- the main socket ----
[routes."/ws"]
middleware = ["app:auth"]    # auth first

[routes."/ws".events]
# plain messages
message = "app:on_message"   # short form
typing  = 'app:on_typing'

# the typed chat event
[routes."/ws".events.chat]
handler = "app:on_chat"
schema  = "app:Chat"         # validated

# ---- admins ----
[routes."/admins".events]
admin-message = "app:on_admin"
"""


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines removed from and added to ``before``."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def test_add_route_appends_one_table():
    after = add_route(COMMENTED, "/new")
    assert after.startswith(COMMENTED)
    assert changed_lines(COMMENTED, after) == ([], ["", '[routes."/new"]'])
    assert tomllib.loads(after)["routes"]["/new"] == {}


def test_add_event_short_form_goes_into_the_routes_events_table():
    after = add_event(COMMENTED, "/ws", "user-typing", "app:on_user_typing")
    assert changed_lines(COMMENTED, after) == ([], ['user-typing = "app:on_user_typing"'])
    lines = after.splitlines()
    assert (
        lines.index('user-typing = "app:on_user_typing"')
        == lines.index("typing  = 'app:on_typing'") + 1
    )
    assert tomllib.loads(after)["routes"]["/ws"]["events"]["user-typing"] == "app:on_user_typing"


def test_add_event_long_form_goes_after_the_routes_last_table():
    after = add_event(COMMENTED, "/ws", "typed", "app:on_typed", schema="app:Typed")
    block = '[routes."/ws".events.typed]\nhandler = "app:on_typed"\nschema = "app:Typed"\n\n'
    assert after == COMMENTED.replace("# ---- admins ----", block + "# ---- admins ----")


def test_add_event_creates_the_events_table_when_the_route_has_none():
    text = '[routes."/bare"]\n\n# trailing comment\n'
    after = add_event(text, "/bare", "ping", "app:ping")
    assert tomllib.loads(after)["routes"]["/bare"]["events"] == {"ping": "app:ping"}
    assert "# trailing comment" in after


def test_keys_that_need_quoting_are_quoted():
    after = add_event(COMMENTED, "/ws", "with space", "app:f")
    assert tomllib.loads(after)["routes"]["/ws"]["events"]["with space"] == "app:f"


def test_remove_event_short_form_takes_only_its_line():
    after = remove_event(COMMENTED, "/ws", "typing")
    assert changed_lines(COMMENTED, after) == (["typing  = 'app:on_typing'"], [])


def test_remove_event_long_form_takes_its_table_and_its_comment_only():
    after = remove_event(COMMENTED, "/ws", "chat")
    own = (
        '# the typed chat event\n[routes."/ws".events.chat]\nhandler = "app:on_chat"\n'
        'schema  = "app:Chat"         # validated\n\n'
    )
    assert own in COMMENTED
    assert after == COMMENTED.replace(own, "")


def test_remove_route_takes_all_its_tables_and_nothing_else():
    after = remove_route(COMMENTED, "/ws")
    assert tomllib.loads(after)["routes"] == {
        "/admins": {"events": {"admin-message": "app:on_admin"}}
    }
    removed, added = changed_lines(COMMENTED, after)
    assert added == []
    assert '[routes."/ws"]' in removed and 'handler = "app:on_chat"' in removed
    for kept in (
        "# Our chat service.   (odd   spacing and comments must survive)",
        "port   =   9000        # not the default",
        "# ---- admins ----",
        'admin-message = "app:on_admin"',
    ):
        assert kept in after.splitlines()


def test_round_trip_add_then_remove_gives_the_file_back():
    after = remove_event(add_event(COMMENTED, "/ws", "extra", "app:x"), "/ws", "extra")
    assert after == COMMENTED
    after = remove_route(add_route(COMMENTED, "/tmp"), "/tmp")
    assert after == COMMENTED


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: add_route(t, "/ws"), "exists already"),
        (lambda t: add_route(t, "no-slash"), "must start with '/'"),
        (lambda t: add_event(t, "/nope", "e", "a:b"), "no route /nope"),
        (lambda t: add_event(t, "/ws", "message", "a:b"), "already has an event"),
        (lambda t: remove_event(t, "/ws", "nope"), "has no event"),
        (lambda t: remove_route(t, "/nope"), "no route /nope"),
    ],
)
def test_impossible_edits_say_why(edit, message):
    with pytest.raises(EditError, match=message):
        edit(COMMENTED)


def test_an_inline_event_is_left_for_the_user():
    text = '[routes."/ws"]\nevents = { chat = "app:on_chat" }\n'
    with pytest.raises(EditError, match="inline table"):
        remove_event(text, "/ws", "chat")

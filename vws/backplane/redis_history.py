"""Room histories on Redis: the two Lua scripts, and how their replies are read.

A room with a history has two keys, ``PREFIX:hist:PATH:ROOM:pos`` (a hash: ``o`` the offset
of its last frame, ``e`` its epoch) and ``PREFIX:hist:PATH:ROOM:frames`` (a stream of its last
frames, entry id ``OFFSET-0``, fields ``t``, Redis's time in ms when kept, and ``f``, the
positioned text). ``PATH`` and ``ROOM`` are escaped as in the room channels, so no two rooms
share a key.

Redis is the one authority for positions: :data:`PUBLISH` gives a frame the room's next offset,
keeps it and publishes it on the room's channel in one atomic step, so every subscriber hears a
room's frames in offset order, whichever node published them. The offset and the epoch live in
one hash, so they are lost together (flush, eviction, expiry) and a lost history always starts
again in a new epoch. Reading a room that has no history begins one (offset 0, a new epoch),
so a client that joined before the first frame can tell a history lost while it was away.
Times are Redis's own, so node clocks do not matter.
"""

from __future__ import annotations

import hashlib
from typing import Any

from vws.backplane.base import Position, Retention

#: KEYS: pos, frames. ARGV: the room JSON-encoded, the room channel, size, ttl in ms (0: none)
#: (the same for every frame of a room, so the caller encodes them once), then a fresh epoch
#: (used if the chain starts), the text without position, and the envelope's encoding before
#: and after its text (see :func:`vws.backplane.wire.positioned_parts`). The positioned text
#: is built as :func:`vws.backplane.base.positioned_text` builds it. The stream is trimmed
#: roughly (``~``), which is cheaper: :func:`read_reply` applies the exact size.
PUBLISH = """
local pos, frames = KEYS[1], KEYS[2]
local offset = redis.call('HINCRBY', pos, 'o', 1)
local epoch = redis.call('HGET', pos, 'e')
if not epoch then
  offset, epoch = 1, ARGV[5]
  redis.call('HSET', pos, 'o', 1, 'e', epoch)
  redis.call('DEL', frames)
end
local text = string.sub(ARGV[6], 1, -2) .. ',"room":' .. ARGV[1] .. ',"offset":' ..
  string.format('%d', offset) .. ',"epoch":"' .. epoch .. '"}'
local now = redis.call('TIME')
local ms = string.format('%d', now[1] * 1000 + math.floor(now[2] / 1000))
redis.call('XADD', frames, 'MAXLEN', '~', ARGV[3], string.format('%d', offset) .. '-0', 't', ms,
  'f', text)
if ARGV[4] ~= '0' then
  redis.call('PEXPIRE', pos, ARGV[4])
  redis.call('PEXPIRE', frames, ARGV[4])
else
  redis.call('PERSIST', pos)
  redis.call('PERSIST', frames)
end
redis.call('PUBLISH', ARGV[2], ARGV[7] .. cmsgpack.pack(text) .. ARGV[8])
return offset
"""

#: KEYS: pos, frames. ARGV: the offset after which frames are wanted ('' for none), a fresh
#: epoch and the room's ttl in ms (0: none). A room with no history is begun at offset 0 in
#: that epoch, so a client joining it before its first frame stands at a named position.
#: Reply: {offset, epoch, Redis's time in ms, entries after that offset (XRANGE's reply)}.
READ = """
local found = redis.call('HMGET', KEYS[1], 'o', 'e')
if not found[1] or not found[2] then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'o', 0, 'e', ARGV[2])
  if ARGV[3] ~= '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  end
  found = {0, ARGV[2]}
end
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local entries = {}
if ARGV[1] ~= '' then
  entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1] .. '-0', '+')
end
return {tonumber(found[1]), found[2], ms, entries}
"""

PUBLISH_SHA = hashlib.sha1(PUBLISH.encode()).hexdigest()


def read_reply(reply: Any, retention: Retention) -> tuple[Position, list[tuple[int, str]]]:
    """The room's position and its kept frames after the asked offset, oldest first, from
    :data:`READ`'s reply: frames older than ``retention.ttl``, or beyond its last
    ``retention.size`` (a size lowered by a reload trims the stream only at its next frame),
    are left out."""
    offset, epoch, now, entries = reply
    position = Position(int(offset), epoch)
    oldest = int(now) - retention.ttl * 1000 if retention.ttl else float("-inf")
    first = position.offset - retention.size
    frames = []
    for entry_id, fields in entries:
        entry_offset = int(entry_id.partition("-")[0])
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        if entry_offset > first and int(values["t"]) >= oldest:
            frames.append((entry_offset, values["f"]))
    return position, frames

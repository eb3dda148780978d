"""The two wire protocols the observers speak: the notifier's (schemas/protocol.py) and, for the
`--compare` baseline, Socket.IO v5 over Engine.IO v4 on a raw WebSocket.

Each protocol reads a message two ways: `change()`, a fast path for the frame that comes by the
thousand (a change naming one event: one regex match on the bytes, no JSON parse, no `Frame`),
which declines whatever it does not recognise exactly; and `parse()`, the full JSON parse, for
everything else. The two agree on every frame the fast path takes (tests/loadtest/test_wire.py).
The fast path reads the frame's head only: it trusts the server to send well-formed JSON without
repeated keys (as the servers' builders do) and does not check the syntax of the rest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, TypeAlias

import msgspec
import orjson

from schemas import layouts, protocol


@dataclass(frozen=True, slots=True)
class Frame:
    ready: bool = False  # the session is live (after auth / namespace connect)
    cursor: str | None = None  # resume position to send on the next connect
    event: str | None = None  # the "RUN.SEQ" id of the event a change frame is about
    reply: str | None = None  # to send back at once
    note: str | None = None  # something to count: refetch, close reasons, other ops
    folded: int = 0  # the changes a change frame stands for besides its own: its `dropped` groups


NOTHING: Final = Frame()

Change: TypeAlias = tuple[str | None, str | None]
"""What a plain change frame says: (cursor, event), as its `Frame` would (either may be None)."""

# The fast paths match an exact subset of JSON: strings without escapes, arrays of such strings,
# integers, booleans, null; anything outside it (an escaped quote, a float, a nested object, a
# key order the servers' builders do not produce) fails the match and goes to the full parse.
_STRING: Final = rb'"[^"\\]*"'
_VALUE: Final = rb"(?:%s|\[(?:%s(?:,%s)*)?\]|-?[0-9]+|true|false|null)" % ((_STRING,) * 3)
_NOTIFIER_CHANGE: Final = re.compile(
    # schemas/protocol.py `change()`, around the payload of feeds/lua/common.lua `emit()` (op,
    # unread, group) or of loadtest/publisher.py `change_of()` (op, group, unread); in the group
    # (`view()`), the id first, then any keys up to the count, which must be 1
    rb'\{"type":"change","cursor":"([^"\\]*)","change":\{"op":"upsert",(?:"unread":[0-9]+,)?'
    rb'"group":\{"id":"([^"\\]*)"(?:,"[a-z_]+":%s)*?,"count":1[,}]' % _VALUE
)
# Engine.IO message (4) of a Socket.IO event (2): python-socketio's encoding of an emit of
# ("change", {"event": ID, ...}); Node's socket.io encodes it the same way
_SOCKETIO_CHANGE: Final = re.compile(rb'42\["change",\{"event":"([^"\\]*)"')


def event_of_group(group_id: str) -> str | None:
    """`comment:RUN.SEQ` or `mention:RUN.SEQ~ACTOR` → `RUN.SEQ` (the ids the producer chose)."""
    kind, _, rest = group_id.partition(":")
    if kind == "comment":
        return rest
    if kind == "mention":
        return rest.partition(layouts.MENTION_IN_POST)[0]
    return None


class Protocol:
    def url(self, base: str) -> str:
        raise NotImplementedError

    def hello(self, token: str, cursor: str | None) -> str | None:
        raise NotImplementedError

    def change(self, data: bytes) -> Change | None:
        """The fast path: what a plain change frame says, or None (then `parse` the frame).
        Where it answers, `parse` would give a `Frame` with only that cursor and event."""
        raise NotImplementedError

    def parse(self, text: str | bytes) -> Frame:
        raise NotImplementedError


class NotifierProtocol(Protocol):
    """auth → ready → change… ; an upsert carries the group, whose id names the event."""

    def url(self, base: str) -> str:
        return base.rstrip("/") + "/v1/ws"

    def hello(self, token: str, cursor: str | None) -> str:
        return msgspec.json.encode(protocol.Auth(token=token, cursor=cursor)).decode()

    def change(self, data: bytes) -> Change | None:
        """An upsert of a group whose count is 1 (each of our events is a group of its own)."""
        match = _NOTIFIER_CHANGE.match(data)
        if match is None or b'"dropped":[' in data:  # removes folded in: `parse` counts them
            return None
        cursor, group_id = match.groups()
        return cursor.decode(), event_of_group(group_id.decode())

    def parse(self, text: str | bytes) -> Frame:
        frame = orjson.loads(text)
        kind = frame.get("type")
        if kind == "change":
            change = frame["change"]
            group = change.get("group") if change.get("op") == "upsert" else None
            if group is None:
                return Frame(cursor=frame["cursor"], note=f"op:{change.get('op')}")
            event = event_of_group(str(group.get("id", "")))
            # each of our events is a group of its own: a count above 1 means aggregation merged two
            note = None if group.get("count", 1) == 1 else "group_count_above_1"
            return Frame(
                cursor=frame["cursor"], event=event, note=note, folded=len(change.get("dropped", ()))
            )
        if kind == "ready":
            return Frame(ready=True, cursor=frame["cursor"])
        if kind == "refetch":
            return Frame(cursor=frame["cursor"], note="refetch")
        if kind == "error":
            return Frame(note=f"close:{frame.get('error')}")
        return NOTHING


class SocketIOProtocol(Protocol):
    """Engine.IO v4 packets: 0 open, 2 ping / 3 pong, 4 message; Socket.IO inside 4: 0 connect,
    1 disconnect, 2 event, 4 connect error. No resume: Socket.IO's delivery is best effort.
    One instance per session: it keeps the token until the server's open packet asks for it."""

    def __init__(self) -> None:
        self._token = ""

    def url(self, base: str) -> str:
        return base.rstrip("/") + "/socket.io/?EIO=4&transport=websocket"

    def hello(self, token: str, cursor: str | None) -> None:
        self._token = token  # sent once the server's open packet arrives
        return None

    def change(self, data: bytes) -> Change | None:
        match = _SOCKETIO_CHANGE.match(data)
        if match is None:
            return None
        return None, match[1].decode()

    def parse(self, text: str | bytes) -> Frame:
        if isinstance(text, bytes):
            text = text.decode()
        if text == "2":
            return Frame(reply="3")
        if text.startswith("42"):
            name, body = orjson.loads(text[2:])
            if name != "change":
                return NOTHING
            return Frame(event=body.get("event"))
        if text.startswith("0"):
            return Frame(reply="40" + orjson.dumps({"token": self._token}).decode())
        if text.startswith("40"):
            return Frame(ready=True)
        if text.startswith("44"):
            return Frame(note="close:connect_error")
        if text.startswith("41"):
            return Frame(note="close:disconnect")
        return NOTHING


def protocol_for(name: str) -> Protocol:
    if name == "notifier":
        return NotifierProtocol()
    if name in {"socketio", "socketio-node"}:  # python-socketio and Node's socket.io speak the same
        return SocketIOProtocol()
    raise ValueError(f"unknown protocol {name!r}")

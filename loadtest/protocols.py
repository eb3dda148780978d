"""The two wire protocols the observers speak: the notifier's (schemas/protocol.py) and, for the
`--compare` baseline, Socket.IO v5 over Engine.IO v4 on a raw WebSocket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec
import orjson

from schemas import protocol


@dataclass(frozen=True, slots=True)
class Frame:
    ready: bool = False  # the session is live (after auth / namespace connect)
    cursor: str | None = None  # resume position to send on the next connect
    event: str | None = None  # the "RUN.SEQ" id of the event a change frame is about
    reply: str | None = None  # to send back at once
    note: str | None = None  # something to count: refetch, close reasons, other ops


NOTHING: Final = Frame()


def event_of_group(group_id: str) -> str | None:
    """`comment:RUN.SEQ` or `mention:RUN.SEQ:ACTOR` → `RUN.SEQ` (the ids the producer chose)."""
    kind, _, rest = group_id.partition(":")
    if kind == "comment":
        return rest
    if kind == "mention":
        return rest.partition(":")[0]
    return None


class Protocol:
    def url(self, base: str) -> str:
        raise NotImplementedError

    def hello(self, token: str, cursor: str | None) -> str | None:
        raise NotImplementedError

    def parse(self, text: str) -> Frame:
        raise NotImplementedError


class NotifierProtocol(Protocol):
    """auth → ready → change… ; an upsert carries the group, whose id names the event."""

    def url(self, base: str) -> str:
        return base.rstrip("/") + "/v1/ws"

    def hello(self, token: str, cursor: str | None) -> str:
        return msgspec.json.encode(protocol.Auth(token=token, cursor=cursor)).decode()

    def parse(self, text: str) -> Frame:
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
            return Frame(cursor=frame["cursor"], event=event, note=note)
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

    def parse(self, text: str) -> Frame:
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
    if name == "socketio":
        return SocketIOProtocol()
    raise ValueError(f"unknown protocol {name!r}")

"""The AsyncAPI 3.0 document of the WebSocket protocol, built from schemas/protocol.py (the client
frames the gateway decodes, the server frames it sends) and the close codes of schemas/errors.py;
committed as schemas/asyncapi.json: `python -m schemas.asyncapi` rewrites it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import msgspec

from . import protocol
from .errors import CODES

DOCUMENT_FILE: Final = Path(__file__).with_name("asyncapi.json")
_REF: Final = "#/components/schemas/{name}"
# standard close codes the gateway also uses, beside the application ones from CODES
STANDARD_CLOSES: Final = {
    1000: "normal closure",
    1001: "the server is going away",
    1007: "a text frame that is not UTF-8",
    1008: "too many frames (pings, fragments); a refused Origin gets an HTTP 403 problem instead",
    1009: "a frame larger than the gateway's limit, or a message in too many fragments",
    1011: "the client stopped answering pings",
    1012: "the server restarts: reconnect with your cursor",
}
RESUME_FLOW: Final = """\
Connect to /v1/ws and send `auth` (with the last `cursor` you saw, if any) within the deadline.
The gateway replays every change after the cursor as `change` (inbox) and `feed` (home feed)
frames, then sends `ready`, then relays live changes; remember each frame's `cursor` (both kinds
share one numbered log). If the cursor cannot be resumed (trimmed, or from another epoch) it sends
`refetch` instead: reload the inbox, then the home feed, over REST, then continue from the
refetch's `cursor`. Cursors are opaque strings. Before the token's `exp`, send `auth` again with a
fresh token of the same user. Close codes: reconnect with backoff (keeping the cursor) after 1001,
1006, 1011, 1012, 4429, 4503, 4504, 4505; never after 4400, 4401, 4403 (fix the request or sign in
again); after 4419 mint a new token first."""


def _discriminators_named(schema: Any) -> Any:
    """msgspec writes a tagged union's discriminator as OpenAPI does (`{"propertyName": ...,
    "mapping": ...}`); an AsyncAPI Schema Object names the property alone."""
    if isinstance(schema, list):
        return [_discriminators_named(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _discriminators_named(v) for k, v in schema.items()}
    found = out.get("discriminator")
    if isinstance(found, dict) and "propertyName" in found:
        out["discriminator"] = found["propertyName"]
    return out


def document(version: str) -> dict[str, Any]:
    client = {"auth": protocol.Auth, "ping": protocol.Ping}
    server = {
        "ready": protocol.ReadyFrame,
        "change": protocol.ChangeFrame,
        "feed": protocol.FeedFrame,
        "refetch": protocol.RefetchFrame,
        "pong": protocol.PongFrame,
        "error": protocol.ErrorFrame,
    }
    kinds = {**client, **server}
    refs, schemas = msgspec.json.schema_components(list(kinds.values()), ref_template=_REF)
    schemas = _discriminators_named(schemas)
    messages = {
        name: {
            "name": name,
            "title": f"{name} frame",
            "summary": (kind.__doc__ or name).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": ref,
        }
        for (name, kind), ref in zip(kinds.items(), refs, strict=True)
    }
    closes = {str(code): words for code, words in STANDARD_CLOSES.items()}
    for reason, codes in CODES.items():  # several reasons share a code: every one is named
        code = str(codes.ws_close)
        closes[code] = f"{closes[code]}, {reason.value}" if code in closes else reason.value
    channel_ref = {"$ref": "#/channels/inbox"}

    def operation(action: str, names: Iterable[str], summary: str) -> dict[str, Any]:
        return {
            "action": action,
            "channel": channel_ref,
            "summary": summary,
            "messages": [{"$ref": f"#/channels/inbox/messages/{n}"} for n in names],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {"title": "notifier WebSocket protocol", "version": version, "description": RESUME_FLOW},
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:8000", "protocol": "ws", "description": "`notifier up`"}},
        "channels": {
            "inbox": {
                "address": "/v1/ws",
                "title": "The user's live inbox",
                "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in messages},
                "x-close-codes": dict(sorted(closes.items())),
            }
        },
        "operations": {
            "clientFrames": operation("receive", client, "What the gateway takes from a client"),
            "serverFrames": operation("send", server, "What the gateway sends a client"),
        },
        "components": {"schemas": schemas, "messages": messages},
    }


def render(version: str) -> str:
    return json.dumps(document(version), indent=2, sort_keys=True) + "\n"


def main() -> None:
    from importlib.metadata import version

    DOCUMENT_FILE.write_text(render(version("notifier")), encoding="utf-8")
    print(f"wrote {DOCUMENT_FILE}")


if __name__ == "__main__":
    main()

"""The committed JSON Schema (schemas/events.v1.json) is the one the event contracts produce."""

from __future__ import annotations

import json

from schemas.events import json_schema
from schemas.export import SCHEMA_FILE, render


def test_committed_schema_matches_the_contracts() -> None:
    assert SCHEMA_FILE.exists(), "schemas/events.v1.json is missing: run `python -m schemas.export`"
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == render(), "schemas/events.v1.json is stale: run `python -m schemas.export`"


def test_schema_file_is_valid_json_naming_every_event_type() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema == json_schema()
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == {
        "like",
        "unlike",
        "follow",
        "unfollow",
        "comment",
        "comment_deleted",
        "mention",
        "post_created",
        "post_deleted",
    }

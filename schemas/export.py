"""Writes the events' JSON Schema to schemas/events.v1.json: `python -m schemas.export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from .events import json_schema

SCHEMA_FILE: Final = Path(__file__).with_name("events.v1.json")


def render() -> str:
    """The file's exact text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    main()

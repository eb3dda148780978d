"""The JS client's TypeScript declarations spell the REST shapes it loads and the changes it
applies (clients/js/notifier-client.d.ts): each interface has the fields of its struct in
schemas/http.py or schemas/protocol.py, optional where the struct's field may be absent, and a
change's `op` its tag, so a change of the contract cannot leave them behind."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from schemas import http, protocol

DECLARATIONS = Path(__file__).parents[3] / "clients" / "js" / "notifier-client.d.ts"
_FIELD = re.compile(r"^\s+([a-z_]+)(\??):", re.MULTILINE)
_TAG = re.compile(r'^\s+op: "([a-z]+)";', re.MULTILINE)


def body_of(interface: str) -> str:
    found = re.search(rf"export interface {interface} \{{(.*?)\n\}}", DECLARATIONS.read_text(), re.DOTALL)
    assert found, f"no interface {interface} in {DECLARATIONS.name}"
    return re.sub(r"/\*\*.*?\*/", "", found.group(1), flags=re.DOTALL)


def declared(interface: str) -> dict[str, bool]:
    """The fields of `export interface NAME { ... }`: name -> optional (its `op` left out)."""
    return {name: optional == "?" for name, optional in _FIELD.findall(body_of(interface)) if name != "op"}


@pytest.mark.parametrize(
    "kind",
    [
        http.Group,
        http.InboxPage,
        http.Post,
        protocol.Upsert,
        protocol.Remove,
        protocol.Read,
        protocol.Seen,
        protocol.FeedAdd,
        protocol.FeedRemove,
    ],
)
def test_an_interface_has_its_structs_fields(kind: type[msgspec.Struct]) -> None:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.encode_name: not f.required for f in info.fields}
    name = kind.__name__
    assert declared(name) == fields
    assert _TAG.findall(body_of(name)) == ([info.tag] if info.tag is not None else [])

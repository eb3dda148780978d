"""The JS client's TypeScript declarations spell the REST shapes it loads (clients/js/
notifier-client.d.ts): each interface has the fields of its struct in schemas/http.py, optional
where the struct's field may be absent, so a change of the contract cannot leave them behind."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from schemas import http

DECLARATIONS = Path(__file__).parents[3] / "clients" / "js" / "notifier-client.d.ts"
_FIELD = re.compile(r"^\s+([a-z_]+)(\??):", re.MULTILINE)


def declared(interface: str) -> dict[str, bool]:
    """The fields of `export interface NAME { ... }`: name -> optional."""
    found = re.search(rf"export interface {interface} \{{(.*?)\n\}}", DECLARATIONS.read_text(), re.DOTALL)
    assert found, f"no interface {interface} in {DECLARATIONS.name}"
    body = re.sub(r"/\*\*.*?\*/", "", found.group(1), flags=re.DOTALL)
    return {name: optional == "?" for name, optional in _FIELD.findall(body)}


@pytest.mark.parametrize("kind", [http.Group, http.InboxPage])
def test_an_interface_has_its_structs_fields(kind: type[msgspec.Struct]) -> None:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.encode_name: not f.required for f in info.fields}
    assert declared(kind.__name__) == fields

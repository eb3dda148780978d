"""STYLE rule 3: only schemas/keys.py formats a Redis key or channel name; everything else calls it.

Every string literal in the product (and in the tests) is checked against the key families that
schemas/keys.py itself produces, so a new family is covered the day it is added. Lua scripts get
their keys and prefixes through KEYS/ARGV and must not spell one either.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from schemas import keys

ROOT: Final = Path(__file__).resolve().parents[2]
SCANNED: Final = ("feeds", "notifier", "gateway", "loadtest", "tests")
# the keys module's own test pins the exact formats on purpose; this file names the families
EXEMPT: Final = frozenset({ROOT / "tests" / "unit" / "schemas" / "test_keys.py", Path(__file__).resolve()})
HOLE: Final = "\x00"  # stands for an f-string's replacement field


def key_families() -> tuple[set[str], set[str]]:
    """(prefixes such as `nf:` that precede a hash tag, names without one such as `gateway:control`)."""
    prefixes: set[str] = set()
    names: set[str] = set()
    for name, function in inspect.getmembers(keys, inspect.isfunction):
        if name.startswith("_") or function.__module__ != keys.__name__:
            continue
        if name.startswith("user_of_"):  # parses a channel or key name, makes none
            continue
        parameters = inspect.signature(function).parameters.values()
        if any(p.annotation not in (int, str, "int", "str") for p in parameters):
            continue  # takes something other than ids (around_user: a name function), makes none
        made = function(*[7 if p.annotation in (int, "int") else "sample" for p in parameters])
        if "{" in made:
            prefixes.add(made[: made.index("{")])
        else:
            names.add(made)
    return prefixes, names


PREFIXES, NAMES = key_families()


def offending(text: str) -> str | None:
    if "{u:" in text:
        return "the user hash tag {u:"
    for prefix in PREFIXES:
        if text.startswith(prefix) or f"{prefix}{{" in text:
            return f"the key prefix {prefix!r}"
    for name in NAMES:
        if name in text:
            return f"the name {name!r}"
    return None


def python_literals(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    parts_of_fstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = ""
            for part in node.values:
                parts_of_fstrings.add(id(part))
                literal = part.value if isinstance(part, ast.Constant) else None
                text += literal if isinstance(literal, str) else HOLE
            yield node.lineno, text
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in parts_of_fstrings
        ):
            yield node.lineno, node.value


LUA_STRING: Final = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


def lua_literals(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        code = re.sub(r"--.*$", "", line)  # no script here puts `--` inside a string
        for single, double in LUA_STRING.findall(code):
            yield number, single or double


def scanned_files() -> Iterator[Path]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in {".py", ".lua"} and path not in EXEMPT and ".venv" not in path.parts:
                yield path


def test_the_families_are_found() -> None:
    assert {
        "events:",
        "dedupe:",
        "idem:",
        "nb:",
        "na:",
        "nc:",
        "fo:",
        "fg:",
        "fr:",
        "tp:",
        "tl:",
        "hf:",
        "pref:",
        "mute:",
        "block:",
        "push:",
    } <= PREFIXES
    assert "gateway:control" in NAMES
    assert offending("nb:{u:" + HOLE + "}") and offending("nc:") and offending("x {u:y}")
    assert offending(f"events:{{{HOLE}}}") and offending("gateway:control")
    assert not offending("events accepted") and not offending("notification")


def test_no_other_file_formats_a_key() -> None:
    scanned = list(scanned_files())
    assert any(p.suffix == ".lua" for p in scanned) and len(scanned) > 20
    found = []
    for path in scanned:
        literals = lua_literals(path) if path.suffix == ".lua" else python_literals(path)
        for line, text in literals:
            reason = offending(text)
            if reason:
                found.append(f"{path.relative_to(ROOT)}:{line}: {reason} in {text!r}")
    assert not found, "use schemas.keys instead (STYLE rule 3):\n" + "\n".join(found)

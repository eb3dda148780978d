"""STYLE rule 1: packages are layers and imports point one way, checked over every module's imports.

schemas <- feeds <- notifier.runtime <- {notifier.api, notifier.fanout, ..., gateway} <- notifier.cli
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGES: Final = ("schemas", "feeds", "notifier", "gateway", "loadtest")
BASE: Final = frozenset({"schemas", "feeds", "notifier.runtime"})
ANYTHING: Final = frozenset({"*"})


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    return {module_of(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def layer(module: str) -> str:
    """The unit the rules speak of: a top-level package, or a `notifier` subpackage."""
    parts = module.split(".")
    if parts[0] != "notifier":
        return parts[0]
    if len(parts) > 1 and (ROOT / "notifier" / parts[1]).is_dir():
        return f"notifier.{parts[1]}"
    return "notifier.cli"  # notifier/*.py: the composition root (cli, __main__, admin)


def allowed(source: str) -> frozenset[str]:
    match source:
        case "schemas":
            return frozenset({"schemas"})
        case "feeds":
            return frozenset({"feeds", "schemas"})
        case "notifier.runtime":
            return BASE
        case "notifier.cli" | "loadtest":
            return ANYTHING
        case _:  # gateway and every notifier role package: the base layers plus itself
            return BASE | {source}


def imported(path: Path, module: str, known: set[str]) -> set[str]:
    """Absolute names of the project modules `path` imports, wherever the import statement sits."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                base = here[: len(here) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                out.add(submodule if submodule in known else target)
    return {name for name in out if name.split(".")[0] in (*PACKAGES, "tests")}


def test_imports_point_down_the_layers() -> None:
    modules = product_modules()
    assert {"schemas.events", "feeds.inbox", "notifier.runtime.settings", "gateway.session"} <= set(modules)
    known = set(modules)
    violations = []
    for module, path in modules.items():
        source = layer(module)
        rules = allowed(source)
        for target in sorted(imported(path, module, known)):
            if target.split(".")[0] == "tests":
                violations.append(f"{module} imports {target}: product code never imports tests")
            elif rules is not ANYTHING and layer(target) not in rules:
                violations.append(f"{module} ({source}) imports {target} ({layer(target)})")
    assert not violations, "layering broken (STYLE rule 1):\n" + "\n".join(violations)


def test_the_import_walker_resolves_relative_imports() -> None:
    # the layering test is only as good as this: `from .x import y`, `from . import x`, `from .. import z`
    known = set(product_modules())
    app = ROOT / "notifier" / "api" / "app.py"
    found = imported(app, "notifier.api.app", known)
    assert {"notifier.api.me", "notifier.api.append", "feeds.inbox"} <= found
    assert layer("notifier.api.me") == "notifier.api"
    assert layer("notifier.cli") == layer("notifier.admin") == "notifier.cli"
    assert layer("notifier") == "notifier.cli"
    assert layer("notifier.api.app") not in allowed("gateway")
    assert layer("notifier.runtime.settings") not in allowed("feeds")
    assert layer("feeds.inbox") not in allowed("schemas")

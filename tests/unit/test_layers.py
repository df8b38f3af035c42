"""The arrows between the packages point down (docs: DESIGN.md, "The house"): infrastructure knows
no domain; branches and accounts know none of the domains above them; the catalogue knows
neither circulation nor what is built on it; circulation does not know activities, sync or
self-service. Imports inside functions count too: they are no way around a cycle.

An arrow still pointing the wrong way would be listed by name in KNOWN, to be mended where its
issue says (the permission checks of `branches` were, until issue 22 moved them to the controller
and `library.accounts.permissions`). A new wrong arrow fails this test; a mended one must leave the list."""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "library"
INFRASTRUCTURE = {"db", "settings", "errors", "i18n", "clock", "spreadsheet", "migration_support", "config_cache"}
DOMAINS_ABOVE_CATALOGUE = {"loans", "activities", "sync", "privacy", "selfcheck", "volunteers", "reports", "notices"}
ENTRY_POINTS = {"app", "asgi", "cli", "demo"}
FORBIDDEN = {
    "catalog": DOMAINS_ABOVE_CATALOGUE | ENTRY_POINTS,
    "loans": DOMAINS_ABOVE_CATALOGUE - {"loans", "notices"} | ENTRY_POINTS,
    "branches": {"accounts", "catalog"} | DOMAINS_ABOVE_CATALOGUE | ENTRY_POINTS,
    "accounts": {"catalog"} | DOMAINS_ABOVE_CATALOGUE | ENTRY_POINTS,
    **{name: {"accounts", "branches", "catalog", "web"} | DOMAINS_ABOVE_CATALOGUE | ENTRY_POINTS
       for name in INFRASTRUCTURE},
}
KNOWN: set[tuple[str, str]] = set()


def _module(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("library"):
            # `from library.loans import service` names the module library.loans.service
            found.update(f"{node.module}.{alias.name}" if node.module.count(".") == 1 else node.module
                         for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("library"))
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_arrows_point_down():
    wrong, seen = [], set()
    for path in sorted(LIBRARY.rglob("*.py")):
        if "piccolo_migrations" in path.parts:
            continue
        source = _module(path)
        for target in sorted(_imports(path)):
            if _package(target) in FORBIDDEN.get(_package(source), ()):
                if (source, target) in KNOWN:
                    seen.add((source, target))
                else:
                    wrong.append(f"{source} imports {target}")
    assert not wrong, "arrows pointing up:\n" + "\n".join(wrong)
    assert seen == KNOWN, f"mended, take them off KNOWN: {sorted(KNOWN - seen)}"


def test_the_check_sees_a_wrong_arrow(tmp_path):
    """The check itself: an import inside a function is found like any other."""
    sample = tmp_path / "sample.py"
    sample.write_text("def later():\n    from library.loans.tables import Hold\n    return Hold\n", encoding="utf-8")
    assert "library.loans.tables" in _imports(sample)
    sample.write_text("from library.loans import service, rules\n", encoding="utf-8")
    assert _imports(sample) == {"library.loans.service", "library.loans.rules"}

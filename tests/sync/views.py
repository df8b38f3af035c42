"""The same facts read from either node, for comparing them."""

from __future__ import annotations

from typing import Any

from tests.sync.nodes import Node

RELEVANT_TO_ZX = ("(i.home_branch = (SELECT id FROM branch WHERE code = 'ZX') "
                  "OR i.current_branch = (SELECT id FROM branch WHERE code = 'ZX'))")


def uuids(node: Node, table: str, where: str = "1 = 1") -> set[str]:
    return {str(row["uuid"]) for row in node.rows(f"SELECT uuid FROM {table} WHERE {where}")}


def _copies(node: Node, where: str) -> dict[str, dict[str, Any]]:
    rows = node.rows(
        "SELECT i.uuid, i.barcode, i.status, i.shelf_location, r.uuid AS record, r.title, hb.code AS home, "
        "cb.code AS here FROM item i JOIN record r ON r.id = i.record JOIN branch hb ON hb.id = i.home_branch "
        f"JOIN branch cb ON cb.id = i.current_branch WHERE {where}")
    return {str(row["uuid"]): {**row, "uuid": str(row["uuid"]), "record": str(row["record"])} for row in rows}


def central_zx_copies(central: Node) -> dict[str, dict[str, Any]]:
    """The copies the central node holds that ZX owns or has on its shelf."""
    return _copies(central, RELEVANT_TO_ZX)


def branch_copies(branch: Node) -> dict[str, dict[str, Any]]:
    return _copies(branch, "1 = 1")


def loans_of(node: Node, where: str = "l.returned_at IS NULL") -> dict[str, dict[str, Any]]:
    rows = node.rows("SELECT l.uuid, i.barcode, p.card_number, l.due_on, l.returned_at FROM loan l "
                     f"JOIN item i ON i.id = l.item JOIN patron p ON p.id = l.patron WHERE {where}")
    return {str(row["uuid"]): {**row, "uuid": str(row["uuid"])} for row in rows}

"""Where a record's copies are: branches by id and code, and the per-branch summary that the
record page, search hits and the intake page show."""

from __future__ import annotations

from typing import Any

from library.branches.tables import Branch
from library.errors import NotFound


async def branches_by_id() -> dict[int, dict[str, Any]]:
    rows = await Branch.select(Branch.id, Branch.code, Branch.name_zh, Branch.name_en)
    return {row["id"]: row for row in rows}



async def branch_by_code(code: str) -> dict[str, Any]:
    row = await Branch.select(Branch.id, Branch.code).where(Branch.code == code).first()
    if row is None:
        raise NotFound("branch_not_found", field="branch", code=code)
    return row



def summary(items: list[dict[str, Any]], branches: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per branch: copies there, on the shelf, and the soonest due date of those out."""
    summary: dict[int, dict[str, Any]] = {}
    for item in items:
        if item["status"] == "withdrawn":
            continue
        branch = branches[item["current_branch"]]
        entry = summary.setdefault(item["current_branch"], {
            "branch": branch["code"], "name_zh": branch["name_zh"], "name_en": branch["name_en"],
            "copies": 0, "available": 0, "next_due": None})
        entry["copies"] += 1
        if item["status"] == "available":
            entry["available"] += 1
        if item["due_back"] and (entry["next_due"] is None or item["due_back"] < entry["next_due"]):
            entry["next_due"] = item["due_back"]
    return sorted(summary.values(), key=lambda entry: entry["branch"])

"""The summer reading challenge: children log what they read, earn badges, finish; the branch sees who.

Books borrowed during the programme count too when the guardian opts in: they are logged
from the child's loans when the progress is looked at (idempotent on the loan), so the
checkout desk does no extra work. The leaderboard shows no full names: a family name and
a star for each other character, with the card's last two digits to tell twins apart.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from dataclasses import dataclass, field
from typing import Any

from library import spreadsheet
from library.accounts.principal import Principal
from library.accounts.rules import age_on
from library.accounts.service import normalise_card_number
from library.activities.tables import Programme, ReadingLog
from library.db import is_unique_violation, json_list, read_transaction, run_in_write_transaction, write_transaction
from library.errors import InvalidInput, NotFound, NotPermitted

TITLE_LIMIT = 300


@dataclass
class ProgrammeInput:
    title_zh: str
    starts_on: dt.date
    ends_on: dt.date
    title_en: str = ""
    branch_code: str | None = None
    goal_kind: str = "books"
    goals: list[dict[str, int]] = field(default_factory=lambda: [{"min": 0, "max": 18, "goal": 10}])
    badges: list[int] = field(default_factory=lambda: [3, 5, 10])
    per_child_session_limit: int | None = None


async def create_programme(principal: Principal, data: ProgrammeInput) -> str:
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    if not data.title_zh.strip() and not data.title_en.strip():
        raise InvalidInput("required", field="title_zh")
    if data.ends_on < data.starts_on:
        raise InvalidInput("ends_before_start", field="ends_on")
    if data.goal_kind not in ("books", "minutes"):
        raise InvalidInput("invalid_choice", field="goal_kind")
    for goal in data.goals:
        if not (0 <= goal.get("min", -1) <= goal.get("max", -1) <= 120 and 1 <= goal.get("goal", 0) <= 100000):
            raise InvalidInput("invalid_input", field="goals")

    async def work() -> str:
        branch_id = None
        if data.branch_code:
            branch = await Programme.raw("SELECT id FROM branch WHERE code = {}", data.branch_code.upper())
            if not branch:
                raise NotFound("branch_not_found", code=data.branch_code)
            branch_id = branch[0]["id"]
            if not principal.works_for(branch_id):
                raise NotPermitted("not_your_branch", code=data.branch_code)
        programme_uuid = str(uuid_module.uuid4())
        await Programme.insert(Programme(
            uuid=programme_uuid, branch=branch_id, title_zh=data.title_zh.strip(), title_en=data.title_en.strip(),
            starts_on=data.starts_on, ends_on=data.ends_on, goal_kind=data.goal_kind, goals=data.goals,
            badges=sorted(set(data.badges)), per_child_session_limit=data.per_child_session_limit))
        return programme_uuid

    return await run_in_write_transaction(work)


async def _programme(programme_uuid: str) -> dict[str, Any]:
    try:
        programme_uuid = str(uuid_module.UUID(str(programme_uuid)))
    except ValueError:
        raise NotFound("programme_not_found") from None
    rows = await Programme.raw("SELECT * FROM programme WHERE uuid = {}", programme_uuid)
    if not rows:
        raise NotFound("programme_not_found")
    row = dict(rows[0])
    row["goals"], row["badges"] = json_list(row["goals"]), json_list(row["badges"])
    return row


async def _child(principal: Principal, card_number: str) -> dict[str, Any]:
    card = normalise_card_number(card_number)
    rows = await Programme.raw("SELECT id, uuid, name, card_number, birth_date FROM patron WHERE card_number = {}", card)
    if not rows or not (principal.is_staff or rows[0]["id"] == principal.id or rows[0]["id"] in principal.children_ids):
        raise NotPermitted("not_guardian")
    return rows[0]


def goal_for(programme: dict[str, Any], age: int | None) -> int:
    for goal in programme["goals"]:
        if age is not None and goal["min"] <= age <= goal["max"]:
            return goal["goal"]
    return max((goal["goal"] for goal in programme["goals"]), default=10)


def age_group(programme: dict[str, Any], age: int | None) -> str:
    for goal in programme["goals"]:
        if age is not None and goal["min"] <= age <= goal["max"]:
            return f"{goal['min']}-{goal['max']}"
    return "?"


def masked(name: str, card_number: str) -> str:
    """李小米 → 李** (…02): enough for a child to find themself, not enough to identify them."""
    name = (name or "").strip()
    return f"{name[:1]}{'*' * max(1, len(name) - 1)} (…{card_number[-2:]})"


async def log_reading(principal: Principal, programme_uuid: str, card_number: str, title: str,
                      read_on: dt.date, minutes: int | None = None, record_uuid: str | None = None) -> None:
    title = (title or "").strip()
    programme = await _programme(programme_uuid)
    if not programme["starts_on"] <= read_on <= programme["ends_on"]:
        raise InvalidInput("outside_programme", field="read_on", starts=programme["starts_on"].isoformat(),
                           ends=programme["ends_on"].isoformat())
    if minutes is not None and not 1 <= minutes <= 24 * 60:
        raise InvalidInput("number_out_of_range", field="minutes", low=1, high=24 * 60)
    if programme["goal_kind"] == "minutes" and minutes is None:
        raise InvalidInput("required", field="minutes")

    async def work() -> None:
        child = await _child(principal, card_number)
        record_id = None
        nonlocal title
        if record_uuid:
            rows = await Programme.raw("SELECT id, title FROM record WHERE uuid = {}", record_uuid)
            if rows:
                record_id, title = rows[0]["id"], title or rows[0]["title"]
        if not title:
            raise InvalidInput("required", field="title")
        await ReadingLog.insert(ReadingLog(
            uuid=str(uuid_module.uuid4()), programme=programme["id"], patron=child["id"], record=record_id,
            title=title[:TITLE_LIMIT], minutes=minutes, read_on=read_on))
        await _join(programme["id"], child["id"])

    await run_in_write_transaction(work)


async def _join(programme_id: int, patron_id: int, log_loans: bool | None = None) -> None:
    rows = await Programme.raw("SELECT id FROM programme_participant WHERE programme = {} AND patron = {}",
                               programme_id, patron_id)
    if not rows:
        await Programme.raw("INSERT INTO programme_participant (programme, patron, log_loans, joined_at) "
                            "VALUES ({}, {}, {}, {})", programme_id, patron_id, bool(log_loans),
                            dt.datetime.now(dt.timezone.utc))
    elif log_loans is not None:
        await Programme.raw("UPDATE programme_participant SET log_loans = {} WHERE id = {}", log_loans, rows[0]["id"])


async def set_log_loans(principal: Principal, programme_uuid: str, card_number: str, log_loans: bool) -> None:
    """The guardian's opt-in: books the child borrows during the programme count as read."""
    programme = await _programme(programme_uuid)

    async def work() -> None:
        child = await _child(principal, card_number)
        await _join(programme["id"], child["id"], log_loans)

    await run_in_write_transaction(work)


async def _log_loans(programme: dict[str, Any], patron_ids: list[int]) -> None:
    """Copy the loans of opted-in children within the programme into their reading log (once each)."""
    if not patron_ids:
        return
    marks = ", ".join("{}" for _ in patron_ids)
    start = dt.datetime.combine(programme["starts_on"], dt.time(), tzinfo=dt.timezone.utc) - dt.timedelta(hours=8)
    end = dt.datetime.combine(programme["ends_on"], dt.time(23, 59), tzinfo=dt.timezone.utc)
    loans = await Programme.raw(
        "SELECT l.uuid, l.patron, l.checked_out_at, r.id AS record, r.title FROM loan l JOIN item i ON i.id = l.item "
        "JOIN record r ON r.id = i.record JOIN programme_participant p ON p.patron = l.patron AND p.programme = {} "
        f"WHERE p.log_loans = {{}} AND l.patron IN ({marks}) AND l.checked_out_at >= {{}} AND l.checked_out_at <= {{}}",
        programme["id"], True, *patron_ids, start, end)
    for loan in loans:
        try:
            async with write_transaction():
                await ReadingLog.insert(ReadingLog(
                    uuid=str(uuid_module.uuid4()), programme=programme["id"], patron=loan["patron"],
                    record=loan["record"], title=loan["title"][:TITLE_LIMIT], read_on=loan["checked_out_at"].date(),
                    source="loan", source_key=f"loan:{loan['uuid']}"))
        except Exception as error:  # logged before: the unique source key says so
            if not is_unique_violation(error):
                raise


def _badges(programme: dict[str, Any], total: int) -> list[int]:
    return [badge for badge in programme["badges"] if total >= badge]


async def progress(principal: Principal, programme_uuid: str, card_number: str, today: dt.date) -> dict[str, Any]:
    programme = await _programme(programme_uuid)
    child = await _child(principal, card_number)
    await _log_loans(programme, [child["id"]])
    async with read_transaction():
        logs = await Programme.raw(
            "SELECT title, minutes, read_on, source FROM reading_log WHERE programme = {} AND patron = {} "
            "ORDER BY read_on DESC, id DESC", programme["id"], child["id"])
        joined = await Programme.raw("SELECT log_loans FROM programme_participant WHERE programme = {} AND patron = {}",
                                     programme["id"], child["id"])
    age = age_on(child["birth_date"], programme["starts_on"]) if child["birth_date"] else None
    total = sum((log["minutes"] or 0) for log in logs) if programme["goal_kind"] == "minutes" else len(logs)
    goal = goal_for(programme, age)
    return {"programme": programme, "child": child, "logs": logs, "total": total, "goal": goal,
            "finished": total >= goal, "badges": _badges(programme, total), "age_group": age_group(programme, age),
            "log_loans": bool(joined and joined[0]["log_loans"]), "today": today,
            "percent": min(100, int(100 * total / goal)) if goal else 100}


async def standings(programme_uuid: str) -> dict[str, Any]:
    """Per age group, everyone taking part, best first, names masked; and the raw rows for staff."""
    programme = await _programme(programme_uuid)
    participants = await Programme.raw("SELECT patron FROM programme_participant WHERE programme = {}",
                                       programme["id"])
    await _log_loans(programme, [row["patron"] for row in participants])
    rows = await Programme.raw(
        "SELECT p.id, p.name, p.card_number, p.birth_date, count(l.id) AS books, "
        "coalesce(sum(l.minutes), 0) AS minutes FROM programme_participant pp JOIN patron p ON p.id = pp.patron "
        "LEFT JOIN reading_log l ON l.patron = p.id AND l.programme = pp.programme WHERE pp.programme = {} "
        "GROUP BY p.id, p.name, p.card_number, p.birth_date", programme["id"])
    groups: dict[str, list[dict[str, Any]]] = {}
    people = []
    for row in rows:
        age = age_on(row["birth_date"], programme["starts_on"]) if row["birth_date"] else None
        total = row["minutes"] if programme["goal_kind"] == "minutes" else row["books"]
        goal = goal_for(programme, age)
        person = {"name": row["name"], "card_number": row["card_number"], "shown": masked(row["name"], row["card_number"]),
                  "group": age_group(programme, age), "total": int(total), "goal": goal, "finished": total >= goal}
        people.append(person)
        groups.setdefault(person["group"], []).append(person)
    for members in groups.values():
        members.sort(key=lambda person: (-person["total"], person["shown"]))
    return {"programme": programme, "groups": dict(sorted(groups.items())), "people": people}


async def standings_csv(principal: Principal, programme_uuid: str) -> str:
    """For staff: every participant with their card, total, goal and whether they finished."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    data = await standings(programme_uuid)
    lines: list[list[object]] = [["card_number", "name", "age_group", "total", "goal", "finished"]]
    for person in sorted(data["people"], key=lambda p: (p["group"], -p["total"])):
        lines.append([person["card_number"], person["name"], person["group"], person["total"], person["goal"],
                      "yes" if person["finished"] else "no"])
    return spreadsheet.csv_text(lines)


async def programmes() -> list[dict[str, Any]]:
    rows = await Programme.raw("SELECT uuid, title_zh, title_en, starts_on, ends_on, goal_kind FROM programme "
                               "ORDER BY starts_on DESC")
    return [{**row, "uuid": str(row["uuid"])} for row in rows]

